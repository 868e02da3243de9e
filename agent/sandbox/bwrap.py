"""bubblewrap's command line: the namespaces and the filesystem view a sandboxed command gets,
and the environment it runs with (an allowlist, minus anything that looks like a credential)."""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from agent.errors import ToolMissing
from agent.sandbox.limits import Limits

BWRAP_MISSING = (
    "bubblewrap (bwrap) is not installed: run `sudo apt-get install bubblewrap`, "
    "or pass --unsafe-no-sandbox to run LLM-written code unprotected"
)
SANDBOX_UID = 1000  # the uid the code sees inside; outside it stays the orchestrator's own
GPU_DEVICE_GLOBS = ("/dev/nvidia*",)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Harmless /etc entries that the dynamic linker, fonts, TeX and latexmk read. No passwd, no keys.
_ETC_ENTRIES = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "alternatives",
    "fonts", "texmf", "papersize", "LatexMk", "latexmkrc", "mime.types", "os-release",
    "nsswitch.conf",
)  # fmt: skip
_VAR_DIRS = ("/var/lib/texmf", "/var/cache/fontconfig")
_ENV_KEEP = frozenset(
    {
        "LANG", "LANGUAGE", "TZ", "TERM", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "OMP_NUM_THREADS",
        "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
        "CUBLAS_WORKSPACE_CONFIG", "SOURCE_DATE_EPOCH",
    }
)  # fmt: skip
# Dropped even when passed explicitly: the code we run must never hold a credential.
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE", re.IGNORECASE)
log = logging.getLogger(__name__)


def require_bwrap() -> str:
    """Path to bwrap, or raise ToolMissing with the install command."""
    path = shutil.which("bwrap")
    if path is None:
        raise ToolMissing(BWRAP_MISSING)
    return path


@cache
def _bwrap_version(bwrap: str) -> tuple[int, ...]:
    out = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in match.groups()) if match else (0, 0, 0)


@cache
def check_bwrap_works(bwrap: str) -> None:
    """Fail early, with the fix, where user namespaces are disabled (Ubuntu's AppArmor, sysctls)."""
    probe = [bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/", "true"]
    done = subprocess.run(probe, capture_output=True, text=True)
    if done.returncode != 0:
        raise ToolMissing(
            f"bubblewrap cannot create a sandbox here ({done.stderr.strip()}): enable unprivileged user "
            "namespaces (`sysctl kernel.unprivileged_userns_clone=1`; on Ubuntu 24.04 "
            "`sysctl kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor profile for bwrap), "
            "or pass --unsafe-no-sandbox to run LLM-written code unprotected"
        )


def binds(workdir: Path, extra_ro: Sequence[Path]) -> list[tuple[Path, str]]:
    """The host folders a sandbox sees besides the system: the interpreter's, `extra_ro`
    read-only, and the work folder read-write."""
    return [(d, "--ro-bind") for d in [*_interpreter_dirs(), *extra_ro]] + [(workdir, "--bind")]


def _interpreter_dirs() -> list[Path]:
    """The folders this interpreter runs from: the venv and the base install (e.g. under
    ~/.pyenv). Bound alone, so the rest of $HOME stays invisible."""
    dirs: list[Path] = []
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        for q in (Path(p), Path(p).resolve()):
            if q not in dirs and not any(q.is_relative_to(s) for s in SYSTEM_DIRS):
                dirs.append(q)
    return sorted(dirs)


def gpu_devices() -> list[str]:
    return sorted({dev for pattern in GPU_DEVICE_GLOBS for dev in glob.glob(pattern)})


def _sandbox_path() -> str:
    """PATH inside: the venv's bin, then the host's PATH entries that lie in the bound system dirs
    (so a TeX Live under /usr/local is found, and nothing under $HOME)."""
    entries = [str(Path(sys.executable).parent)]
    for entry in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/local/bin", "/usr/bin", "/bin"]:
        if entry and entry not in entries and any(Path(entry).is_relative_to(s) for s in SYSTEM_DIRS):
            entries.append(entry)
    return os.pathsep.join(entries)


def sandbox_env(
    extra: dict[str, str] | None, *, home: str, sandboxed: bool, address_limit: bool
) -> dict[str, str]:
    """The environment of a sandboxed command: an allowlist of the host's, fixed settings, then
    `extra`; any name that looks like a credential is dropped, even from `extra`."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP or k.startswith("LC_")}
    env.update(
        PATH=_sandbox_path(),
        HOME=home,
        USER="sandbox",
        LOGNAME="sandbox",
        MPLBACKEND="Agg",
        PYTHONNOUSERSITE="1",
        AI_SCIENTIST_SANDBOX="1",
    )
    if sandboxed:
        env["TMPDIR"] = "/tmp"
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    if address_limit:
        env["MALLOC_ARENA_MAX"] = "2"  # glibc reserves 64 MB of address space per thread arena
    env.update(extra or {})
    for name in extra or {}:
        if _SECRET_NAME.search(name):
            log.warning("sandbox: not passing %s to the command: its name looks like a credential", name)
    return {k: v for k, v in env.items() if not _SECRET_NAME.search(k)}


def etc_files(uid: int, gid: int) -> dict[str, str]:
    """Made-up /etc files: tools want a passwd entry for their uid; the host's must stay hidden."""
    return {
        "/etc/passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:{uid}:{gid}:sandbox:/tmp/home:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "/etc/group": f"root:x:0:\nsandbox:x:{gid}:\nnogroup:x:65534:\n",
        "/etc/hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
        "/etc/hostname": "sandbox\n",
    }


def data_fd(text: str) -> int:
    """A pipe holding `text`, for bwrap's --ro-bind-data (small, so it never blocks)."""
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "w") as f:
        f.write(text)
    return read_fd


def bwrap_argv(
    bwrap: str,
    workdir: Path,
    extra_ro: Sequence[Path],
    limits: Limits,
    gpus: list[str],
    data_fds: dict[str, int],
    sources: dict[Path, Path] | None = None,
) -> list[str]:
    """bubblewrap's command line: namespaces, then the filesystem view, built in mount order.
    `sources` maps a folder to the place bubblewrap binds it from (a staged copy, see identity)."""
    newer = _bwrap_version(bwrap) >= (0, 8, 0)  # --size and --disable-userns came with 0.8.0
    argv = [bwrap, "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    argv += ["--disable-userns"] if newer else []
    argv += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    argv += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    for name in _ETC_ENTRIES:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for dest, fd in data_fds.items():
        argv += ["--ro-bind-data", str(fd), dest]
    for d in _VAR_DIRS:
        argv += ["--ro-bind-try", d, d]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    size = ["--size", str(limits.disk_mb * 2**20)] if newer else []
    argv += [*size, "--tmpfs", "/tmp", *size, "--tmpfs", "/dev/shm", "--dir", "/tmp/home"]
    sources = sources or {}
    for dev in gpus:
        argv += ["--dev-bind", str(sources.get(Path(dev), dev)), dev]
    if gpus:
        argv += ["--ro-bind", "/sys", "/sys"]  # the CUDA driver reads PCI topology from sysfs
    # Outer folders first, so a read-only folder inside the work folder (or the reverse) stays as asked.
    for d, kind in sorted(binds(workdir, extra_ro), key=lambda bind: len(bind[0].parts)):
        argv += [kind, str(sources.get(d, d)), str(d)]
    argv += ["--chdir", str(workdir), "--remount-ro", "/"]
    return argv
