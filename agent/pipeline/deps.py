"""What the nodes need from the outside world, passed in rather than imported as globals."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.archive.store import Archive
from agent.brains.base import Brain
from agent.brains.llm.ledger import Ledger
from agent.config import RunSettings
from agent.pipeline.workdir import IdeaWorkdir
from agent.sandbox import files
from agent.sandbox.executors import Executor, LocalExecutor
from agent.template.contract import Template


@dataclass
class Deps:
    settings: RunSettings
    template: Template
    brain: Brain
    ledger: Ledger
    """Every LLM call of the run with its cost, kept by the runner, not by the brain."""
    executor: Executor
    """Where experiment and plot runs go: this machine, or a Ray cluster."""
    local: LocalExecutor
    """This machine's sandbox, for what only runs here (LaTeX)."""
    archive: Archive
    run_dir: Path
    slots: threading.BoundedSemaphore = field(init=False)
    """Bounds how many ideas are inside a stage at once (--parallel)."""

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(self.settings.parallel)

    def workdir(self, idea_name: str) -> IdeaWorkdir:
        return IdeaWorkdir(self.run_dir, idea_name)

    @property
    def baseline_dir(self) -> Path:
        """This run's copy of the baseline `run_0`: ours, never bound into a sandbox."""
        return self.run_dir / "baseline"

    def baseline(self) -> dict[str, Any]:
        """The baseline's final_info.json, from this run's own copy (never the work tree's)."""
        return files.read_json(self.baseline_dir, "run_0/final_info.json")
