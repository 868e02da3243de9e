"""The `Brain` interface: every stage asks it for a typed result and never knows which
brain answers. Two implementations: `agent.brains.llm.brain.LLMBrain` (any OpenAI-compatible
endpoint) and `agent.brains.offline.brain.OfflineBrain` (no key, no network)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from agent.literature import LiteratureSearch
from agent.models import (
    CitedDraft,
    Edit,
    ExpandContext,
    Expansion,
    ExperimentContext,
    FigureCritique,
    FigureImage,
    FigureNote,
    Idea,
    IdeationContext,
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
    reviews_vary: bool = False
    """Its reviews are samples, so an ensemble of several says more than one review does."""
    review_model: str = ""
    """The reviewers' model, when it is not `model` (--review-model)."""
    review_scope: str = Field(default="", description="what this brain's reviews judge, when that is less "
                              "than the whole form; printed above its reviews")

    @property
    def label(self) -> str:
        return "offline brain (no LLM)" if self.kind == "offline" else f"LLM brain, model {self.model}"

    @property
    def reviewer_label(self) -> str:
        return f"LLM brain, model {self.review_model}" if self.review_model else self.label


@runtime_checkable
class Brain(Protocol):
    """One method per question a stage asks. Each returns a validated model. Every call says
    which idea it is for (in its context, or as `idea`), so its cost lands on that paper."""

    info: BrainInfo

    def ideas(self, ctx: IdeationContext) -> list[Idea]:
        """Propose up to `ctx.num_ideas` ideas, each refined in up to `ctx.reflections` rounds,
        avoiding archived and failed ones. Raises StageFailed only when no idea came out."""

    def novelty(self, idea: Idea, search: LiteratureSearch, rounds: int) -> NoveltyDecision:
        """Judge novelty, searching the literature and the archive in up to `rounds` rounds."""

    def next_run(self, ctx: ExperimentContext) -> PlannedRun | None:
        """The next run to do given the history, or None when the idea is answered. May add
        to `ctx.memory`, which the stage saves."""

    def fix_run(self, ctx: ExperimentContext, failed: RunRecord, error_tail: str) -> PlannedRun:
        """A corrected version of a run that crashed, timed out or whose edit was refused."""

    def run_notes(self, ctx: ExperimentContext, run: RunRecord) -> str:
        """The lab notebook's entry for a finished run: what changed, the numbers, what it means."""

    def expand(self, ctx: ExpandContext) -> Expansion | None:
        """A child of `ctx.node` of kind `ctx.kind` in the search tree (`--search tree`), or None
        when the brain has nothing new of that kind to try from that node."""

    def plot_plan(self, ctx: PaperContext) -> PlotPlan:
        """Which runs to plot and how to label them."""

    def fix_plot(self, ctx: PaperContext, code: str, problem: str) -> list[Edit]:
        """Edits to plot.py for a failure (its error tail) or a critique of its figures; [] gives up."""

    def describe_figures(self, ctx: PaperContext, files: list[str]) -> list[FigureNote]:
        """A caption and description for each figure file."""

    def critique_figures(self, ctx: PaperContext, figures: list[FigureImage]) -> list[FigureCritique]:
        """A look at each figure (when the brain can see images; [] when it cannot)."""

    def write_section(self, ctx: PaperContext, section: str, written: dict[str, str]) -> str:
        """LaTeX body of one section (see agent.templates.SECTIONS), or the title for 'title';
        `written` holds the sections written so far, in full."""

    def citations(self, ctx: PaperContext, sections: dict[str, str], search: LiteratureSearch,
                  rounds: int) -> CitedDraft:
        """Up to `rounds` rounds of query, choose and cite. Before writing (`sections` empty)
        the chosen papers are for the writer to cite; over a draft, each new one is cited in
        the sections where it belongs."""

    def polish(self, ctx: PaperContext, sections: dict[str, str]) -> dict[str, str]:
        """One pass over the whole paper for consistency, redundancy and length."""

    def fix_latex(self, tex: str, log_tail: str, *, idea: str = "") -> list[Edit]:
        """Edits to paper.tex that make it compile (path 'paper.tex')."""

    def fix_numbers(self, ctx: PaperContext, section: str, text: str, bad: list[str]) -> str:
        """Rewrite a section so every number in it comes from the results."""

    def review(self, paper_text: str, figures: Sequence[PaperFigure] = (), *, idea: str = "") -> Review:
        """One NeurIPS-style review of a paper's text (a PDF's structure as Markdown); `figures`
        are the paper's figures as PNGs with their captions, for a brain that looks at them."""

    def meta_review(self, reviews: list[Review], *, idea: str = "", paper_text: str = "",
                    reflections: int = 1) -> Review:
        """The area chair's text over an ensemble of reviews, checked in up to `reflections`
        rounds (the caller replaces its scores with the reviews' means)."""

    def revise(self, ctx: PaperContext, sections: dict[str, str], review: Review) -> dict[str, str]:
        """Revised sections answering the review's weaknesses."""
