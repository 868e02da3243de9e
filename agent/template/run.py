"""How the orchestrator calls a template's `experiment.py`: its command line and its limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.sandbox.runner import Limits, python_executable
from agent.template.contract import Template


def limits_for(template: Template, scale: str) -> Limits:
    prof = template.profile(scale)
    return Limits(timeout_s=prof.timeout_s, memory_mb=prof.memory_mb)


def experiment_cmd(template: Template, scale: str, run: str, args: dict[str, str] | None = None) -> list[str]:
    cmd = [python_executable(), "experiment.py", "--out_dir", run, *template.experiment_args(scale)]
    for flag, value in (args or {}).items():
        cmd += [flag, value]
    return cmd


def load_info(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "final_info.json").read_text())
