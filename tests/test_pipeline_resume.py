"""Durability: SIGKILL the run mid-experiment and mid-writeup, resume it, and find exactly the
expected papers, with no finished stage done twice and no process left behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import cli
from tests.pipeline_helpers import (
    archived,
    kill_group,
    leftover_processes,
    only_run,
    start_run,
    statuses,
    wait_for,
    workspace,
)

pytestmark = pytest.mark.slow


def _runs(workdir: Path) -> list[dict]:
    """The finished runs of the idea whose work tree is `workdir` (from its state folder)."""
    path = workdir.with_name(f"{workdir.name}.state") / "runs.json"
    return json.loads(path.read_text()) if path.is_file() else []


def _ideas(run_dir: Path) -> list[Path]:
    """The work trees of a run's ideas that have finished runs."""
    return [w for w in run_dir.iterdir() if w.is_dir() and not w.name.endswith(".state") and _runs(w)]


def test_kill_mid_experiment_then_resume(tmp_path: Path) -> None:
    template, env = workspace(tmp_path)
    proc = start_run(tmp_path, env, "--template", str(template), "--num-ideas", "2", "--search", "linear",
                     "--max-runs", "2",
                     "--reviewers", "1")
    wait_for(lambda: (tmp_path / "experiments").is_dir() and any(
        len(_runs(w)) == 1 and (w / "run_2").exists()
        for w in (tmp_path / "experiments").glob("*/*") if w.is_dir()), proc, what="run_2 of an idea to start")
    run_dir = only_run(tmp_path)
    done_before = {w.name: _runs(w) for w in _ideas(run_dir)}
    kill_group(proc)
    assert not leftover_processes(str(tmp_path)), "the sandboxed experiment died with the run"

    res = cli("resume", run_dir.name, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    papers = archived(tmp_path, env)
    assert len(papers) == 2, papers
    for idea, before in done_before.items():
        after = _runs(run_dir / idea)
        assert after[: len(before)] == before, "finished runs are kept, not redone"
        git_dir = run_dir / f"{idea}.state" / "git"  # out of the sandbox's reach
        log = subprocess.run(["git", f"--git-dir={git_dir}", "log", "--format=%s"], capture_output=True,
                             text=True).stdout
        assert log.count("run_1: ok") == 1


def test_kill_mid_writeup_then_resume_no_duplicate(tmp_path: Path) -> None:
    template, env = workspace(tmp_path)
    proc = start_run(tmp_path, env, "--template", str(template), "--num-ideas", "1", "--search", "linear",
                     "--max-runs", "1",
                     "--reviewers", "1")
    wait_for(lambda: (tmp_path / "experiments").is_dir() and any(
        row.get("stage") == "writeup" for d in (tmp_path / "experiments").iterdir() for row in statuses(d).values()),
        proc, what="the writeup stage")
    kill_group(proc)
    run_dir = only_run(tmp_path)
    [idea] = _ideas(run_dir)
    runs_before = _runs(idea)

    res = cli("resume", run_dir.name, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _runs(idea) == runs_before, "experiments are not redone after a kill in the writeup"
    assert len(archived(tmp_path, env)) == 1
    again = cli("resume", run_dir.name, cwd=tmp_path, env=env)
    assert again.returncode == 0 and "already finished" in again.stdout
    assert len(archived(tmp_path, env)) == 1, "resuming a finished run adds nothing"
