"""Improve (optional, --improve): revise the paper from its meta-review, rebuild it, and review
it again; the revision's review is the one kept."""

from __future__ import annotations

import json
from pathlib import Path

from agent.models import Review
from agent.pipeline import workdir as wd
from agent.pipeline.deps import Deps
from agent.pipeline.nodes.plot import paper_context
from agent.pipeline.nodes.review import REVIEW_FILE, review_pdf
from agent.pipeline.nodes.writeup import SECTIONS_FILE, build
from agent.pipeline.stage import StageResult
from agent.pipeline.state import IdeaTask


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
