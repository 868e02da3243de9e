"""The whole pipeline on the offline brain, through the real CLI: ideas to reviewed PDF."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent.paper import faithfulness
from tests.helpers import cli
from tests.pipeline_helpers import archived, only_run, workspace

pytestmark = pytest.mark.slow


def test_offline_run_ends_in_a_faithful_reviewed_pdf(tmp_path: Path) -> None:
    template, env = workspace(tmp_path)
    res = cli("run", "--template", str(template), "--num-ideas", "1", "--search", "linear", "--max-runs", "2",
              "--reviewers", "2",
              cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 paper(s)" in res.stdout

    [paper] = archived(tmp_path, env)
    folder = tmp_path / "archive" / paper["id"]
    pdf = folder / "paper.pdf"
    assert pdf.read_bytes()[:4] == b"%PDF"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "offline brain" in text, "the paper says which brain wrote it"
    assert list(folder.glob("*.png")), "the paper's figures are archived with it"

    # Every number printed in the paper comes from the run's results.
    results = json.loads((folder / "results.json").read_text())
    report = faithfulness.check((folder / "paper.tex").read_text(), results)
    assert report.ok and report.checked > 20, report.bad
    review = json.loads((folder / "review.json").read_text())
    assert len(review["reviews"]) == 2 and 1 <= review["meta"]["overall"] <= 10
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["brain"] == "offline"

    # The idea's workdir has a git history (its git dir out of the sandbox's reach): template,
    # baseline, each run, plot, writeup, review.
    run_dir = only_run(tmp_path)
    idea = paper["idea_name"] if "idea_name" in paper else json.loads((folder / "idea.json").read_text())["name"]
    git_dir = run_dir / f"{idea}.state" / "git"
    assert not (run_dir / idea / ".git").exists()
    log = subprocess.run(["git", f"--git-dir={git_dir}", "log", "--format=%s"], capture_output=True,
                         text=True).stdout
    for step in ("template", "run_0: baseline", "run_1:", "plot:", "writeup:", "review:"):
        assert step in log, f"missing commit {step!r} in\n{log}"
    assert (tmp_path / "archive" / "index.html").read_text().count(paper["id"]) >= 1

    status = cli("status", cwd=tmp_path, env=env)
    assert status.returncode == 0 and idea in status.stdout


def test_second_generation_proposes_new_ideas(tmp_path: Path) -> None:
    """The open-ended loop: a later generation reads the archive and avoids what it tested."""
    template, env = workspace(tmp_path)
    res = cli("run", "--template", str(template), "--num-ideas", "1", "--generations", "2",
              "--search", "linear", "--max-runs", "1",
              "--reviewers", "1", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    papers = archived(tmp_path, env)
    assert len(papers) == 2
    ideas = [json.loads((tmp_path / "archive" / p["id"] / "idea.json").read_text()) for p in papers]
    assert ideas[0]["name"] != ideas[1]["name"]
    assert set(ideas[0]["knobs"]) != set(ideas[1]["knobs"])


def test_improve_revises_and_reviews_again(tmp_path: Path) -> None:
    template, env = workspace(tmp_path)
    res = cli("run", "--template", str(template), "--num-ideas", "1", "--search", "linear", "--max-runs", "1",
              "--reviewers", "1",
              "--improve", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    [paper] = archived(tmp_path, env)
    review = json.loads((tmp_path / "archive" / paper["id"] / "review.json").read_text())
    assert "revised_from" in review, "the archived review is the revised paper's"
    assert review["faithfulness"]["ok"]
    git_dir = only_run(tmp_path) / f"{review_idea(tmp_path, paper)}.state" / "git"
    log = subprocess.run(["git", f"--git-dir={git_dir}", "log", "--format=%s"], capture_output=True,
                         text=True).stdout
    assert "improve: overall" in log


def review_idea(tmp_path: Path, paper: dict) -> str:
    return json.loads((tmp_path / "archive" / paper["id"] / "idea.json").read_text())["name"]


def test_experiments_run_on_a_local_ray_cluster(tmp_path: Path) -> None:
    """--executor ray: each sandboxed run is a Ray task; results come back into the workdir."""
    template, env = workspace(tmp_path)
    res = cli("run", "--template", str(template), "--num-ideas", "1", "--search", "linear", "--max-runs", "1",
              "--reviewers", "1",
              "--executor", "ray", cwd=tmp_path, env={**env, "RAY_ADDRESS": ""})
    assert res.returncode == 0, res.stdout + res.stderr
    [paper] = archived(tmp_path, env)
    results = json.loads((tmp_path / "archive" / paper["id"] / "results.json").read_text())
    assert results["runs"]["run_1"]["final_info"], "run_1's results came back from the Ray worker"
