"""Run as root between the orchestrator and bubblewrap, so that sandboxed code runs as a dedicated
unprivileged uid on the host too, and nothing it makes can be a root-owned setuid file.

Run as `python -I -S -c <this file's text> SPEC -- BWRAP_ARGV...` (never imported). It joins the
run's pids cgroup, then, in a private mount namespace of its own, mounts a small tmpfs on the
staging folder and bind-mounts there every folder the sandbox will see that the dedicated uid
could not reach by its real path (the interpreter under /root, a work folder under a 0700 run
folder); bubblewrap then binds each staged copy back at its real path. Finally it drops to the
dedicated uid and gid, with no supplementary groups, and executes bubblewrap, which runs
unprivileged exactly as it does for a normal user.

    SPEC: {"cgroup_procs": path or null, "stage": folder, "sources": [paths], "uid": U, "gid": G}
"""

import ctypes
import json
import os
import sys

CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18


def fail(what):
    err = ctypes.get_errno()
    sys.stderr.write(f"sandbox: cannot {what}: {os.strerror(err)}\n")
    os._exit(126)


def mount(libc, source, target, fstype, flags, data):
    enc = [None if x is None else x.encode() for x in (source, target, fstype, data)]
    if libc.mount(enc[0], enc[1], enc[2], flags, enc[3]) != 0:
        fail(f"mount {source} on {target}")


def main():
    spec = json.loads(sys.argv[1])
    argv = sys.argv[3:] if sys.argv[2] == "--" else sys.argv[2:]
    if spec["cgroup_procs"]:
        with open(spec["cgroup_procs"], "w") as f:
            f.write("0")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        fail("create a mount namespace")
    mount(libc, None, "/", None, MS_REC | MS_PRIVATE, None)  # nothing of ours leaks to the host
    stage = spec["stage"]
    mount(libc, "ai-scientist-stage", stage, "tmpfs", 0, "mode=0755,size=1m")
    for i, source in enumerate(spec["sources"]):
        target = os.path.join(stage, str(i))
        if os.path.isdir(source):
            os.mkdir(target)
        else:
            open(target, "w").close()
        mount(libc, source, target, None, MS_BIND | MS_REC, None)
    os.setgroups([])
    os.setresgid(spec["gid"], spec["gid"], spec["gid"])
    os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    try:
        os.execv(argv[0], argv)  # an absolute path: the stdlib may be out of reach from here on
    except OSError as e:
        sys.stderr.write(f"sandbox: cannot run {argv[0]!r}: {e.strerror}\n")
        os._exit(127)


main()
