"""The experiments folder: one folder per run, known by its `settings.json`. Kept apart from
the runner so that `status` and a mistyped `resume` answer without loading the graph."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from agent.errors import ConfigError

SETTINGS_FILE = "settings.json"


def new_run_id(template: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{template}-{secrets.token_hex(2)}"


def find_run(experiments: Path, run_id: str) -> Path:
    run_dir = experiments / run_id
    if not (run_dir / SETTINGS_FILE).is_file():
        known = _by_age(experiments)
        hint = f" (recent: {', '.join(known[-3:])})" if known else ""
        raise ConfigError(f"no run {run_id!r} in {experiments}/{hint}")
    return run_dir


def latest_run(experiments: Path) -> str | None:
    runs = _by_age(experiments)
    return runs[-1] if runs else None


def _by_age(experiments: Path) -> list[str]:
    """The run ids, oldest first."""
    return [p.parent.name for p in sorted(experiments.glob("*/" + SETTINGS_FILE), key=lambda p: p.stat().st_mtime)]
