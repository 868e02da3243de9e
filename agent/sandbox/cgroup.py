"""A pids cgroup per run: a process cap the kernel enforces even for uid 0, and the exact list of
the run's processes, detached ones included. Only where we may create cgroups (root)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path


class PidsCgroup:
    """A pids cgroup for one run: a process cap the kernel enforces even for uid 0, and the exact
    list of the run's processes, detached ones included. Only where we may create cgroups (root)."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, max_tasks: int) -> PidsCgroup | None:
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
