"""Shared pieces of the adversarial sandbox suite: a project-shaped folder with canaries planted
around the run's work folder, and checks that nothing outlived a run or was written outside it."""

from __future__ import annotations

import hashlib
import os
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

from agent.sandbox import runner as sandbox
from agent.sandbox.limits import Limits, SandboxResult

CANARY = "CANARY-" + uuid.uuid4().hex  # planted in every secret; must never show up in a run's output


@dataclass
class Site:
    """tmp_path laid out like a user's machine: a home with keys, a project with a .env, an
    archive, a config file and other runs, and the work folder of the run under test."""

    root: Path
    home: Path
    project: Path
    workdir: Path
    outside: Path  # a folder next to the work folder that the run must not touch
    secrets: list[Path]
    config: Path

    def snapshot(self) -> dict[str, str]:
        """Every path under root except the work folder, with a hash of its content."""
        state = {}
        for p in sorted(self.root.rglob("*")):
            if p == self.workdir or self.workdir in p.parents:
                continue
            rel = str(p.relative_to(self.root))
            state[rel] = (
                hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else "dir"
            )
        return state


def write_script(workdir: Path, body: str, name: str = "hostile.py") -> Path:
    path = workdir / name
    path.write_text(textwrap.dedent(body))
    return path


def run_script(site: Site, body: str, limits: Limits, *args: str, **kw) -> SandboxResult:
    """Run a hostile Python script from the work folder; a unique marker in its argv finds every
    process it leaves behind."""
    script = write_script(site.workdir, body)
    return sandbox.run([sandbox.python_executable(), str(script), *args], site.workdir, limits, **kw)


def marker() -> str:
    return "HOSTILE-" + uuid.uuid4().hex


def processes_with(mark: str) -> list[int]:
    """Live processes whose command line carries `mark` (zombies hold nothing and are skipped)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if mark.encode() in cmdline and state != b"Z":
            found.append(int(name))
    return found


def assert_contained(site: Site, before: dict[str, str], mark: str | None = None) -> None:
    """Afterwards: no process of the run is left, and nothing outside the work folder changed."""
    if mark is not None:
        assert processes_with(mark) == []
    assert site.snapshot() == before
