"""Run a command as an unprivileged user, for the trust suite's pass as a normal orchestrator.

    python -I -S unprivileged.py UID GID PATH[:PATH...] -- COMMAND...

Run as root. The machine's interpreter may live under /root (0700), which the user cannot
traverse; rather than change the machine's permissions, the command runs in a private mount
namespace of its own where each PATH is reachable: every ancestor the user could not cross
gets a small tmpfs over it, with the needed folders bind-mounted back at their real paths.
Then it drops to UID:GID with no supplementary groups and executes COMMAND.
"""

import ctypes
import os
import stat
import sys

CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
libc = ctypes.CDLL(None, use_errno=True)


def mount(source, target, fstype, flags, data=None):
    args = [None if x is None else x.encode() for x in (source, target, fstype, data)]
    if libc.mount(args[0], args[1], args[2], flags, args[3]) != 0:
        sys.exit(f"unprivileged: mount {source} on {target}: {os.strerror(ctypes.get_errno())}")


def blocked(path, uid, gid):
    """The highest ancestor of `path` that uid:gid cannot traverse, or None."""
    parts = os.path.abspath(path).split("/")[1:]
    for i in range(1, len(parts)):
        folder = "/" + "/".join(parts[:i])
        st = os.stat(folder)
        if st.st_uid == uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid == gid:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return folder
    return None


def main():
    uid, gid, paths = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(":")
    command = sys.argv[5:]
    if libc.unshare(CLONE_NEWNS) != 0:
        sys.exit("unprivileged: cannot create a mount namespace")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    by_cover = {}
    for path in paths:
        cover = blocked(path, uid, gid)
        if cover:
            by_cover.setdefault(cover, []).append(path)
    stage = "/tmp/.ai-scientist-unprivileged-stage"  # one fixed mount point, reused by every run
    os.makedirs(stage, mode=0o700, exist_ok=True)
    mount("stage", stage, "tmpfs", 0, "mode=0700")  # private to this namespace
    for cover, needed in by_cover.items():
        for i, path in enumerate(needed):
            os.mkdir(f"{stage}/{i}")
            mount(path, f"{stage}/{i}", None, MS_BIND | MS_REC)
        mount("cover", cover, "tmpfs", 0, "mode=0755")
        for i, path in enumerate(needed):
            os.makedirs(path, exist_ok=True)
            mount(f"{stage}/{i}", path, None, MS_BIND | MS_REC)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    os.execvp(command[0], command)


main()
