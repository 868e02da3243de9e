"""The typed boundary between the pipeline and the brains: what a brain returns is validated
against these models, and what a stage hands a brain is built from them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.template.contract import Template

ACCEPT_AT = 6
"""The one accept threshold: a paper is accepted when its (mean) overall score is at least this."""

# ---------------------------------------------------------------- results a brain returns


class Idea(BaseModel):
    """One research idea, in the AI-Scientist idea schema (plus the knobs it touches)."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,48}$", description="snake_case id, unique in the run")
    title: str
    hypothesis: str
    experiment: str = Field(description="What to run, in a few sentences")
    interestingness: int = Field(ge=1, le=10)
    feasibility: int = Field(ge=1, le=10)
    novelty: int = Field(ge=1, le=10)
    knobs: list[str] = Field(default_factory=list, description="Template knobs the idea varies")
    continues: str | None = Field(
        default=None, description="Id of the archived paper this idea continues (its code is the starting point)")


class NoveltyDecision(BaseModel):
    novel: bool
    reason: str
    queries: list[str] = Field(default_factory=list, description="Literature queries that were used")
    papers: list[LiteratureHit] = Field(default_factory=list, description="The hits that drove the decision")
    rounds: int = Field(default=0, description="Search rounds the judge used (0: judged from fixed queries)")


class Edit(BaseModel):
    """One SEARCH/REPLACE edit. `search` must occur exactly once in `path`."""

    path: str = Field(description="File relative to the idea's workdir, e.g. experiment.py")
    search: str
    replace: str


class PlannedRun(BaseModel):
    """One experiment run: flag values for `experiment.py`, and code edits applied before it."""

    description: str
    args: dict[str, str] = Field(default_factory=dict, description="knob flag (e.g. --lr) -> value")
    edits: list[Edit] = Field(default_factory=list)
    knobs: dict[str, bool | int | float | str] = Field(
        default_factory=dict,
        description="Declared knob -> typed value this run sets, when the planner knows it (the offline brain "
        "does); otherwise read back from `args` and `edits` (agent.template.knobs.run_settings).",
    )


class PlotPlan(BaseModel):
    """Which runs `plot.py` draws, under what legend label; optional edits to plot.py."""

    labels: dict[str, str] = Field(description="run folder (run_0, run_1, ...) -> legend label")
    edits: list[Edit] = Field(default_factory=list)


class FigureNote(BaseModel):
    file: str = Field(description="PNG file name produced by plot.py")
    caption: str
    description: str = Field(description="What the figure shows, for the paper's text")


class Citation(BaseModel):
    key: str
    bibtex: str
    note: str = Field(default="", description="What the paper supports in ours, and where it is cited")


class CitedDraft(BaseModel):
    """Sections after citation rounds over the draft: the text with its new \\citep, and every
    citation chosen so far."""

    sections: dict[str, str]
    citations: list[Citation]
    rounds: int = 0


class FigureImage(BaseModel):
    """A figure as a model sees it: the PNG bytes (checked: a PNG, not too large) and its caption."""

    name: str
    png: bytes
    caption: str = ""


class FigureCritique(BaseModel):
    file: str
    ok: bool = Field(description="readable, labelled, shows what the caption says, not a duplicate")
    problems: list[str] = Field(default_factory=list)
    fix: str = Field(default="", description="What to change in plot.py, when not ok")


class ReviewForm(BaseModel):
    """The NeurIPS review form."""

    summary: str
    strengths: list[str]
    weaknesses: list[str]
    originality: int = Field(ge=1, le=4)
    quality: int = Field(ge=1, le=4)
    clarity: int = Field(ge=1, le=4)
    significance: int = Field(ge=1, le=4)
    questions: list[str]
    limitations: list[str]
    ethical_concerns: bool
    soundness: int = Field(ge=1, le=4)
    presentation: int = Field(ge=1, le=4)
    contribution: int = Field(ge=1, le=4)
    overall: int = Field(ge=1, le=10)
    confidence: int = Field(ge=1, le=5)
    decision: Literal["Accept", "Reject"]


class Review(ReviewForm):
    """One review: the form, and what the reviewer could not read."""

    text_cut: str = Field(default="", description="Set when only part of the paper fitted the model's context")


SCORES = ("originality", "quality", "clarity", "significance", "soundness", "presentation", "contribution",
          "overall", "confidence")


class MetaReview(Review):
    """The ensemble's verdict: the area chair's text, with every score the mean of the reviews'
    (computed in code), and the decision that follows the mean overall score."""

    originality: float = Field(ge=1, le=4)
    quality: float = Field(ge=1, le=4)
    clarity: float = Field(ge=1, le=4)
    significance: float = Field(ge=1, le=4)
    soundness: float = Field(ge=1, le=4)
    presentation: float = Field(ge=1, le=4)
    contribution: float = Field(ge=1, le=4)
    overall: float = Field(ge=1, le=10)
    confidence: float = Field(ge=1, le=5)

    @classmethod
    def of(cls, text: Review, reviews: list[Review]) -> MetaReview:
        means = {k: round(sum(getattr(r, k) for r in reviews) / len(reviews), 2) for k in SCORES}
        decision = "Accept" if means["overall"] >= ACCEPT_AT else "Reject"
        cut = next((r.text_cut for r in [text, *reviews] if r.text_cut), "")
        return cls(**{**text.model_dump(), **means, "decision": decision, "text_cut": cut})


# ---------------------------------------------------------------- what a brain is given


class PaperFigure(BaseModel):
    """A figure of a paper under review, rendered to PNG in the sandbox, with its caption:
    what a reviewer that reads images is shown."""

    page: int = Field(ge=1)
    caption: str = ""
    png: bytes = Field(repr=False, description="the figure's region of the page, as a PNG")
    media_type: Literal["image/png"] = "image/png"


class ArchivedIdea(BaseModel):
    """A past paper as ideation sees it: enough to avoid repeats and learn from scores."""

    template: str
    name: str
    title: str
    hypothesis: str
    knobs: list[str] = Field(default_factory=list)
    score: float | None = None
    decision: str | None = None
    paper_id: str | None = None
    human_score: float | None = Field(default=None, description="the researcher's own score, 1-10")
    note: str = Field(default="", description="the researcher's note on the paper")
    mark: str | None = Field(default=None, description="follow-up | discard")
    continues: str | None = Field(default=None, description="the paper this one continued")

    @property
    def best_score(self) -> float | None:
        """The researcher's score where there is one: it outranks the automated review's."""
        return self.human_score if self.human_score is not None else self.score


class LiteratureHit(BaseModel):
    title: str
    abstract: str = ""
    year: int | None = None
    authors: list[str] = Field(default_factory=list)
    venue: str = ""
    source: str = Field(description="semantic_scholar | openalex | archive | bib")
    score: float = 0.0
    bibtex: str = ""
    knobs: list[str] = Field(default_factory=list, description="Knobs the past idea varied (archive hits)")


class IdeationContext(BaseModel):
    template: Template
    archive: list[ArchivedIdea] = Field(description="past papers, with the researcher's verdicts where given")
    seed_ideas: list[Idea]
    num_ideas: int
    reflections: int = Field(default=3, description="Reflection rounds per idea, with an early stop")
    failed: list[Outcome] = Field(default_factory=list, description="Earlier ideas that failed, with stage and reason")
    code: str = Field(default="", description="The template's experiment.py")
    max_runs: int = Field(default=5, description="Runs an idea gets (--max-runs)")
    follow_ups: list[ArchivedIdea] = Field(
        default_factory=list, description="papers the researcher marked follow-up and no idea has continued yet: "
        "propose their continuations first (Idea.continues = their paper_id)")


class RunRecord(BaseModel):
    """What happened to one planned run (after any fixes)."""

    name: str = Field(description="run folder: run_1, run_2, ...")
    planned: PlannedRun
    ok: bool
    results: dict[str, Any] | None = Field(default=None, description="final_info.json when ok")
    error: str | None = None
    fixes: int = 0
    wall_s: float = 0.0


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class Conversation(BaseModel):
    """A brain's running conversation about one idea (the coder's memory across runs), kept in
    the idea's state folder so that it survives `resume`. Old turns are folded into `summary`
    so that the whole stays within a token budget."""

    summary: str = ""
    turns: list[Turn] = Field(default_factory=list)
    folded: int = Field(default=0, description="Turns folded into the summary so far")


class ExperimentContext(BaseModel):
    idea: Idea
    template: Template
    scale: str
    baseline: dict[str, Any] = Field(description="run_0/final_info.json")
    history: list[RunRecord] = Field(default_factory=list)
    max_runs: int
    code: str = Field(default="", description="Current experiment.py")
    memory: Conversation = Field(default_factory=Conversation, description="The coder's memory of this idea")
    prior: dict[str, Any] | None = Field(
        default=None, description="for a continuation: the continued paper's findings and verdict")


class PaperContext(BaseModel):
    """Everything the writeup, plotting and review stages know about one idea."""

    idea: Idea
    template: Template
    scale: str
    baseline: dict[str, Any]
    runs: list[RunRecord]
    analysis: dict[str, Any] = Field(default_factory=dict, description="agent.analysis output")
    figures: list[FigureNote] = Field(default_factory=list)
    notes: str = ""
    literature: list[LiteratureHit] = Field(default_factory=list)
    bib_keys: list[str] = Field(default_factory=list, description="keys in references.bib")
    author_line: str = Field(default="", description="Which brain and model wrote the paper")


# ---------------------------------------------------------------- what the stages record


class Results(BaseModel):
    """`results.json`: every run's numbers and the analysis. A paper may quote nothing else."""

    template: str
    scale: str
    seeds: list[int]
    datasets: list[str]
    baseline: dict[str, Any] = Field(description="run_0/final_info.json")
    runs: dict[str, dict[str, Any]] = Field(description="run name -> description, args, final_info, wall_s")
    failed_runs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    analysis: dict[str, Any] = Field(description="agent.analysis.Analysis, as JSON")


class ReviewRecord(BaseModel):
    """`review.json`: the ensemble, its meta-review, and the faithfulness report of the paper."""

    meta: MetaReview
    reviews: list[Review]
    faithfulness: dict[str, Any]
    reviewer: str = Field(description="Which brain and model reviewed")
    revised_from: dict[str, Any] | None = Field(default=None, description="overall and decision before --improve")


class Outcome(BaseModel):
    """How one idea of one run ended: archived as a paper, or stopped at a stage, and why. The
    one record of an idea's end: graph state, the archive's index and `outcomes.jsonl` hold it."""

    run_id: str
    template: str
    idea_name: str
    title: str = ""
    stage: str
    status: str = Field(description="archived | failed | skipped (lower case)")
    reason: str = ""
    paper_id: str | None = None
    score: float | None = Field(default=None, description="the paper's overall score, when archived")
    recorded_at: str = ""

    @property
    def archived(self) -> bool:
        return self.status == "archived"



NoveltyDecision.model_rebuild()  # it names LiteratureHit, defined below it
IdeationContext.model_rebuild()  # it names Outcome
