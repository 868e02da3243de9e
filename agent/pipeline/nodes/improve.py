"""Improve (optional, --improve): revise the paper from its meta-review, rebuild it, and review
it again; the revision's review is the one kept."""

from __future__ import annotations

from agent.models import Idea
from agent.pipeline.deps import Deps
from agent.pipeline.nodes.review import review_pdf
from agent.pipeline.nodes.writeup import build, context
from agent.pipeline.stage import StageResult
from agent.pipeline.state import IdeaTask


def improve(deps: Deps, task: IdeaTask) -> StageResult:
    """Revise from the meta-review, rebuild, and review again; keep the revision's review."""
    idea = Idea.model_validate(task["idea"])
    wd = deps.workdir(idea.name)
    before = wd.review()
    ctx = context(deps, wd, idea)
    sections = wd.sections()
    revised = deps.brain.revise(ctx, sections, before.meta)
    build(deps, ctx, wd, {**sections, **revised, "brain": sections["brain"]})
    after = review_pdf(deps, wd).model_copy(
        update={"revised_from": {"overall": before.meta.overall, "decision": before.meta.decision}})
    wd.save_review(after)
    wd.commit(f"improve: overall {before.meta.overall} -> {after.meta.overall}", always=True)
    return "archive", task
