"""The typed boundary between the pipeline and the brains: what a brain returns is validated
against these models, and what a stage hands a brain is built from them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.template.contract import Template

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


class NoveltyDecision(BaseModel):
    novel: bool
    reason: str
    queries: list[str] = Field(default_factory=list, description="Literature queries that were used")


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


class Review(BaseModel):
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


class LiteratureHit(BaseModel):
    title: str
    abstract: str = ""
    year: int | None = None
    authors: list[str] = Field(default_factory=list)
    venue: str = ""
    source: str = Field(description="semantic_scholar | openalex | archive | bib")
    score: float = 0.0
    bibtex: str = ""


class IdeationContext(BaseModel):
    template: Template
    archive: list[ArchivedIdea]
    seed_ideas: list[Idea]
    num_ideas: int
    reflections: int = 2


class RunRecord(BaseModel):
    """What happened to one planned run (after any fixes)."""

    name: str = Field(description="run folder: run_1, run_2, ...")
    planned: PlannedRun
    ok: bool
    results: dict[str, Any] | None = Field(default=None, description="final_info.json when ok")
    error: str | None = None
    fixes: int = 0
    wall_s: float = 0.0


class ExperimentContext(BaseModel):
    idea: Idea
    template: Template
    scale: str
    baseline: dict[str, Any] = Field(description="run_0/final_info.json")
    history: list[RunRecord] = Field(default_factory=list)
    max_runs: int
    code: str = Field(default="", description="Current experiment.py")


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
