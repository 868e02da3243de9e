"""Reviewing a paper: an ensemble of reviewers, combined by a meta-review.

`review_paper` makes `reviewers` independent `brain.review` calls (in parallel for an LLM
brain, whose calls wait on the network; each one sampled, so they differ) and one
`brain.meta_review`, which writes the area chair's text and reflects on it in up to
`reflections` rounds. The meta-review's scores are then the means of the reviews' scores,
computed here, and its decision follows the mean overall score (Accept at `ACCEPT_AT`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from agent.brains.base import Brain
from agent.errors import UserError
from agent.models import MetaReview, Review
from agent.review.pdf_layout import Paper


class ReviewOutcome(BaseModel):
    """The ensemble's reviews and the meta-review that decides."""

    reviews: list[Review]
    meta: MetaReview


def review_paper(brain: Brain, paper: Paper | str, reviewers: int = 5, idea: str = "", *,
                 reflections: int = 3) -> ReviewOutcome:
    """`reviewers` reviews of `paper` (read by `agent.review.paper_text.read_paper`, with its
    figures, or plain text) and their meta-review; `idea` names the idea the paper is for
    (empty for a paper from outside)."""
    if reviewers < 1:
        raise UserError(f"--reviewers must be at least 1, got {reviewers}")
    text, figures = (paper, []) if isinstance(paper, str) else (paper.text(), paper.figures)

    def one(_: int) -> Review:
        return brain.review(text, figures, idea=idea)

    if brain.info.concurrent and reviewers > 1:
        with ThreadPoolExecutor(max_workers=reviewers) as pool:
            reviews = list(pool.map(one, range(reviewers)))
    else:
        reviews = [one(i) for i in range(reviewers)]
    meta = brain.meta_review(reviews, idea=idea, paper_text=text, reflections=reflections)
    return ReviewOutcome(reviews=reviews, meta=MetaReview.of(meta, reviews))
