"""What a sandboxed run may use (`Limits`) and what happened to it (`SandboxResult`): plain data,
set by the orchestrator and never read from a file the code under test can reach."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

KilledFor = Literal["timeout", "memory", "disk", "procs"]


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
    violation: str = Field("", description="What the run left that it may not (an unlistable folder, git "
                           "metadata, a tree past its caps); a run with one has failed.")
    cleaned: str = Field("", description="What the post-run scan removed or repaired (links, special files, "
                         "setuid bits).")
    shared: bool = Field(False, description="Another sandboxed command ran during this one (on this machine "
                         "from this process, or anywhere on a Ray cluster), so its wall-clock times measure "
                         "the load as well as the code.")

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed_for is None and not self.violation

    def error_tail(self, lines: int = 40) -> str:
        """The reason and the last `lines` lines of stderr (or stdout), for feeding back to the brain."""
        head = self.message or (f"exit code {self.exit_code}" if self.exit_code else "")
        tail = self.stderr_tail.strip() or self.stdout_tail.strip()
        body = "\n".join(tail.splitlines()[-lines:])
        return "\n".join(part for part in (head, body) if part)
