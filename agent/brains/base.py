"""The `Brain` interface: every stage asks it for a typed result and never knows which
brain answers. Two implementations: `agent.brains.llm.brain.LLMBrain` (any OpenAI-compatible
endpoint) and `agent.brains.offline.brain.OfflineBrain` (no key, no network)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from agent.models import (
    Citation,
    Edit,
    ExpandContext,
    Expansion,
    ExperimentContext,
    FigureNote,
    Idea,
    IdeationContext,
    LiteratureHit,
    NoveltyDecision,
    PaperContext,
    PaperFigure,
    PlannedRun,
    PlotPlan,
    Review,
    RunRecord,
)


class BrainInfo(BaseModel):
    """Which brain this is, for papers and the archive, and what callers may rely on."""

    kind: Literal["offline", "llm"]
    model: str
    concurrent: bool = False
    """Its calls wait on the network: an ensemble's calls may run at once."""
    review_scope: str = Field(default="", description="what this brain's reviews judge, when that is less "
                              "than the whole form; printed above its reviews")

    @property
    def label(self) -> str:
        return "offline brain (no LLM)" if self.kind == "offline" else f"LLM brain, model {self.model}"


@runtime_checkable
class Brain(Protocol):
    """One method per question a stage asks. Each returns a validated model. Every call says
    which idea it is for (in its context, or as `idea`), so its cost lands on that paper."""

    info: BrainInfo

    def ideas(self, ctx: IdeationContext) -> list[Idea]:
        """Propose `ctx.num_ideas` ideas, with reflection rounds, avoiding archived ones."""

    def novelty(self, idea: Idea, hits: list[LiteratureHit]) -> NoveltyDecision:
        """Judge novelty from literature and archive hits."""

    def next_run(self, ctx: ExperimentContext) -> PlannedRun | None:
        """The next run to do given the history, or None when the idea is answered."""

    def fix_run(self, ctx: ExperimentContext, failed: RunRecord, error_tail: str) -> PlannedRun:
        """A corrected version of a run that crashed, timed out or whose edit was refused."""

    def expand(self, ctx: ExpandContext) -> Expansion | None:
        """A child of `ctx.node` of kind `ctx.kind` in the search tree (`--search tree`), or None
        when the brain has nothing new of that kind to try from that node."""

    def plot_plan(self, ctx: PaperContext) -> PlotPlan:
        """Which runs to plot and how to label them."""

    def describe_figures(self, ctx: PaperContext, files: list[str]) -> list[FigureNote]:
        """A caption and description for each figure file."""

    def write_section(self, ctx: PaperContext, section: str, written: dict[str, str]) -> str:
        """LaTeX body of one section (see agent.templates.SECTIONS), or the title for 'title'."""

    def citations(self, ctx: PaperContext) -> list[Citation]:
        """BibTeX entries to add to references.bib."""

    def fix_latex(self, tex: str, log_tail: str, *, idea: str = "") -> list[Edit]:
        """Edits to paper.tex that make it compile (path 'paper.tex')."""

    def fix_numbers(self, ctx: PaperContext, section: str, text: str, bad: list[str]) -> str:
        """Rewrite a section so every number in it comes from the results."""

    def review(self, paper_text: str, figures: Sequence[PaperFigure] = (), *, idea: str = "") -> Review:
        """One NeurIPS-style review of a paper's text (a PDF's structure as Markdown); `figures`
        are the paper's figures as PNGs with their captions, for a brain that looks at them."""

    def meta_review(self, reviews: list[Review], *, idea: str = "") -> Review:
        """Combine an ensemble of reviews into one (with a reflection round)."""

    def revise(self, ctx: PaperContext, sections: dict[str, str], review: Review) -> dict[str, str]:
        """Revised sections answering the review's weaknesses."""
