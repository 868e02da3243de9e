"""Small helpers shared by tests: run the real console script, make a scaffold template."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "agent.cli"]


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `ai-scientist ARGS` as a user would, capturing output."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([*CLI, *args], cwd=cwd or REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def scaffold(dest: Path, name: str = "tiny") -> Path:
    """A fresh copy of the minimal template that `template new` writes."""
    res = cli("template", "new", name, "--dest", str(dest))
    assert res.returncode == 0, res.stderr
    return dest / name
