"""Review: an ensemble of NeurIPS-style reviews plus a meta-review; optionally `improve`
revises the paper from its review and reviews it again."""

from __future__ import annotations

import json
from pathlib import Path

from agent import reviewing
from agent import workdir as wd
from agent.brain import Review
from agent.nodes.deps import Deps
from agent.nodes.plotting import paper_context
from agent.nodes.stage import StageResult
from agent.nodes.writeup import FAITH_FILE, PAPER, SECTIONS_FILE, build
from agent.progress import emit
from agent.state import IdeaTask

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
    text = reviewing.paper_text(workdir / PAPER / "paper.pdf")
    outcome = reviewing.review_paper(deps.brain, text, deps.settings.reviewers)
    faith = json.loads((workdir / FAITH_FILE).read_text())
    return {
        "meta": outcome.meta.model_dump(),
        "reviews": [r.model_dump() for r in outcome.reviews],
        "faithfulness": faith,
        "reviewer": deps.brain.info.label,
    }


def improve(deps: Deps, task: IdeaTask) -> StageResult:
    """Revise from the meta-review, rebuild, and review again; keep the revision's review."""
    workdir = Path(task["workdir"])
    before = json.loads((workdir / REVIEW_FILE).read_text())
    ctx = paper_context(deps, task)
    sections = json.loads((workdir / SECTIONS_FILE).read_text())
    revised = deps.brain.revise(ctx, sections, Review.model_validate(before["meta"]))
    build(deps, ctx, workdir, {**sections, **revised, "brain": sections["brain"]})
    after = review_pdf(deps, task)
    after["revised_from"] = {"overall": before["meta"]["overall"], "decision": before["meta"]["decision"]}
    (workdir / REVIEW_FILE).write_text(json.dumps(after, indent=1))
    wd.commit(workdir, f"improve: overall {before['meta']['overall']} -> {after['meta']['overall']}")
    return "archive", task
