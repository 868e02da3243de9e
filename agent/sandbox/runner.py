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
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import IO

from agent.errors import ConfigError
from agent.sandbox import files
from agent.sandbox.bwrap import (
    SANDBOX_UID,
    SYSTEM_DIRS,
    binds,
    bwrap_argv,
    check_bwrap_works,
    data_fd,
    etc_files,
    gpu_devices,
    require_bwrap,
    sandbox_env,
)
from agent.sandbox.cgroup import PidsCgroup
from agent.sandbox.identity import DEDICATED_UID, dropuid_argv, isolation, staged, staging
from agent.sandbox.limits import KilledFor, Limits, SandboxResult
from agent.sandbox.watchdog import TICK_S, Watchdog

# The launcher's source, run as `python -I -S -c`: inside the sandbox nothing is imported from disk.
LAUNCHER = (Path(__file__).with_name("launcher.py")).read_text()
UNSAFE_WARNING = (
    "WARNING: running LLM-written code WITHOUT a sandbox (--unsafe-no-sandbox / "
    "AI_SCIENTIST_UNSAFE_NO_SANDBOX=1): it can read your files and keys, use the network and write anywhere you can. "
    "Only rlimits, the timeout and the process-group kill apply."
)
log = logging.getLogger(__name__)
TAIL_BYTES = 16_384
_MEMORY_ERRORS = re.compile(
    r"MemoryError|Cannot allocate memory|can't allocate memory|std::bad_alloc|"
    r"Unable to allocate|out of memory \(host\)|mmap failed"
)
_DISK_ERRORS = re.compile(r"File too large|No space left on device|Disk quota exceeded")
_FORK_ERRORS = re.compile(r"fork.*Resource temporarily unavailable|BlockingIOError: \[Errno 11\]|Cannot fork")


def python_executable() -> str:
    """The interpreter to use inside the sandbox: this one (its prefixes are bound read-only)."""
    return sys.executable


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


class _Overlap:
    shared = False


_running: set[_Overlap] = set()
_running_lock = threading.Lock()


@contextlib.contextmanager
def _tracked() -> Iterator[_Overlap]:
    """Marks this command, and every one running beside it in this process (other ideas with
    --parallel, other nodes with --parallel-runs, a paper's LaTeX), as having shared the machine."""
    me = _Overlap()
    with _running_lock:
        for other in _running:
            other.shared = me.shared = True
        _running.add(me)
    try:
        yield me
    finally:
        with _running_lock:
            _running.discard(me)


def _launcher_argv(cmd: Sequence[str], rlimits: dict[str, tuple[int, int]], *, reap: bool) -> list[str]:
    spec = json.dumps({"rlimits": rlimits, "reap": reap})
    return [python_executable(), "-I", "-S", "-c", LAUNCHER, spec, *cmd]


_PROTECTED = (*SYSTEM_DIRS, "/etc", "/proc", "/sys", "/dev", "/boot", "/run")


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
    workdir = Path(os.path.abspath(workdir))
    if not workdir.is_dir():
        raise ConfigError(f"sandbox work folder {workdir} is not a directory: create it first")
    if workdir.resolve() != workdir:  # e.g. a `paper` folder that an earlier run swapped for a link
        raise ConfigError(f"sandbox work folder {workdir} has a symlink in its path; give its real path")
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


def _classify(exit_code: int, stderr_tail: str, limits: Limits, watch: Watchdog) -> KilledFor | None:
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
    unsafe_no_sandbox: bool = False,
    audit_log: Path | None = None,
) -> SandboxResult:
    """Run `cmd` in `workdir` under bubblewrap and `limits`; wait for it; scan what it left; report.

    stdout and stderr go to `log_dir/<log_name>.stdout.log` and `.stderr.log` (log_dir defaults
    to workdir). Afterwards `files.scan` repairs the folder (links and special files removed,
    setuid bits cleared) and a folder the run made unlistable, or git metadata, makes the result
    a failure (`violation`). Each command adds one line to `audit_log`. Raises ToolMissing when
    bwrap is absent and `unsafe_no_sandbox` is off."""
    if not cmd:
        raise ConfigError("sandbox.run: empty command")
    unsafe = unsafe_no_sandbox
    workdir, extra_ro = _validate_paths(Path(workdir), extra_ro)
    log_dir = Path(log_dir).resolve() if log_dir else workdir
    log_dir.mkdir(parents=True, exist_ok=True)
    paths = (log_dir / f"{log_name}.stdout.log", log_dir / f"{log_name}.stderr.log")
    devices = gpu_devices() if limits.gpus else []
    gpus = [] if unsafe else devices
    address_limit = not devices  # CUDA maps far more address space than it uses
    rlimits = _rlimits(limits, address_limit=address_limit, nproc=not unsafe)
    cgroup = PidsCgroup.create(limits.max_procs + (1 if unsafe else 2))
    if cgroup is None and os.geteuid() == 0:
        _warn_no_process_cap()
    dedicated = not unsafe and isolation().mode == "dedicated-uid"

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
            check_bwrap_works(bwrap)
            home = "/tmp/home"
            fds = {dest: data_fd(text) for dest, text in etc_files(SANDBOX_UID, SANDBOX_UID).items()}
            for fd in fds.values():
                stack.callback(os.close, fd)
            launcher = ["--", *_launcher_argv(cmd, rlimits, reap=False)]
            if dedicated:
                files.scan(workdir, owner=(DEDICATED_UID, DEDICATED_UID))  # the run may write its folder
                stage = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ai-scientist-stage-")))
                sources = staging([d for d, _ in binds(workdir, extra_ro)] + [Path(dev) for dev in gpus])
                inner = bwrap_argv(bwrap, workdir, extra_ro, limits, gpus, fds,
                                   {d: staged(stage, i) for i, d in enumerate(sources)}) + launcher
                argv = dropuid_argv(inner, sources, stage, cgroup.procs_file if cgroup else None)
            else:
                argv = bwrap_argv(bwrap, workdir, extra_ro, limits, gpus, fds) + launcher
        if cgroup is not None and not dedicated:  # join the cgroup first, so every process lands in it
            argv = ["/bin/sh", "-c", 'echo 0 > "$0" && exec "$@"', str(cgroup.procs_file), *argv]
        full_env = sandbox_env(env, home=home, sandboxed=not unsafe, address_limit=address_limit)
        out, err = (stack.enter_context(open(p, "w+b")) for p in paths)  # w+: tails are read back via the fd
        with _tracked() as overlap:
            result = _supervise(
                argv, workdir, full_env, list(fds.values()), out, err, paths, limits, cgroup, unsafe
            )
        result.shared = overlap.shared
    result = _after(result, workdir)
    if audit_log is not None:
        audit(audit_log, log_name, cmd, result)
    return result


def _after(result: SandboxResult, workdir: Path) -> SandboxResult:
    """Scan and repair the folder the run left; a violation makes the run a failure."""
    try:
        report = files.scan(workdir)
    except files.UnsafeFile as e:
        return result.model_copy(update={"violation": e.reason, "message": f"the run left {e.reason}"})
    if report.removed or report.cleared:
        log.warning("sandbox: after %s: %s", workdir.name, report.summary())
    return result.model_copy(update={"cleaned": report.summary()})


def audit(path: Path, log_name: str, cmd: Sequence[str], result: SandboxResult) -> None:
    """One JSON line per sandboxed command: the run's audit trail (bench/pipeline.py also reads
    it to tell sandbox time from orchestration time)."""
    row = {
        "name": log_name,
        "cmd": list(cmd[:3]),
        "wall_s": round(result.wall_s, 3),
        "exit_code": result.exit_code,
        "killed_for": result.killed_for,
        "violation": result.violation or None,
        "cleaned": result.cleaned or None,
        "time": time.time(),
    }
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
    cgroup: PidsCgroup | None,
    unsafe: bool,
) -> SandboxResult:
    """Start the command, watch it until it exits or breaks a limit, and collect the result."""
    outside_logs = [p for p in paths if not p.is_relative_to(workdir)]
    watch = Watchdog(limits, workdir, outside_logs, cgroup, overhead=1 if unsafe else 2)
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
