"""Review: an ensemble of NeurIPS-style reviews plus a meta-review of the compiled PDF."""

from __future__ import annotations

import tempfile
from pathlib import Path

from agent.models import Idea, ReviewRecord
from agent.pipeline.deps import Deps
from agent.pipeline.progress import emit
from agent.pipeline.stage import StageResult
from agent.pipeline.state import IdeaTask
from agent.pipeline.workdir import IdeaWorkdir
from agent.review.ensemble import review_paper
from agent.review.paper_text import read_paper
from agent.sandbox import files


def review(deps: Deps, task: IdeaTask) -> StageResult:
    wd = deps.workdir(Idea.model_validate(task["idea"]).name)
    record = review_pdf(deps, wd)
    wd.save_review(record)
    wd.commit(f"review: overall {record.meta.overall}", always=True)
    return task


def review_pdf(deps: Deps, wd: IdeaWorkdir) -> ReviewRecord:
    emit(wd.name, "review", note=f"{deps.settings.reviewers} reviewers")
    with tempfile.TemporaryDirectory(prefix="ai-scientist-review-") as tmp:
        pdf = Path(tmp) / "paper.pdf"  # a copy of ours: the paper folder is one LaTeX ran in
        pdf.write_bytes(files.read_bytes(wd.paper_dir, "paper.pdf"))
        paper = read_paper(pdf)
    outcome = review_paper(deps.brain, paper, deps.settings.reviewers, idea=wd.name)
    return ReviewRecord(meta=outcome.meta, reviews=outcome.reviews,
                        faithfulness=wd.faithfulness().model_dump(mode="json"), reviewer=deps.brain.info.label)
