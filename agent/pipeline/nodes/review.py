"""Review: an ensemble of NeurIPS-style reviews plus a meta-review; optionally `improve`
revises the paper from its review and reviews it again."""

from __future__ import annotations

import json
from pathlib import Path

from agent.pipeline import workdir as wd
from agent.pipeline.deps import Deps
from agent.pipeline.nodes.writeup import FAITH_FILE, PAPER
from agent.pipeline.progress import emit
from agent.pipeline.stage import StageResult
from agent.pipeline.state import IdeaTask
from agent.review.ensemble import review_paper
from agent.review.paper_text import read_paper

REVIEW_FILE = "review.json"


def review(deps: Deps, task: IdeaTask) -> StageResult:
    workdir = Path(task["workdir"])
    record = review_pdf(deps, task)
    (workdir / REVIEW_FILE).write_text(json.dumps(record, indent=1))
    wd.commit(workdir, f"review: overall {record['meta']['overall']}")
    return ("improve" if deps.settings.improve and "revised_from" not in record else "archive"), task


def review_pdf(deps: Deps, task: IdeaTask) -> dict:
    workdir = Path(task["workdir"])
    emit(task["idea"]["name"], "review", note=f"{deps.settings.reviewers} reviewers")
    paper = read_paper(workdir / PAPER / "paper.pdf")
    outcome = review_paper(deps.brain, paper, deps.settings.reviewers)
    faith = json.loads((workdir / FAITH_FILE).read_text())
    return {
        "meta": outcome.meta.model_dump(),
        "reviews": [r.model_dump() for r in outcome.reviews],
        "faithfulness": faith,
        "reviewer": deps.brain.info.label,
    }
