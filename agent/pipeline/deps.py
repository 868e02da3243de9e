"""What the nodes need from the outside world, passed in rather than imported as globals."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from agent.archive.store import Archive
from agent.brains.base import Brain
from agent.config import RunSettings
from agent.sandbox.executors import Executor
from agent.template.contract import Template


@dataclass
class Deps:
    settings: RunSettings
    template: Template
    brain: Brain
    executor: Executor
    archive: Archive
    run_dir: Path
    slots: threading.BoundedSemaphore = field(init=False)
    """Bounds how many ideas are inside a stage at once (--parallel)."""

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(self.settings.parallel)

    def workdir(self, idea_name: str) -> Path:
        return self.run_dir / idea_name
