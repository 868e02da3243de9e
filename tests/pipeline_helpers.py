"""Shared by the pipeline tests: a workspace with a fast template, and readers for what a
run leaves behind (status, archive listing)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.helpers import CLI, REPO, cli, scaffold


def workspace(tmp_path: Path) -> tuple[Path, dict]:
    """A folder with the minimal template and an env pointing runs and archive inside it."""
    scaffold(tmp_path, "tiny")
    env = {"AI_SCIENTIST_EXPERIMENTS": str(tmp_path / "experiments"), "AI_SCIENTIST_ARCHIVE": str(tmp_path / "archive"),
           "AI_SCIENTIST_MODEL": "offline"}
    return tmp_path / "tiny", env


def archived(tmp_path: Path, env: dict) -> list[dict]:
    res = cli("archive", "list", "--json", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def start_run(tmp_path: Path, env: dict, *args: str) -> subprocess.Popen:
    """Start `ai-scientist run` in its own session, so the test can kill its whole group."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.Popen([*CLI, "run", *args], cwd=tmp_path, env=full_env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 400, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {what}: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run and everything it started (its own session only)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def only_run(tmp_path: Path) -> Path:
    runs = [p for p in (tmp_path / "experiments").iterdir() if (p / "settings.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]


def statuses(run_dir: Path) -> dict:
    path = run_dir / "status.json"
    try:
        return json.loads(path.read_text())["ideas"] if path.is_file() else {}
    except ValueError:  # being replaced right now
        return {}


def leftover_processes(marker: str, settle_s: float = 10.0) -> list[str]:
    """Command lines of live processes that mention `marker` (e.g. the test's tmp folder), once
    the kernel has had `settle_s` to deliver the parent-death signals a SIGKILL sets off (on a
    loaded machine a dying sandbox can take a moment to be reaped)."""
    deadline = time.time() + settle_s
    while (found := _processes_with(marker)) and time.time() < deadline:
        time.sleep(0.1)
    return found


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and int(pid) != os.getpid():
            found.append(cmd)
    return found
