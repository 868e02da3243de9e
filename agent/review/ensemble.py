"""Reviewing a paper: an ensemble of reviewers, combined by a meta-review.

`review_paper` makes `reviewers` independent `brain.review` calls (in parallel for an LLM
brain, whose calls wait on the network) and one `brain.meta_review`, which writes the
meta-review and reflects on it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from agent.brains.base import Brain
from agent.errors import UserError
from agent.models import Review
from agent.review.pdf_layout import Paper


class ReviewOutcome(BaseModel):
    """The ensemble's reviews and the meta-review that decides."""

    reviews: list[Review]
    meta: Review


def review_paper(brain: Brain, paper: Paper | str, reviewers: int = 3, idea: str = "") -> ReviewOutcome:
    """`reviewers` reviews of `paper` (read by `agent.review.paper_text.read_paper`, or plain
    text) and their meta-review (with a reflection round); `idea` names the idea the paper is
    for (empty for a paper from outside)."""
    if reviewers < 1:
        raise UserError(f"--reviewers must be at least 1, got {reviewers}")
    text, figures = (paper, []) if isinstance(paper, str) else (paper.text(), paper.figures)
    if brain.info.concurrent and reviewers > 1:
        with ThreadPoolExecutor(max_workers=reviewers) as pool:
            reviews = list(pool.map(lambda _: brain.review(text, figures, idea=idea), range(reviewers)))
    else:
        reviews = [brain.review(text, figures, idea=idea) for _ in range(reviewers)]
    return ReviewOutcome(reviews=reviews, meta=brain.meta_review(reviews, idea=idea))
