"""The watchdog: looks at a running command every TICK_S seconds (wall clock, memory, disk,
processes) and kills all of it, and only it, on a breach."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from agent.sandbox.cgroup import PidsCgroup
from agent.sandbox.limits import KilledFor, Limits

TICK_S = 0.2  # watchdog period


def proc_stat(pid: int) -> tuple[int, int, int] | None:
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
    table = {pid: st for pid in _all_pids() if (st := proc_stat(pid)) is not None}
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


class Watchdog:
    """Polls a running command for breaches of its limits, and kills all of it (and only it)."""

    def __init__(
        self,
        limits: Limits,
        workdir: Path,
        outside_logs: list[Path],
        cgroup: PidsCgroup | None,
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
        return {pid: st for pid in self.cgroup.pids() if (st := proc_stat(pid)) is not None}

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
        return [(pid, start) for pid, start in self.seen.items() if (st := proc_stat(pid)) and st[2] == start]

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
