"""What the nodes need from the outside world, passed in rather than imported as globals."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.archive import Archive
from agent.brain import Brain
from agent.config import RunSettings
from agent.executors import Executor
from agent.templates import Template


@dataclass
class Deps:
    settings: RunSettings
    template: Template
    brain: Brain
    executor: Executor
    archive: Archive
    run_dir: Path

    def workdir(self, idea_name: str) -> Path:
        return self.run_dir / idea_name
