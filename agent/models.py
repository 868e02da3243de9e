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
    shared: bool = Field(default=False, description="other sandboxed runs shared the machine during it, so "
                         "its wall-clock metrics are not compared")


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


# ---------------------------------------------------------------- the experiment search tree

NodeKind = Literal["root", "draft", "debug", "improve", "tune", "ablate", "replicate"]
SearchStage = Literal["tune", "research", "ablate", "confirm"]
STAGES: tuple[SearchStage, ...] = ("tune", "research", "ablate", "confirm")


class SearchNode(BaseModel):
    """One node of an idea's search tree (`--search tree`): code, as a git commit, plus what
    running it gave. The root is the unchanged template, whose run is the cached baseline."""

    id: int
    parent: int | None
    kind: NodeKind
    stage: SearchStage | None = Field(default=None, description="None for the root")
    plan: PlannedRun = Field(description="What the brain proposed: its own flag changes and code edits")
    args: dict[str, str] = Field(default_factory=dict, description="The run's flags: the parent's, then the plan's")
    settings: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="Declared knob -> value, where the node differs from the template")
    seeds: list[int]
    commit: str = Field(default="", description="The commit of the code it ran")
    run: str = Field(description="Its output folder in its node folder (run_0 for the root)")
    status: Literal["planned", "done"] = "planned"
    results: dict[str, Any] | None = Field(default=None, description="final_info.json, validated")
    metric: float | None = Field(default=None, description="The primary metric's mean over datasets")
    score: float | None = Field(
        default=None, description="Mean relative change of the primary metric against the root on the same "
        "seeds, signed so that higher is better (0 for the root)")
    buggy: bool = False
    bug: str = Field(default="", description="Why it is buggy: crashed, bad results, refused edit, brain's flag")
    error_tail: str = ""
    wall_s: float = 0.0
    shared: bool = Field(default=False, description="Other sandboxed runs shared the machine during it")
    started: float | None = None
    finished: float | None = None
    debug_depth: int = Field(default=0, description="Debug nodes on the path up to and including this one")
    debug: bool | None = Field(default=None, description="Buggy: whether the (seeded) draw chose to debug it")
    screened: bool = Field(default=False, description="Run on the first search seed only (successive halving)")
    halving: Literal["waiting", "promoted", "pruned"] | None = Field(
        default=None, description="A screened node's fate: waiting for its rung, rerun on every seed, or not")
    exhausted: list[NodeKind] = Field(default_factory=list, description="Kinds of child the brain had no more of")


class SearchTree(BaseModel):
    """`search.json` in an idea's state folder: the whole search, saved after every node."""

    idea: str
    metric: str
    direction: Literal["minimize", "maximize"]
    budget: int = Field(description="Nodes the search may add to the root, confirmation included")
    budgets: dict[str, int] = Field(description="Nodes per stage, in stage order; unused ones roll over")
    seeds: list[int] = Field(description="The search's seeds (the scale's); screening uses the first")
    fresh_seeds: list[int] = Field(description="Seeds the search never used: confirmation runs on these")
    wall_cap_s: float | None = None
    stage: SearchStage = "tune"
    nodes: list[SearchNode]
    elapsed_s: float = Field(default=0.0, description="Search time over every session of the run")
    selected: int | None = Field(default=None, description="The node the exploration selected to confirm")
    confirmed: dict[str, int] = Field(
        default_factory=dict, description="baseline / selected -> the confirmation node that reran it")
    done: bool = False

    def node(self, node_id: int) -> SearchNode:
        return self.nodes[node_id]

    def children(self, node_id: int) -> list[SearchNode]:
        return [n for n in self.nodes if n.parent == node_id]

    def ancestors(self, node_id: int) -> list[SearchNode]:
        """The path from the root down to `node_id`, both included."""
        path = [self.nodes[node_id]]
        while path[-1].parent is not None:
            path.append(self.nodes[path[-1].parent])
        return path[::-1]

    def used(self, stage: str) -> int:
        return sum(1 for n in self.nodes if n.stage == stage)

    def change_pct(self, node: SearchNode) -> float | None:
        """The primary metric's relative change against the root on the node's seeds, in %."""
        if node.score is None:
            return None
        return (-100.0 if self.direction == "minimize" else 100.0) * node.score


class ExpandContext(BaseModel):
    """What a brain is given to propose one child of a search node."""

    idea: Idea
    template: Template
    scale: str
    tree: SearchTree
    node: int = Field(description="The node to expand")
    kind: NodeKind = Field(description="The kind of child wanted")
    code: str = Field(default="", description="experiment.py as the node ran it")
    baseline: dict[str, Any] = Field(default_factory=dict, description="The root's results (the baseline)")
    memory: Conversation = Field(default_factory=Conversation, description="The coder's memory of this idea")


class Expansion(BaseModel):
    """A brain's proposed child: the plan applied on top of the node's code and flags."""

    plan: PlannedRun | None = Field(description="None only with a flag: the node is buggy and no fix is known")
    screen: bool = Field(default=False, description="Screen on one seed first; the search promotes the promising")
    flag: str = Field(default="", description="Why the brain judges the node itself buggy (the plan then "
                      "is its debug child); empty when it does not")


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
    search: dict[str, Any] | None = Field(
        default=None, description="Results.search: how the runs were found (--search tree), exploration only")


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
    search: dict[str, Any] | None = Field(
        default=None, description="agent.pipeline.search.SearchSummary (--search tree): the exploration, "
        "reported as exploration; `runs`, `baseline` and `analysis` are then the confirmatory runs only")


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
