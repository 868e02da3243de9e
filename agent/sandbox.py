"""Run LLM-written code in a bubblewrap sandbox, under limits the code cannot change.

Everything the pipeline runs from LLM-written code goes through `run()`: experiments, `plot.py`
and LaTeX. What the sandboxed command sees:

- no network (an empty network namespace) and its own PID, IPC and UTS namespaces; it cannot
  create further user namespaces;
- the system read-only (/usr, /lib*, a handful of harmless /etc files, a made-up /etc/passwd),
  the interpreter's prefix folders read-only (never the rest of $HOME) and `extra_ro` read-only;
- its work folder read-write, a private size-capped /tmp and /dev/shm, HOME=/tmp/home;
- an environment rebuilt from an allowlist, minus anything whose name looks like a credential.

Limits come from the orchestrator's `Limits`, never from a file the code can reach:

- in the kernel: RLIMIT_AS (per process; skipped when GPUs are passed through, because CUDA
  reserves far more address space than it uses), RLIMIT_FSIZE, RLIMIT_CPU, no core dumps, and a
  process cap: a pids cgroup where we may create one (root), else RLIMIT_NPROC set inside the
  sandbox's user namespace, where the kernel counts it per sandbox (it is void for uid 0, and set
  outside it would count every process of the user);
- in this process, a watchdog every 0.2 s: wall-clock timeout, the run's total memory, the growth
  of the work folder, the number of processes. A breach kills every process of the run, nothing else.

With `unsafe_no_sandbox` (or AI_SCIENTIST_UNSAFE_NO_SANDBOX=1) the command runs without bubblewrap
but keeps the scrubbed environment, the rlimits, the watchdog and a reaper that kills its
detached children; every such run prints a warning.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.errors import ConfigError, ToolMissing

UNSAFE_ENV = "AI_SCIENTIST_UNSAFE_NO_SANDBOX"
BWRAP_MISSING = (
    "bubblewrap (bwrap) is not installed: run `sudo apt-get install bubblewrap`, "
    "or pass --unsafe-no-sandbox to run LLM-written code unprotected"
)
UNSAFE_WARNING = (
    "WARNING: running LLM-written code WITHOUT a sandbox (--unsafe-no-sandbox / "
    f"{UNSAFE_ENV}=1): it can read your files and keys, use the network and write anywhere you can. "
    "Only rlimits, the timeout and the process-group kill apply."
)
KilledFor = Literal["timeout", "memory", "disk", "procs"]
log = logging.getLogger(__name__)

SANDBOX_UID = 1000  # the uid the code sees inside; outside it stays the orchestrator's own
TICK_S = 0.2  # watchdog period
TAIL_BYTES = 16_384
GPU_DEVICE_GLOBS = ("/dev/nvidia*",)
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
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
_MEMORY_ERRORS = re.compile(
    r"MemoryError|Cannot allocate memory|can't allocate memory|std::bad_alloc|"
    r"Unable to allocate|out of memory \(host\)|mmap failed"
)
_DISK_ERRORS = re.compile(r"File too large|No space left on device|Disk quota exceeded")
_FORK_ERRORS = re.compile(r"fork.*Resource temporarily unavailable|BlockingIOError: \[Errno 11\]|Cannot fork")


class Limits(BaseModel):
    """Resource limits of one sandboxed run. They come from the orchestrator, never from files the
    code under test can edit."""

    model_config = ConfigDict(frozen=True)

    timeout_s: float = Field(600, gt=0, description="Wall-clock limit, enforced by the parent process.")
    memory_mb: int = Field(
        4096,
        gt=0,
        description="Memory of the run: RLIMIT_AS per process (not with GPUs) and a watchdog on the "
        "memory all its processes allocated. Python+torch on CPU need about 1 GB of address space.",
    )
    disk_mb: int = Field(
        2048, gt=0, description="How much the work folder may grow during the run; also the size of /tmp."
    )
    max_procs: int = Field(256, gt=0, description="Processes and threads of the run, together.")
    file_size_mb: int = Field(1024, gt=0, description="Largest file the run may write (RLIMIT_FSIZE).")
    cpu_s: int | None = Field(
        None, gt=0, description="CPU seconds per process (RLIMIT_CPU); default timeout x cores + 60."
    )
    gpus: bool = Field(True, description="Pass /dev/nvidia* through when present.")

    def cpu_seconds(self) -> int:
        return self.cpu_s or int(self.timeout_s * (os.cpu_count() or 1)) + 60


class SandboxResult(BaseModel):
    """What happened to one sandboxed command. Returned, never raised: a failing run is data."""

    exit_code: int = Field(description="The command's exit status; 128+N when killed by signal N.")
    timed_out: bool
    killed_for: KilledFor | None = None
    wall_s: float
    peak_memory_mb: float = Field(description="Most memory the run held allocated, sampled every 0.2 s.")
    stdout_tail: str
    stderr_tail: str
    stdout_path: str
    stderr_path: str
    sandboxed: bool
    message: str = Field("", description="One line: why the run was stopped, if it was.")

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed_for is None

    def error_tail(self, lines: int = 40) -> str:
        """The reason and the last `lines` lines of stderr (or stdout), for feeding back to the brain."""
        head = self.message or (f"exit code {self.exit_code}" if self.exit_code else "")
        tail = self.stderr_tail.strip() or self.stdout_tail.strip()
        body = "\n".join(tail.splitlines()[-lines:])
        return "\n".join(part for part in (head, body) if part)


# ---------------------------------------------------------------- tools


def require_bwrap() -> str:
    """Path to bwrap, or raise ToolMissing with the install command."""
    path = shutil.which("bwrap")
    if path is None:
        raise ToolMissing(BWRAP_MISSING)
    return path


def python_executable() -> str:
    """The interpreter to use inside the sandbox: this one (its prefixes are bound read-only)."""
    return sys.executable


@cache
def _bwrap_version(bwrap: str) -> tuple[int, ...]:
    out = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in match.groups()) if match else (0, 0, 0)


@cache
def _check_bwrap_works(bwrap: str) -> None:
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


def _unsafe_default() -> bool:
    return os.environ.get(UNSAFE_ENV, "").strip().lower() in {"1", "true", "yes"}


# ---------------------------------------------------------------- what the sandbox sees


def _interpreter_dirs() -> list[Path]:
    """The folders this interpreter runs from: the venv and the base install (e.g. under
    ~/.pyenv). Bound alone, so the rest of $HOME stays invisible."""
    dirs: list[Path] = []
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        for q in (Path(p), Path(p).resolve()):
            if q not in dirs and not any(q.is_relative_to(s) for s in _SYSTEM_DIRS):
                dirs.append(q)
    return sorted(dirs)


def _gpu_devices() -> list[str]:
    return sorted({dev for pattern in GPU_DEVICE_GLOBS for dev in glob.glob(pattern)})


def _sandbox_path() -> str:
    """PATH inside: the venv's bin, then the host's PATH entries that lie in the bound system dirs
    (so a TeX Live under /usr/local is found, and nothing under $HOME)."""
    entries = [str(Path(sys.executable).parent)]
    for entry in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/local/bin", "/usr/bin", "/bin"]:
        if entry and entry not in entries and any(Path(entry).is_relative_to(s) for s in _SYSTEM_DIRS):
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


def _etc_files(uid: int, gid: int) -> dict[str, str]:
    """Made-up /etc files: tools want a passwd entry for their uid; the host's must stay hidden."""
    return {
        "/etc/passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:{uid}:{gid}:sandbox:/tmp/home:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "/etc/group": f"root:x:0:\nsandbox:x:{gid}:\nnogroup:x:65534:\n",
        "/etc/hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
        "/etc/hostname": "sandbox\n",
    }


def _data_fd(text: str) -> int:
    """A pipe holding `text`, for bwrap's --ro-bind-data (small, so it never blocks)."""
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "w") as f:
        f.write(text)
    return read_fd


def _bwrap_argv(
    bwrap: str,
    workdir: Path,
    extra_ro: Sequence[Path],
    limits: Limits,
    gpus: list[str],
    data_fds: dict[str, int],
) -> list[str]:
    """bubblewrap's command line: namespaces, then the filesystem view, built in mount order."""
    newer = _bwrap_version(bwrap) >= (0, 8, 0)  # --size and --disable-userns came with 0.8.0
    argv = [bwrap, "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    argv += ["--disable-userns"] if newer else []
    argv += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    argv += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    for d in _SYSTEM_DIRS:
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
    for dev in gpus:
        argv += ["--dev-bind", dev, dev]
    if gpus:
        argv += ["--ro-bind", "/sys", "/sys"]  # the CUDA driver reads PCI topology from sysfs
    # Outer folders first, so a read-only folder inside the work folder (or the reverse) stays as asked.
    binds = [(d, "--ro-bind") for d in [*_interpreter_dirs(), *extra_ro]] + [(workdir, "--bind")]
    for d, kind in sorted(binds, key=lambda bind: len(bind[0].parts)):
        argv += [kind, str(d), str(d)]
    argv += ["--chdir", str(workdir), "--remount-ro", "/"]
    return argv


# ---------------------------------------------------------------- the launcher: rlimits from inside

# Runs as the sandboxed command's first process (python -I -S, so nothing of the sandbox's files is
# imported). It sets the rlimits there rather than in a preexec_fn: RLIMIT_NPROC only counts per
# sandbox when set inside its user namespace, and preexec_fn is unsafe in threaded programs.
# With "reap" (no bubblewrap, so no PID namespace to die with) it stays as a subreaper, the parent
# of every orphan of the run, and kills them all when the command exits.
_LAUNCHER = r"""
import json, os, resource, sys

def execute(cmd):
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        sys.stderr.write(f"sandbox: cannot run {cmd[0]!r}: {e.strerror}\n")
        os._exit(127 if isinstance(e, FileNotFoundError) else 126)

def children(me):
    kids = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            continue
        if int(fields[1]) == me:
            kids.append(int(name))
    return kids

def reap(cmd):
    import ctypes
    libc = ctypes.CDLL(None)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG: SIGKILL when the orchestrator dies
    pid = os.fork()
    if pid == 0:
        libc.prctl(1, 9, 0, 0, 0)
        execute(cmd)
    _, status = os.waitpid(pid, 0)
    while True:
        kids = children(os.getpid())
        for kid in kids:
            try:
                os.kill(kid, 9)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            break
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)

spec = json.loads(sys.argv[1])
for name, (soft, hard) in spec["rlimits"].items():
    resource.setrlimit(getattr(resource, name), (soft, hard))
reap(sys.argv[2:]) if spec["reap"] else execute(sys.argv[2:])
"""


def _rlimits(limits: Limits, *, address_limit: bool, nproc: bool) -> dict[str, tuple[int, int]]:
    mb = 2**20
    cpu = limits.cpu_seconds()
    out = {
        "RLIMIT_FSIZE": (limits.file_size_mb * mb,) * 2,
        "RLIMIT_CPU": (cpu, cpu + 10),  # SIGXCPU first, SIGKILL 10 s later
        "RLIMIT_CORE": (0, 0),
    }
    if address_limit:
        out["RLIMIT_AS"] = (limits.memory_mb * mb,) * 2
    if nproc:
        out["RLIMIT_NPROC"] = (limits.max_procs + 1,) * 2  # +1: bubblewrap's init counts too
    return out


def _launcher_argv(cmd: Sequence[str], rlimits: dict[str, tuple[int, int]], *, reap: bool) -> list[str]:
    spec = json.dumps({"rlimits": rlimits, "reap": reap})
    return [python_executable(), "-I", "-S", "-c", _LAUNCHER, spec, *cmd]


# ---------------------------------------------------------------- processes of a run


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, threads, start time) of a live process; None when it is gone or a zombie (a zombie
    holds nothing, and an orphaned one may wait a while for the host's init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return None if fields[0] == b"Z" else (int(fields[1]), int(fields[17]), int(fields[19]))
    except (OSError, ValueError, IndexError):
        return None


def _all_pids() -> Iterator[int]:
    return (int(name) for name in os.listdir("/proc") if name.isdigit())


def _descendants(root: int) -> dict[int, tuple[int, int, int]]:
    """Every process below `root`, by a scan of /proc (orphans of a sandbox stay below its init)."""
    table = {pid: st for pid in _all_pids() if (st := _stat(pid)) is not None}
    found, frontier = {}, [root]
    children: dict[int, list[int]] = {}
    for pid, st in table.items():
        children.setdefault(st[0], []).append(pid)
    while frontier:
        pid = frontier.pop()
        for kid in children.get(pid, ()):
            if kid not in found:
                found[kid] = table[kid]
                frontier.append(kid)
    if root in table:
        found[root] = table[root]
    return found


class _PidsCgroup:
    """A pids cgroup for one run: a process cap the kernel enforces even for uid 0, and the exact
    list of the run's processes, detached ones included. Only where we may create cgroups (root)."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, max_tasks: int) -> _PidsCgroup | None:
        for root, v2 in _pids_hierarchies():
            parent = root / "ai-scientist"
            try:
                parent.mkdir(exist_ok=True)
                _remove_stale(parent)
                if v2:
                    (parent / "cgroup.subtree_control").write_text("+pids")
                path = parent / uuid.uuid4().hex[:16]
                path.mkdir()
            except OSError:
                continue
            try:
                (path / "pids.max").write_text(str(max_tasks))
                return cls(path)
            except OSError:
                cls(path).remove()
        return None

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in self.procs_file.read_text().split()]
        except (OSError, ValueError):
            return []

    def refused_forks(self) -> int:
        """How many forks the cap has refused so far."""
        with contextlib.suppress(OSError, ValueError):
            for line in (self.path / "pids.events").read_text().splitlines():
                if line.startswith("max "):
                    return int(line.split()[1])
        return 0

    def remove(self) -> None:
        """Kill whatever is still in the cgroup, then delete it."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.005)  # dying processes leave the cgroup a moment after SIGKILL


def _remove_stale(parent: Path) -> None:
    """Delete empty run cgroups left by an orchestrator that was killed before it could clean up.
    Only old ones: a new one is empty for the few milliseconds before its run joins it."""
    for child in parent.iterdir():
        with contextlib.suppress(OSError):
            if child.is_dir() and time.time() - child.stat().st_mtime > 60:
                child.rmdir()  # fails while processes are in it


def _pids_hierarchies() -> list[tuple[Path, bool]]:
    """Mounted cgroup hierarchies with the pids controller: (mount point, is cgroup v2)."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            _, mount, fstype, options, *_ = line.split()
            if fstype == "cgroup" and "pids" in options.split(","):
                found.append((Path(mount), False))
            elif fstype == "cgroup2":
                with contextlib.suppress(OSError):
                    if "pids" in (Path(mount) / "cgroup.controllers").read_text().split():
                        found.append((Path(mount), True))
    return found


_SETID = stat.S_ISUID | stat.S_ISGID


def _disk_usage(path: Path) -> int:
    """Bytes allocated under `path` (hard links once, symlinks not followed). On the way it
    clears setuid/setgid bits: outside the sandbox, files the run creates belong to the
    orchestrator's uid (root, perhaps) and must not become a setuid program for other users."""
    total, seen = 0, set()
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode) and st.st_mode & _SETID:
                        _clear_setid(Path(entry.path), path)
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
        except OSError:
            continue
    return total


def _clear_setid(path: Path, workdir: Path) -> None:
    """Clear setuid/setgid on `path` through an fd, after checking that what was opened is a regular
    file really inside `workdir`: the run may swap the name for a symlink to a system file."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            inside = Path(os.readlink(f"/proc/self/fd/{fd}")).is_relative_to(workdir)
            if inside and stat.S_ISREG(st.st_mode) and st.st_mode & _SETID:
                os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~_SETID)
        finally:
            os.close(fd)


def _memory_bytes(pids: Sequence[int], limit: int) -> int:
    """The run's memory: anonymous resident pages (what it allocated; shared libraries, which the
    kernel can drop, are left out). Forked children share their parent's pages until they write
    them, so a total above the limit is recounted proportionally (PSS) before it counts."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                _, resident, shared = (int(x) for x in f.read().split()[:3])
        except (OSError, ValueError):
            continue
        total += (resident - shared) * page
    return _pss_anon_bytes(pids) if total > limit else total


def _pss_anon_bytes(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            fields = dict(
                line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
            )
            if "Pss_Anon" in fields:  # Linux 5.7+
                total += (int(fields["Pss_Anon"].split()[0]) + int(fields["Pss_Shmem"].split()[0])) * 1024
            else:
                total += int(fields["Pss"].split()[0]) * 1024
    return total


class _Watchdog:
    """Polls a running command for breaches of its limits, and kills all of it (and only it)."""

    def __init__(
        self,
        limits: Limits,
        workdir: Path,
        outside_logs: list[Path],
        cgroup: _PidsCgroup | None,
        overhead: int,
    ):
        self.root = 0  # the started command's pid (and process group), set once it runs
        self.limits, self.workdir, self.cgroup = limits, workdir, cgroup
        self.outside_logs = outside_logs
        self.overhead = overhead  # tasks of ours in the count: bubblewrap's two, or the launcher
        self.seen: dict[int, int] = {}  # pid -> start time, to kill stragglers and not reused pids
        self.peak_memory = 0
        self.refused_forks = 0  # forks the pids cgroup turned down
        self.disk_base = self._disk()
        self.next_disk = 0.0

    def _disk(self) -> int:
        logs = sum(p.stat().st_size for p in self.outside_logs if p.exists())
        return _disk_usage(self.workdir) + logs

    def _procs(self) -> dict[int, tuple[int, int, int]]:
        if self.cgroup is None:
            return _descendants(self.root)
        return {pid: st for pid in self.cgroup.pids() if (st := _stat(pid)) is not None}

    def check(self) -> KilledFor | None:
        """One look at the run; the first limit it breaks, if any."""
        procs = self._procs()
        self.seen.update({pid: st[2] for pid, st in procs.items()})
        tasks = sum(st[1] for st in procs.values()) - self.overhead
        self.refused_forks = self.cgroup.refused_forks() if self.cgroup else 0
        if tasks >= self.limits.max_procs or self.refused_forks:
            return "procs"
        limit = self.limits.memory_mb * 2**20
        memory = _memory_bytes(list(procs), limit)
        self.peak_memory = max(self.peak_memory, memory)
        if memory > limit:
            return "memory"
        return "disk" if self.disk_exceeded() else None

    def disk_exceeded(self, *, now: bool = False) -> bool:
        """Has the work folder grown past the quota? Walked at most every TICK_S, and a big tree
        less often, so the walk never costs more than 5 % of a core."""
        if not now and time.monotonic() < self.next_disk:
            return False
        started = time.monotonic()
        grown = self._disk() - self.disk_base
        self.next_disk = started + max(TICK_S, 20 * (time.monotonic() - started))
        return grown > self.limits.disk_mb * 2**20

    def kill(self) -> None:
        """SIGKILL the run's process group and every process seen in the run (not pids reused since)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.root, signal.SIGKILL)
        pids = self.cgroup.pids() if self.cgroup else []
        for pid in pids + [pid for pid, _ in self._alive_seen()]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def _alive_seen(self) -> list[tuple[int, int]]:
        return [(pid, start) for pid, start in self.seen.items() if (st := _stat(pid)) and st[2] == start]

    def cleanup(self) -> None:
        """After the command is gone: nothing of the run may outlive it."""
        if self.cgroup is not None:
            self.refused_forks = self.cgroup.refused_forks()
            self.cgroup.remove()
        for _ in range(50):
            alive = [(pid, start) for pid, start in self._alive_seen() if pid != self.root]
            if not alive:
                return
            for pid, _start in alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)


# ---------------------------------------------------------------- running


_PROTECTED = (*_SYSTEM_DIRS, "/etc", "/proc", "/sys", "/dev", "/boot", "/run")


@cache
def _warn_no_process_cap() -> None:
    log.warning(
        "sandbox: running as root without a writable pids cgroup, so no kernel cap on processes "
        "(RLIMIT_NPROC does not apply to uid 0); the watchdog kills a run within %.1f s of passing "
        "max_procs. Mount the cgroup pids controller read-write, or run as a normal user.",
        TICK_S,
    )


def _validate_paths(workdir: Path, extra_ro: Sequence[Path]) -> tuple[Path, list[Path]]:
    """The work folder and read-only extras, resolved; refuse those that would open up the machine."""
    workdir = workdir.resolve()
    if not workdir.is_dir():
        raise ConfigError(f"sandbox work folder {workdir} is not a directory: create it first")
    home = Path.home().resolve()
    if (
        home.is_relative_to(workdir)
        or str(workdir) in ("/tmp", "/var", "/var/tmp")
        or any(workdir.is_relative_to(p) for p in _PROTECTED)
    ):
        raise ConfigError(
            f"refusing to sandbox with work folder {workdir}: it is or contains a system or home "
            "folder; use a dedicated folder, e.g. under experiments/"
        )
    extras = [Path(p).resolve() for p in extra_ro]
    for p in extras:
        if not p.exists():
            raise ConfigError(f"sandbox read-only path {p} does not exist")
    return workdir, extras


def _tail(f: IO[bytes]) -> str:
    """The end of a log, read through the descriptor we opened: the run may have replaced the
    file's name with a symlink to something it could not read but we can."""
    with contextlib.suppress(OSError):
        size = os.fstat(f.fileno()).st_size
        start = max(0, size - TAIL_BYTES)
        return os.pread(f.fileno(), size - start, start).decode("utf-8", errors="replace")
    return ""


def read_output(workdir: Path, relpath: str | Path, max_bytes: int = 64 * 2**20) -> bytes:
    """Read a file that a sandboxed run left in `workdir` (final_info.json, a figure, a log),
    refusing what could trick the orchestrator into reading for the run: a symlink (the run can
    point one at ~/.ssh/id_rsa, which it cannot read but we can), a path that leaves `workdir`,
    a FIFO or device, a file over `max_bytes`. Raises OSError (PermissionError) on those."""
    workdir = Path(workdir).resolve()
    target = workdir / relpath
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not Path(os.readlink(f"/proc/self/fd/{fd}")).is_relative_to(workdir) or not stat.S_ISREG(
            st.st_mode
        ):
            raise PermissionError(f"{target}: not a regular file inside {workdir}; not reading it")
        if st.st_size > max_bytes:
            raise PermissionError(f"{target}: {st.st_size} bytes, more than the {max_bytes} allowed")
        chunks, size = [], 0
        while chunk := os.read(fd, min(2**20, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise PermissionError(f"{target}: grew past the {max_bytes} bytes allowed")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _wait(pid: int, pidfd: int | None, timeout: float, *, block: bool = False) -> int | None:
    """The wait status of `pid` once it has exited; None if it still runs after `timeout` s."""
    if not block:
        if pidfd is not None:
            select.select([pidfd], [], [], max(timeout, 0))
        else:
            time.sleep(max(timeout, 0))
    done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    return status if done else None


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _classify(exit_code: int, stderr_tail: str, limits: Limits, watch: _Watchdog) -> KilledFor | None:
    """Why a command that exited on its own failed, when a limit was the cause."""
    if exit_code == 0:
        return None
    if exit_code == 128 + signal.SIGXCPU:
        return "timeout"
    if exit_code == 128 + signal.SIGXFSZ or _DISK_ERRORS.search(stderr_tail[-4000:]):
        return "disk"
    if _MEMORY_ERRORS.search(stderr_tail[-4000:]):
        return "memory"
    if exit_code == 128 + signal.SIGKILL and watch.peak_memory > 0.9 * limits.memory_mb * 2**20:
        return "memory"  # most likely the kernel's OOM killer
    if watch.refused_forks or _FORK_ERRORS.search(stderr_tail[-4000:]):
        return "procs"
    return None


def _message(killed_for: KilledFor | None, limits: Limits, wall_s: float, timed_out: bool) -> str:
    if killed_for is None:
        return ""
    reason = {
        "timeout": f"ran past the wall-clock timeout of {limits.timeout_s:g} s"
        if timed_out
        else f"used more than {limits.cpu_seconds()} s of CPU time in one process",
        "memory": f"ran out of memory (limit {limits.memory_mb} MB)",
        "disk": f"wrote more than the disk quota ({limits.disk_mb} MB in the work folder, "
        f"{limits.file_size_mb} MB per file)",
        "procs": f"started more than {limits.max_procs} processes/threads",
    }[killed_for]
    return f"stopped: {reason}, after {wall_s:.1f} s"


def run(
    cmd: list[str],
    workdir: Path,
    limits: Limits = Limits(),
    *,
    env: dict[str, str] | None = None,
    extra_ro: Sequence[Path] = (),
    log_dir: Path | None = None,
    log_name: str = "sandbox",
    unsafe_no_sandbox: bool | None = None,
) -> SandboxResult:
    """Run `cmd` in `workdir` under bubblewrap and `limits`; wait for it; report what happened.

    stdout and stderr go to `log_dir/<log_name>.stdout.log` and `.stderr.log` (log_dir defaults
    to workdir). Raises ToolMissing when bwrap is absent and `unsafe_no_sandbox` is off (its
    default is the AI_SCIENTIST_UNSAFE_NO_SANDBOX environment variable)."""
    if not cmd:
        raise ConfigError("sandbox.run: empty command")
    unsafe = _unsafe_default() if unsafe_no_sandbox is None else unsafe_no_sandbox
    workdir, extra_ro = _validate_paths(Path(workdir), extra_ro)
    log_dir = Path(log_dir).resolve() if log_dir else workdir
    log_dir.mkdir(parents=True, exist_ok=True)
    paths = (log_dir / f"{log_name}.stdout.log", log_dir / f"{log_name}.stderr.log")
    devices = _gpu_devices() if limits.gpus else []
    gpus = [] if unsafe else devices
    address_limit = not devices  # CUDA maps far more address space than it uses
    rlimits = _rlimits(limits, address_limit=address_limit, nproc=not unsafe)
    cgroup = _PidsCgroup.create(limits.max_procs + (1 if unsafe else 2))
    if cgroup is None and os.geteuid() == 0:
        _warn_no_process_cap()

    with contextlib.ExitStack() as stack:
        stack.callback(lambda: cgroup and cgroup.remove())
        if unsafe:
            print(UNSAFE_WARNING, file=sys.stderr, flush=True)
            home = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="ai-scientist-home-", ignore_cleanup_errors=True)
            )
            argv, fds = _launcher_argv(cmd, rlimits, reap=True), {}
        else:
            bwrap = require_bwrap()
            _check_bwrap_works(bwrap)
            home = "/tmp/home"
            fds = {dest: _data_fd(text) for dest, text in _etc_files(SANDBOX_UID, SANDBOX_UID).items()}
            for fd in fds.values():
                stack.callback(os.close, fd)
            argv = _bwrap_argv(bwrap, workdir, extra_ro, limits, gpus, fds) + [
                "--",
                *_launcher_argv(cmd, rlimits, reap=False),
            ]
        if cgroup is not None:  # join the cgroup before bwrap starts, so every process lands in it
            argv = ["/bin/sh", "-c", 'echo 0 > "$0" && exec "$@"', str(cgroup.procs_file), *argv]
        full_env = sandbox_env(env, home=home, sandboxed=not unsafe, address_limit=address_limit)
        out, err = (stack.enter_context(open(p, "w+b")) for p in paths)  # w+: tails are read back via the fd
        result = _supervise(
            argv, workdir, full_env, list(fds.values()), out, err, paths, limits, cgroup, unsafe
        )
    drop_escaping_links(workdir)
    _audit(log_name, cmd, result)
    return result


def drop_escaping_links(workdir: Path) -> list[Path]:
    """Delete symlinks the run left that point outside its folder: anything that later copies
    the folder (plots into the paper, the paper into the archive) would follow them."""
    dropped = []
    for path in workdir.rglob("*"):
        if path.is_symlink() and not path.resolve().is_relative_to(workdir):
            path.unlink()
            dropped.append(path)
    return dropped


def _audit(log_name: str, cmd: Sequence[str], result: SandboxResult) -> None:
    """One JSON line per sandboxed command in $AI_SCIENTIST_SANDBOX_LOG (the run's audit trail,
    also how bench/pipeline.py separates sandbox time from orchestration time)."""
    path = os.environ.get("AI_SCIENTIST_SANDBOX_LOG")
    if not path:
        return
    row = {"name": log_name, "cmd": list(cmd[:3]), "wall_s": round(result.wall_s, 3),
           "exit_code": result.exit_code, "killed_for": result.killed_for, "time": time.time()}
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _supervise(
    argv: list[str],
    workdir: Path,
    env: dict[str, str],
    fds: list[int],
    out: IO[bytes],
    err: IO[bytes],
    paths: tuple[Path, Path],
    limits: Limits,
    cgroup: _PidsCgroup | None,
    unsafe: bool,
) -> SandboxResult:
    """Start the command, watch it until it exits or breaks a limit, and collect the result."""
    outside_logs = [p for p in paths if not p.is_relative_to(workdir)]
    watch = _Watchdog(limits, workdir, outside_logs, cgroup, overhead=1 if unsafe else 2)
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
        start_new_session=True, pass_fds=fds,
    )  # fmt: skip
    watch.root = proc.pid
    pidfd = None
    with contextlib.suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(proc.pid)
    killed_for: KilledFor | None = None
    status: int | None = None
    try:
        while status is None:
            remaining = start + limits.timeout_s - time.monotonic()
            killed_for = "timeout" if remaining <= 0 else watch.check()
            if killed_for is not None:
                watch.kill()
                status = _wait(proc.pid, pidfd, 0, block=True)
                break
            status = _wait(proc.pid, pidfd, min(TICK_S, remaining))
    finally:
        if status is None:  # interrupted (e.g. Ctrl-C): never leave the run behind
            watch.kill()
            status = _wait(proc.pid, pidfd, 0, block=True)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if pidfd is not None:
            os.close(pidfd)
        watch.cleanup()
    wall_s = time.monotonic() - start
    exit_code = _exit_code(status)
    stdout_tail, stderr_tail = _tail(out), _tail(err)
    if killed_for is None and watch.disk_exceeded(now=True):
        killed_for = "disk"  # a burst written between two looks still counts
    killed_for = killed_for or _classify(exit_code, stderr_tail, limits, watch)
    timed_out = killed_for == "timeout" and exit_code != 128 + signal.SIGXCPU
    return SandboxResult(
        exit_code=exit_code,
        timed_out=timed_out,
        killed_for=killed_for,
        wall_s=round(wall_s, 3),
        peak_memory_mb=round(watch.peak_memory / 2**20, 1),
        stdout_tail=stdout_tail,
        stderr_tail=stderr_tail,
        stdout_path=str(paths[0]),
        stderr_path=str(paths[1]),
        sandboxed=not unsafe,
        message=_message(killed_for, limits, wall_s, timed_out),
    )
