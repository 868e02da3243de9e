"""`LLMBrain`: the `Brain` protocol answered by an OpenAI-compatible model.

Each method renders its prompt from `prompts/<stage>.md` with compact context (see
`summaries`), asks `LLMClient` for a typed answer, and tidies it. The stages that the
published AI Scientist runs as conversations are conversations here too (`Chat`), with the
stable text first so that prefix caching applies:

    ideas            one conversation per idea: propose, then up to N reflection rounds that
                     end early when the model says it is done
    novelty          a tool loop: each round a query (Semantic Scholar, OpenAlex, the archive)
                     or a decision, up to N rounds
    next_run, fix_run, run_notes
                     one conversation across an idea's runs (the coder's memory, kept in the
                     idea's state folder), folded into a rolling summary past a token budget
    critique_figures the figures as images, when the endpoint takes them (--vision)
    write_section    a draft and one refinement pass per section, each seeing every section
                     written before it in full; `polish` then reads the whole paper
    citations        rounds of query, choose and place, before and over the draft
    review           reviewer guidelines and calibration examples, reasoning before the form;
    meta_review      the area chair's text, then up to N reflection rounds with an early stop

Stage names (the `X-AI-Scientist-Stage` header, the ledger's `stage`) are the method names,
plus `ideas_reflect`, `memory_summary`, `refine_section:<section>`, `write_section:<section>`,
`meta_review_reflect` and `vision_probe`. Every method's calls share one deadline
(`stage_deadline_s`). Optional passes (a refinement, the polish, a critique, a summary) that
get no valid answer keep what there was, so that only a missing result fails an idea.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from agent import models
from agent.analysis import paper_analysis
from agent.brains.base import BrainInfo
from agent.brains.llm import search_brief
from agent.brains.llm.client import Chat, LLMClient
from agent.brains.llm.prompts import HERE as PROMPTS
from agent.brains.llm.prompts import render
from agent.brains.llm.summaries import (
    PAPER_DIGITS,
    analysis_brief,
    archive_brief,
    edits_brief,
    failed_brief,
    follow_ups_brief,
    history_brief,
    hit_line,
    idea_brief,
    knobs_table,
    metrics_line,
    notebook_facts,
    results_brief,
    tail,
    template_brief,
)
from agent.brains.llm.tokens import IMAGE_TOKENS, count_tokens
from agent.errors import StageFailed
from agent.literature import LiteratureSearch
from agent.paper import bibtex
from agent.paper import figures as declared_figures
from agent.paper.latex import cited_keys
from agent.review import calibration

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

ERROR_TAIL_CHARS = 3000
TEX_CONTEXT_LINES = 12
MEMORY_TOKENS = 6000  # the coder's turns beyond this are folded into the rolling summary
MEMORY_KEEP = 4  # turns always kept verbatim (the last two exchanges)
HITS_PER_ROUND = 8
REVIEW_TEMPERATURE = 0.75  # an ensemble needs reviewers that differ
REVIEW_ANSWER_TOKENS = 3000


# ------------------------------------------------------------------ answer shapes (JSON from the model)


class EditAnswer(BaseModel):
    path: str = Field(default="experiment.py", description="file relative to the work folder")
    search: str = Field(min_length=1, description="exact existing text, occurring once")
    replace: str

    def edit(self) -> models.Edit:
        return models.Edit(path=self.path, search=self.search, replace=self.replace)


class RunAnswer(BaseModel):
    description: str
    args: dict[str, str | int | float | bool] = Field(default_factory=dict, description="knob flag -> value")
    edits: list[EditAnswer] = Field(default_factory=list)

    def planned(self) -> models.PlannedRun:
        return models.PlannedRun(
            description=self.description,
            args={_flag(k): _arg(v) for k, v in self.args.items()},
            edits=[e.edit() for e in self.edits],
        )


class ExpandAnswer(RunAnswer):
    flag: str = Field(default="", description="why NODE itself looks buggy; empty when it does not")


class NextRunAnswer(BaseModel):
    done: bool = False
    reason: str = ""
    run: RunAnswer | None = None


class IdeaReflection(BaseModel):
    critique: str
    idea: models.Idea
    done: bool = Field(description="true when the idea needs no further change")


class NoveltyStep(BaseModel):
    thinking: str = Field(description="what the results so far show, briefly")
    decision: Literal["search", "novel", "not_novel"]
    query: str = Field(default="", description="the next search query, when decision is search")
    reason: str = Field(default="", description="when deciding: one or two sentences naming the closest paper")
    papers: list[int] = Field(default_factory=list, description="numbers of the results that drove the decision")


class NoveltyVerdict(NoveltyStep):
    """The last round's answer: its schema leaves no "search", so a server that decodes under the
    schema's grammar (llama.cpp, vLLM, Ollama) cannot answer one even from a small model."""

    decision: Literal["novel", "not_novel"]


class FigureNotes(BaseModel):
    figures: list[models.FigureNote]


class FigureCritiques(BaseModel):
    figures: list[models.FigureCritique]


class Choice(BaseModel):
    key: str = Field(description="a key shown in [brackets] in the results")
    note: str = Field(description="what it supports in this paper, and where it belongs")


class Placement(BaseModel):
    key: str
    section: str
    search: str = Field(description="an exact sentence (or part) of that section, occurring once")
    replace: str = Field(description="the same text with the \\citep{key} added where the claim is")


class CitationStep(BaseModel):
    query: str = Field(default="", description="a search query, or empty")
    choose: list[Choice] = Field(default_factory=list)
    place: list[Placement] = Field(default_factory=list, description="only once there is a draft")
    done: bool = False


class EditList(BaseModel):
    edits: list[EditAnswer]


class Revision(BaseModel):
    sections: dict[str, str] = Field(description="section name -> complete revised LaTeX body")


class ReviewAnswer(BaseModel):
    reasoning: str = Field(description="the claims, the evidence for each, the main problems: before the form")
    review: models.ReviewForm


class MetaReflection(BaseModel):
    review: models.ReviewForm
    done: bool = Field(description="true when the meta-review needs no further change")


def _flag(name: str) -> str:
    return name if name.startswith("--") else f"--{name.lstrip('-')}"


def _arg(value: str | int | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# ------------------------------------------------------------------ per-section guidance


@functools.cache
def section_guidance() -> dict[str, tuple[str, str]]:
    """section -> (what it must contain, common errors to avoid), from prompts/sections.md."""
    out: dict[str, tuple[str, str]] = {}
    for block in (PROMPTS / "sections.md").read_text().split("\n## ")[1:]:
        name, _, body = block.partition("\n")
        fields = dict(re.findall(r"(?m)^(must|avoid): (.*)$", body))
        out[name.strip()] = (fields.get("must", ""), fields.get("avoid", ""))
    return out


@functools.cache
def calibration_text() -> str:
    """The review prompt's calibration examples (agent.review.calibration)."""
    return "\n\n".join(
        f"[Example {i}] {e.title} ({'accepted' if e.accepted else 'rejected'}; mean human overall score "
        f"{e.mean_score:g})\nAbstract: {e.abstract}\nIntroduction: {e.introduction}\nConclusion: {e.conclusion}"
        for i, e in enumerate(calibration.examples(), 1)
    )


_NEEDS_RESULTS = {"abstract", "experimental_setup", "results", "conclusion"}
_NEEDS_FIGURES = {"experimental_setup", "results"}
_NEEDS_TEMPLATE = {"introduction", "method", "experimental_setup"}
_NEEDS_RUNS = {"method", "experimental_setup"}
_INCLUDE = re.compile(r"\\includegraphics(?:\[[^\]]*\])?\{([^}]*)\}")


def _bounded(client_attr: str = "client") -> Callable[[F], F]:
    """Every LLM call of the decorated step shares one deadline (--llm-stage-deadline)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def step(self: LLMBrain, *args: Any, **kwargs: Any) -> Any:
            with getattr(self, client_attr).deadline(self.stage_deadline_s):
                return fn(self, *args, **kwargs)

        return step  # type: ignore[return-value]

    return wrap


class LLMBrain:
    """The `Brain` protocol over an `LLMClient`; each call's ledger row names the idea it is for.
    `reviewer` answers review and meta_review when it is another model (--review-model)."""

    def __init__(self, client: LLMClient, *, reviewer: LLMClient | None = None, vision: str = "auto",
                 stage_deadline_s: float | None = None):
        self.client = client
        self.reviewer = reviewer or client
        self.stage_deadline_s = stage_deadline_s
        self.vision = vision
        if vision != "auto":
            for c in {id(self.client): self.client, id(self.reviewer): self.reviewer}.values():
                c.set_images(vision == "on")
        self.info = BrainInfo(kind="llm", model=client.model, concurrent=True, reviews_vary=True,
                              review_model=reviewer.model if reviewer and reviewer.model != client.model else "")

    # ------------------------------------------------------------------ ideation

    @_bounded()
    def ideas(self, ctx: models.IdeationContext) -> list[models.Idea]:
        tpl = ctx.template
        known = {k.name for k in tpl.knobs}
        taken = {a.name for a in ctx.archive if a.template == tpl.name} | {o.idea_name for o in ctx.failed}
        seeds = "\n".join(s.model_dump_json(exclude={"knobs"}) for s in ctx.seed_ideas[:2]) or "(none)"
        source = tpl.path / "experiment.py"
        code = ctx.code or (source.read_text(errors="replace") if source.is_file() else "(not shown)")
        out: list[models.Idea] = []
        failures: list[str] = []
        for index in range(1, ctx.num_ideas + 1):

            def check(ans: Any) -> None:
                idea = ans.idea if isinstance(ans, IdeaReflection) else ans
                if idea.name in taken or idea.name in {i.name for i in out}:
                    raise ValueError(f"the name {idea.name!r} is taken; choose another")

            follow = ctx.follow_ups[index - 1] if index <= len(ctx.follow_ups) else None
            system, user = render(
                "ideas", template=template_brief(tpl), code=code,
                archive=archive_brief(ctx.archive, tpl.name), failed=failed_brief(ctx.failed), seeds=seeds,
                follow_ups=follow_ups_brief(ctx.follow_ups),
                taken="\n".join(f"- {i.name}: {i.title}" for i in out) or "(none yet)",
                index=index, num_ideas=ctx.num_ideas,
                which=f"a continuation of paper {follow.paper_id} ({follow.name}): set `continues` to {follow.paper_id!r}"
                if follow else "one new idea, different from all of the above, and nothing the researcher discarded",
            )
            chat = Chat(self.client, system)
            try:
                idea = chat.ask("ideas", user, models.Idea, max_tokens=900, check=check)
                for r in range(1, ctx.reflections + 1):
                    _, prompt = render("ideas_reflect", round=r, rounds=ctx.reflections, max_runs=ctx.max_runs)
                    ans = chat.ask("ideas_reflect", prompt, IdeaReflection, max_tokens=1400, check=check)
                    idea = ans.idea
                    if ans.done:
                        break
            except StageFailed as e:  # this idea's conversation failed; the others go on
                failures.append(e.reason)
                log.warning("ideation: idea %d of %d failed: %s", index, ctx.num_ideas, e.reason)
                continue
            out.append(idea.model_copy(update={"knobs": [k for k in idea.knobs if k in known]}))
        if not out:
            raise StageFailed("ideas", failures[-1] if failures else "no idea was proposed")
        return out

    # ------------------------------------------------------------------ novelty

    @_bounded()
    def novelty(self, idea: models.Idea, search: LiteratureSearch, rounds: int) -> models.NoveltyDecision:
        shown: list[models.LiteratureHit] = []

        def listing(hits: list[models.LiteratureHit]) -> str:
            lines = []
            for h in hits[:HITS_PER_ROUND]:
                shown.append(h)
                lines.append(hit_line(len(shown), h))
            return "\n".join(lines) or "(nothing found)"

        first = search.query(idea.title, online=False)  # the literature is the model's to search
        archive = [h for h in first if h.source == "archive"]
        system, user = render("novelty", idea=idea_brief(idea), archive=listing(archive), rounds=rounds)
        user += " This is the only round: decide now." if rounds == 1 else ""
        chat = Chat(self.client, system, idea.name)
        for r in range(1, rounds + 1):
            last = r == rounds

            def check(step: NoveltyStep, last: bool = last) -> None:
                if step.decision == "search" and (last or not step.query.strip()):
                    raise ValueError("decide now (novel or not_novel)" if last else "a search needs a query")
                bad = [n for n in step.papers if not 1 <= n <= len(shown)]
                if bad:
                    raise ValueError(f"papers {bad} are not result numbers (1-{len(shown)})")

            step = chat.ask("novelty", user, NoveltyVerdict if last else NoveltyStep, max_tokens=700, check=check)
            if step.decision != "search":
                papers = [shown[n - 1] for n in dict.fromkeys(step.papers)]
                return models.NoveltyDecision(novel=step.decision == "novel", reason=step.reason or step.thinking,
                                       queries=list(search.queries), papers=papers, rounds=r)
            hits = search.query(step.query)
            notes = "".join(f"\n(note: {n})" for n in search.notes[-1:]) if not hits else ""
            user = (f"Results for {step.query!r}:{notes}\n{listing(hits)}\n\n"
                    f"Round {r + 1} of {rounds}: search again or decide."
                    + (" This is the last round: decide now." if r + 1 == rounds else ""))
        raise AssertionError("unreachable: the last round must decide")

    # ------------------------------------------------------------------ experiments

    def _coder(self, ctx: models.ExperimentContext | models.ExpandContext) -> Chat:
        """The coder's conversation for this idea: its memory's turns after a system text that
        is the same for every run (idea, knobs, baseline), so the prefix stays cached."""
        summary = f"\nSUMMARY OF EARLIER WORK ON THIS IDEA:\n{ctx.memory.summary}" if ctx.memory.summary else ""
        system, _ = render(
            "coder", idea=idea_brief(ctx.idea), metrics=metrics_line(ctx.template), knobs=knobs_table(ctx.template),
            scale=ctx.scale, baseline=results_brief(ctx.baseline), summary=summary,
        )
        chat = Chat(self.client, system, ctx.idea.name)
        chat.turns = [{"role": t.role, "content": t.content} for t in ctx.memory.turns]
        return chat

    def _remember(self, ctx: models.ExperimentContext | models.ExpandContext, chat: Chat, question: str) -> None:
        """Keep the last exchange in the coder's memory (the question without the code, which
        every new question shows afresh), then fold old turns into the summary if too long."""
        answer = chat.turns[-1]["content"]
        ctx.memory.turns += [models.Turn(role="user", content=question), models.Turn(role="assistant", content=answer)]
        self._fold(ctx.memory, ctx.idea.name)

    def _fold(self, memory: models.Conversation, idea: str) -> None:
        size = sum(count_tokens(t.content) for t in memory.turns)
        if size <= MEMORY_TOKENS or len(memory.turns) <= MEMORY_KEEP:
            return
        old, keep = memory.turns[:-MEMORY_KEEP], memory.turns[-MEMORY_KEEP:]
        system, user = render("memory_summary", summary=memory.summary or "(none)",
                              turns="\n\n".join(f"[{t.role}] {tail(t.content, 2500)}" for t in old))
        try:
            memory.summary = self.client.complete_text("memory_summary", system, user, idea=idea, max_tokens=600)
        except StageFailed as e:  # keep the turns: a later run folds them
            log.warning("coder memory: no summary (%s); keeping the turns", e.reason)
            return
        memory.folded += len(old)
        memory.turns = keep

    @_bounded()
    def next_run(self, ctx: models.ExperimentContext) -> models.PlannedRun | None:
        if len(ctx.history) >= ctx.max_runs:
            return None
        chat = self._coder(ctx)
        number = _next_run_number(ctx.history)
        _, user = render("next_run", done=len(ctx.history), max_runs=ctx.max_runs,
                         history=history_brief(ctx.history), code=ctx.code or "(not shown)", next=number)
        ans = chat.ask("next_run", user, NextRunAnswer, max_tokens=2500)
        self._remember(ctx, chat, f"Plan run_{number} ({len(ctx.history)} runs done).")
        if ans.done or ans.run is None:
            return None
        return ans.run.planned()

    @_bounded()
    def fix_run(self, ctx: models.ExperimentContext, failed: models.RunRecord, error_tail: str) -> models.PlannedRun:
        chat = self._coder(ctx)
        error = tail(error_tail, ERROR_TAIL_CHARS)
        _, user = render("fix_run", name=failed.name, attempt=failed.fixes + 1,
                         planned=failed.planned.model_dump_json(exclude={"knobs"}), error=error,
                         code=ctx.code or "(not shown)")
        ans = chat.ask("fix_run", user, RunAnswer, max_tokens=2500)
        self._remember(ctx, chat, f"Run {failed.name} failed (attempt {failed.fixes + 1}):\n{tail(error, 600)}")
        return ans.planned()

    @_bounded()
    def run_notes(self, ctx: models.ExperimentContext, run: models.RunRecord) -> str:
        chat = self._coder(ctx)
        outcome = (f"ok in {run.wall_s:.0f}s after {run.fixes} fix(es)" if run.ok
                   else f"FAILED after {run.fixes} fix(es): {tail(run.error or '', 400)}")
        results = (f"baseline run_0: {results_brief(ctx.baseline, PAPER_DIGITS)}\n"
                   f"{run.name}: {results_brief(run.results, PAPER_DIGITS) if run.ok else '(no results)'}")
        _, user = render("run_notes", name=run.name, outcome=outcome,
                         planned=run.planned.model_dump_json(exclude={"knobs", "edits"}), results=results)
        try:
            text = chat.say("run_notes", user, max_tokens=500)
        except StageFailed as e:  # the run stands; its entry is then the facts alone
            log.warning("%s: no notebook entry from the model (%s)", run.name, e.reason)
            return notebook_facts(run)
        self._remember(ctx, chat, f"{run.name} finished: {outcome}. Write its notebook entry.")
        return f"## {run.name}: {run.planned.description}\n{_strip_heading(text)}"

    @_bounded()
    def expand(self, ctx: models.ExpandContext) -> models.Expansion | None:
        """One child of a search node, asked in the coder's conversation (so it remembers the
        idea's earlier nodes): code edits on the node's code, having seen its results, its error
        tail and its ancestors' history (see search_brief and prompts/expand.md)."""
        tree, node = ctx.tree, ctx.tree.node(ctx.node)
        chat = self._coder(ctx)
        _, user = render(
            "expand",
            stage=search_brief.STAGES[tree.stage],
            nodes=len(tree.nodes),
            tree=search_brief.tree_brief(tree),
            node=node.id,
            path=search_brief.path_brief(tree, node.id),
            error=search_brief.error_brief(node),
            code=ctx.code or "(not shown)",
            kind=ctx.kind,
            kind_note=search_brief.KINDS.get(ctx.kind, ctx.kind),
        )
        ans = chat.ask(f"expand:{ctx.kind}", user, ExpandAnswer, max_tokens=2500)
        self._remember(ctx, chat, f"Propose a {ctx.kind} child of search node n{node.id} "
                                  f"(tree of {len(tree.nodes)} nodes; its code was shown).")
        return models.Expansion(plan=ans.planned(), flag=ans.flag.strip())

    # ------------------------------------------------------------------ figures

    @_bounded()
    def plot_plan(self, ctx: models.PaperContext) -> models.PlotPlan:
        tag = ctx.idea.name
        system, user = render("plot_plan", title=ctx.idea.title, runs=_run_list(ctx))
        plan = self.client.complete("plot_plan", system, user, models.PlotPlan, idea=tag, max_tokens=600)
        usable = {"run_0"} | {r.name for r in ctx.runs if r.ok}
        labels = {k: v for k, v in plan.labels.items() if k in usable}
        labels.setdefault("run_0", "Baseline")
        return models.PlotPlan(labels=dict(sorted(labels.items(), key=lambda kv: _run_index(kv[0]))), edits=plan.edits)

    @_bounded()
    def fix_plot(self, ctx: models.PaperContext, code: str, problem: str) -> list[models.Edit]:
        system, user = render("fix_plot", title=ctx.idea.title, runs=_run_list(ctx),
                              problem=tail(problem, ERROR_TAIL_CHARS), code=code)
        ans = self.client.complete("fix_plot", system, user, EditList, idea=ctx.idea.name, max_tokens=2500,
                                   check=_edits_match(code, "plot.py"))
        return [models.Edit(path="plot.py", search=e.search, replace=e.replace) for e in ans.edits]

    @_bounded()
    def describe_figures(self, ctx: models.PaperContext, files: list[str]) -> list[models.FigureNote]:
        """The model describes every figure from the template's declarations; a declared figure
        keeps the caption written from its declaration, so that the caption always matches what
        plot.py draws."""
        tag = ctx.idea.name
        if not files:
            return []
        analysis = paper_analysis(ctx)
        declared = {n.file: n for n in declared_figures.declared_notes(ctx.template, analysis, files)}
        lines = [f"- {f}: {declared[f].description if f in declared else 'undeclared'}" for f in files]
        system, user = render("describe_figures", title=ctx.idea.title, runs=_results_lines(ctx),
                              files=", ".join(files), declared="\n".join(lines))

        def check(ans: FigureNotes) -> None:
            missing = set(files) - {f.file for f in ans.figures}
            if missing:
                raise ValueError(f"no entry for {sorted(missing)}; give one entry per file in FIGURES")

        ans = self.client.complete(
            "describe_figures", system, user, FigureNotes, idea=tag, max_tokens=250 * len(files) + 200, check=check
        )
        by_file = {f.file: f for f in ans.figures}
        ordered = [*declared, *(f for f in files if f not in declared)]  # the template's order first
        return [by_file[f].model_copy(update={"caption": declared[f].caption}) if f in declared else by_file[f]
                for f in ordered]

    def sees_images(self, client: LLMClient | None = None) -> bool:
        """--vision on/off, or (auto) whether the endpoint took the probe image."""
        return (client or self.client).supports_images()

    @_bounded()
    def critique_figures(self, ctx: models.PaperContext, figures: list[models.FigureImage]) -> list[models.FigureCritique]:
        if not figures or not self.sees_images():
            return []
        names = [f.name for f in figures]
        system, user = render("critique_figures", title=ctx.idea.title, runs=_results_lines(ctx),
                              figures="\n".join(f"- {f.name}: {f.caption}" for f in figures))

        def check(ans: FigureCritiques) -> None:
            missing = set(names) - {c.file for c in ans.figures}
            if missing:
                raise ValueError(f"no entry for {sorted(missing)}; give one entry per figure")

        try:
            ans = self.client.complete("critique_figures", system, user, FigureCritiques, idea=ctx.idea.name,
                                       images=figures, max_tokens=300 * len(figures) + 200, check=check)
        except StageFailed as e:  # a look that failed is no verdict: the figures stand
            log.warning("figure critique failed (%s); figures kept as they are", e.reason)
            return []
        by_file = {c.file: c for c in ans.figures}
        return [by_file[n] for n in names]

    # ------------------------------------------------------------------ writing

    @_bounded()
    def write_section(self, ctx: models.PaperContext, section: str, written: dict[str, str]) -> str:
        tag = ctx.idea.name
        title = written.get("title") or ctx.idea.title
        must, avoid = section_guidance().get(section, ("Write this section.", ""))
        others = {k: v for k, v in written.items() if k not in (section, "title", "brain")}
        system, user = render(
            "write_section", title=title, idea=idea_brief(ctx.idea), section=section, must=must, avoid=avoid,
            context=_section_context(ctx, section),
            written="\n\n".join(f"### {k}\n{v}" for k, v in others.items()) or "(none yet)",
        )
        check = _section_check(ctx, section)
        tokens = 60 if section == "title" else 2500 if section == "results" else 1600
        chat = Chat(self.client, system, tag)
        text = chat.say(f"write_section:{section}", user, max_tokens=tokens, check=check)
        if section == "title":
            return _strip_heading(text).strip().strip('"')
        _, refine = render("refine_section", section=section)
        try:
            text = chat.say(f"refine_section:{section}", refine, max_tokens=tokens, check=check)
        except StageFailed as e:
            log.warning("%s: refinement failed (%s); keeping the draft", section, e.reason)
        return _strip_heading(text)

    @_bounded()
    def citations(self, ctx: models.PaperContext, sections: dict[str, str], search: LiteratureSearch,
                  rounds: int) -> models.CitedDraft:
        tag = ctx.idea.name
        sections = dict(sections)
        chosen: dict[str, models.Citation] = {}
        offered: dict[str, models.LiteratureHit] = {}

        def listing(hits: list[models.LiteratureHit]) -> str:
            lines = []
            for h in hits:
                key = bibtex_key(h)
                if key and key not in ctx.bib_keys:
                    offered[key] = h
                    lines.append(f"[{key}] " + hit_line(None, h))
            return "\n".join(lines) or "(nothing new)"

        if rounds < 1:
            return models.CitedDraft(sections=sections, citations=[])
        draft = "\n\n".join(f"### {k}\n{v}" for k, v in sections.items() if k not in ("title", "brain"))
        summary = f"\nDRAFT:\n{draft}" if draft else f"\nMETHOD IN BRIEF: {ctx.idea.experiment}"
        system, user = render(
            "citations", title=sections.get("title") or ctx.idea.title, idea=ctx.idea.hypothesis, summary=summary,
            bib=", ".join(ctx.bib_keys) or "(none)", found=listing(ctx.literature[:12]), rounds=rounds,
        )
        chat = Chat(self.client, system, tag)
        used = 0
        for r in range(1, rounds + 1):
            used = r

            def check(step: CitationStep) -> None:
                unknown = [c.key for c in step.choose if c.key not in offered and c.key not in chosen]
                if unknown:
                    raise ValueError(f"keys {unknown} were not shown; choose keys in [brackets] only")
                for p in step.place:
                    text = sections.get(p.section)
                    if text is None:
                        raise ValueError(f"no section {p.section!r}; sections: {sorted(sections)}")
                    if text.count(p.search) != 1:
                        raise ValueError(f"the search text for {p.key} occurs {text.count(p.search)} times in "
                                         f"{p.section}; copy one exact sentence")
                    if p.key not in cited_keys(p.replace):
                        raise ValueError(f"the replacement for {p.key} does not \\citep it")

            try:
                step = chat.ask("citations", user, CitationStep, max_tokens=1200, check=check)
            except StageFailed as e:  # keep what was chosen and placed so far
                log.warning("citations: round %d failed (%s); keeping %d citation(s)", r, e.reason, len(chosen))
                break
            for c in step.choose:
                if c.key in offered and c.key not in chosen:
                    chosen[c.key] = models.Citation(key=c.key, bibtex=offered[c.key].bibtex.strip(), note=c.note)
            for p in step.place:
                if p.key in chosen or p.key in ctx.bib_keys:
                    sections[p.section] = sections[p.section].replace(p.search, p.replace, 1)
            if step.done or r == rounds:
                break
            hits = search.query(step.query) if step.query.strip() else []
            uncited = [k for k in chosen if draft and not any(k in cited_keys(t) for t in sections.values())]
            user = (f"Results for {step.query!r}:\n{listing(hits)}\n\n" if step.query.strip() else "")
            user += (f"Chosen but not yet cited in the draft: {', '.join(uncited)}.\n" if uncited else "")
            user += f"Round {r + 1} of {rounds}: query, choose, " + ("place, " if draft else "") + "or set done."
        return models.CitedDraft(sections=sections, citations=list(chosen.values()), rounds=used)

    @_bounded()
    def polish(self, ctx: models.PaperContext, sections: dict[str, str]) -> dict[str, str]:
        body = {k: v for k, v in sections.items() if k not in ("title", "brain")}
        system, user = render("polish", results=_results_lines(ctx), analysis=analysis_brief(ctx.analysis),
                              paper="\n\n".join(f"### {k}\n{v}" for k, v in body.items()))

        def check(ans: Revision) -> None:
            for name, text in ans.sections.items():
                if name not in body:
                    raise ValueError(f"no section {name!r}; sections: {sorted(body)}")
                lost = cited_keys(body[name]) - cited_keys(text)
                if lost:
                    raise ValueError(f"{name} lost the citations {sorted(lost)}; keep every \\citep")
                _section_check(ctx, name)(text)

        size = sum(len(b) for b in body.values())
        try:
            ans = self.client.complete("polish", system, user, Revision, idea=ctx.idea.name,
                                       max_tokens=min(16000, size // 3 + 1000), check=check)
        except StageFailed as e:
            log.warning("polish failed (%s); keeping the sections as written", e.reason)
            return sections
        return {**sections, **{k: _strip_heading(v) for k, v in ans.sections.items() if v.strip()}}

    @_bounded()
    def fix_latex(self, tex: str, log_tail: str, *, idea: str = "") -> list[models.Edit]:
        where, excerpt = _tex_excerpt(tex, log_tail)
        system, user = render("fix_latex", log=tail(log_tail, ERROR_TAIL_CHARS), where=where, tex=excerpt)
        ans = self.client.complete("fix_latex", system, user, EditList, idea=idea, max_tokens=1500,
                                   check=_edits_match(tex, "paper.tex"))
        return [models.Edit(path="paper.tex", search=e.search, replace=e.replace) for e in ans.edits]

    @_bounded()
    def fix_numbers(self, ctx: models.PaperContext, section: str, text: str, bad: list[str]) -> str:
        system, user = render("fix_numbers", section=section, bad=", ".join(bad), results=_results_lines(ctx),
                              analysis=analysis_brief(ctx.analysis), text=text)
        return _strip_heading(
            self.client.complete_text("fix_numbers", system, user, idea=ctx.idea.name, max_tokens=len(text) // 3 + 500)
        )

    # ------------------------------------------------------------------ review

    def _fit_paper(self, client: LLMClient, paper_text: str, overhead_tokens: int) -> tuple[str, str]:
        """The paper whole, or cut to what fits the reviewer's context window, and a note saying so."""
        budget = client.prices.context(client.model) - overhead_tokens - REVIEW_ANSWER_TOKENS - 500
        total = count_tokens(paper_text)
        if total <= budget:
            return paper_text, ""
        chars = max(1000, int(len(paper_text) * budget / total))
        while chars > 1000 and count_tokens(paper_text[:chars]) > budget:
            chars = int(chars * 0.9)
        note = (f"only the first {chars:,} of {len(paper_text):,} characters of the paper were read: the rest did not "
                f"fit the {client.prices.context(client.model):,}-token context window of {client.model}")
        return paper_text[:chars] + f"\n\n[... the paper is cut here: {note}]", note

    @_bounded("reviewer")
    def review(self, paper_text: str, figures: Sequence[models.PaperFigure] = (), *, idea: str = "") -> models.Review:
        """The figures are listed by page and caption, and shown as images when the reviewer's
        endpoint takes them."""
        listing = "\n".join(f"- page {f.page}: {f.caption or '(no caption found)'}" for f in figures)
        shown = [models.FigureImage(name=f"on page {f.page}", png=f.png, caption=f.caption) for f in figures
                 ] if figures and self.sees_images(self.reviewer) else []
        system, _ = render("review", calibration=calibration_text(), paper="", figures="")
        paper, cut = self._fit_paper(self.reviewer, paper_text, count_tokens(system) + IMAGE_TOKENS * len(shown))
        _, user = render("review", calibration="", paper=paper, figures=listing or "(none extracted)")
        ans = self.reviewer.complete("review", system, user, ReviewAnswer, idea=idea, images=shown,
                                     max_tokens=REVIEW_ANSWER_TOKENS, temperature=REVIEW_TEMPERATURE)
        return models.Review(**ans.review.model_dump(), text_cut=cut)

    @_bounded("reviewer")
    def meta_review(self, reviews: list[models.Review], *, idea: str = "", paper_text: str = "",
                    reflections: int = 1) -> models.Review:
        listing = "\n".join(f"[{i}] {r.model_dump_json(exclude={'text_cut'})}" for i, r in enumerate(reviews, 1))
        system, _ = render("meta_review", paper="", reviews="")
        paper, cut = self._fit_paper(self.reviewer, paper_text or "(not given)",
                                     count_tokens(system) + count_tokens(listing))
        _, user = render("meta_review", paper=paper, reviews=listing)
        chat = Chat(self.reviewer, system, idea)
        meta = chat.ask("meta_review", user, models.ReviewForm, max_tokens=2000)
        means = models.MetaReview.of(models.Review(**meta.model_dump()), reviews)  # what the ensemble will decide
        for r in range(1, reflections + 1):
            _, prompt = render("meta_review_reflect", round=r, rounds=reflections, decision=means.decision,
                               means=", ".join(f"{k} {getattr(means, k):g}" for k in models.SCORES))
            try:
                ans = chat.ask("meta_review_reflect", prompt, MetaReflection, max_tokens=2200)
            except StageFailed as e:  # the meta-review written so far stands
                log.warning("meta-review reflection %d failed (%s)", r, e.reason)
                break
            meta = ans.review
            if ans.done:
                break
        return models.Review(**meta.model_dump(), text_cut=cut)

    @_bounded()
    def revise(self, ctx: models.PaperContext, sections: dict[str, str], review: models.Review) -> dict[str, str]:
        system, user = render(
            "revise",
            weaknesses="\n".join(f"- {w}" for w in review.weaknesses) or "(none)",
            questions="\n".join(f"- {q}" for q in review.questions) or "(none)",
            results=_results_lines(ctx),
            analysis=analysis_brief(ctx.analysis),
            sections="\n\n".join(f"### {name}\n{body}" for name, body in sections.items()),
        )
        size = sum(len(b) for b in sections.values())
        ans = self.client.complete("revise", system, user, Revision, idea=ctx.idea.name,
                                   max_tokens=min(16000, size // 3 + 1000))
        revised = dict(sections)
        revised.update({k: _strip_heading(v) for k, v in ans.sections.items() if k in sections and v.strip()})
        return revised


# ------------------------------------------------------------------ helpers


def bibtex_key(hit: models.LiteratureHit) -> str | None:
    entries = bibtex.parse(hit.bibtex) if hit.bibtex else []
    return entries[0].key if len(entries) == 1 else None


def _edits_match(text: str, name: str) -> Callable[[EditList], None]:
    def check(ans: EditList) -> None:
        for i, e in enumerate(ans.edits, 1):
            n = text.count(e.search)
            if n != 1:
                raise ValueError(f"edit {i}: SEARCH text occurs {n} times in {name}; copy it exactly, once")

    return check


def _section_check(ctx: models.PaperContext, section: str) -> Callable[[str], None]:
    figure_files = {f.file for f in ctx.figures}
    keys = set(ctx.bib_keys)

    def check(text: str) -> None:
        if section == "title":
            if "\n" in text.strip() or len(text) > 200:
                raise ValueError("the title must be one line of at most 200 characters")
            return
        unknown = [f for f in _INCLUDE.findall(text) if f not in figure_files]
        if unknown:
            raise ValueError(f"\\includegraphics names unknown files {unknown}; use only {sorted(figure_files)}")
        bad = sorted(cited_keys(text) - keys)
        if bad:
            raise ValueError(f"\\citep of unknown keys {bad}; cite only the BIB KEYS")

    return check


def _run_index(name: str) -> int:
    m = re.fullmatch(r"run_(\d+)", name)
    return int(m.group(1)) if m else 10**6


def _next_run_number(history: list[models.RunRecord]) -> int:
    return max([_run_index(r.name) for r in history if _run_index(r.name) < 10**6] + [0]) + 1


def _run_list(ctx: models.PaperContext) -> str:
    return "\n".join(
        [f"- run_0: baseline | {results_brief(ctx.baseline)}"]
        + [f"- {r.name}: {r.planned.description} | {'ok' if r.ok else 'FAILED'}" for r in ctx.runs]
    )


def _results_lines(ctx: models.PaperContext) -> str:
    lines = [f"- run_0 (baseline): {results_brief(ctx.baseline, PAPER_DIGITS)}"]
    for r in ctx.runs:
        args = " ".join(f"{k} {v}" for k, v in r.planned.args.items())
        lines.append(
            f"- {r.name} ({r.planned.description}{'; ' + args if args else ''}): "
            + (results_brief(r.results, PAPER_DIGITS) if r.ok else "FAILED")
        )
    return "\n".join(lines)


def _section_context(ctx: models.PaperContext, section: str) -> str:
    """What this section needs besides the sections already written: numbers for the sections
    that report them, literature for related work, figures where they are shown."""
    blocks: list[str] = []
    if section in _NEEDS_TEMPLATE:
        blocks.append(template_brief(ctx.template, ctx.scale))
    if section in _NEEDS_RUNS:
        blocks.append(f"CODE CHANGES:\n{edits_brief(ctx.runs)}")
    if section == "related_work":
        blocks.append("LITERATURE:\n" + ("\n".join(hit_line(None, h) for h in ctx.literature[:10]) or "(none)"))
    if section in _NEEDS_RESULTS:
        blocks.append(f"RESULTS (mean±stderr over seeds, {ctx.scale} scale):\n{_results_lines(ctx)}")
        blocks.append(f"ANALYSIS:\n{analysis_brief(ctx.analysis)}")
    if section in _NEEDS_FIGURES and ctx.figures:
        blocks.append("FIGURES (use each caption as given):\n" + "\n".join(f"- {f.file}: {f.caption}" for f in ctx.figures))
    if section in ("results", "conclusion") and ctx.notes:
        blocks.append(f"LAB NOTES (the experimenter's, tail):\n{tail(ctx.notes, 2500)}")
    if section != "title":
        blocks.append("BIB KEYS:\n" + ("\n".join(f"- {k}" for k in ctx.bib_keys) or "(none)"))
    return "\n\n".join(blocks)


def _strip_heading(text: str) -> str:
    """Drop a leading \\section{...} line the model may add despite the instructions."""
    return re.sub(r"^\s*\\(?:sub)*section\*?\{[^}]*\}\s*\n?", "", text, count=1).strip()


def _tex_excerpt(tex: str, log_tail: str) -> tuple[str, str]:
    """The lines around the errors the log names (l.123 / paper.tex:123:), else the whole file."""
    numbers = sorted({int(n) for n in re.findall(r"(?:^l\.|\.tex:)(\d+)", log_tail, flags=re.MULTILINE)})
    lines = tex.splitlines()
    if not numbers:
        return "paper.tex", tex
    keep: set[int] = set()
    for n in numbers[:5]:
        keep.update(range(max(0, n - 1 - TEX_CONTEXT_LINES), min(len(lines), n + TEX_CONTEXT_LINES)))
    chunks, prev = [], -2
    for i in sorted(keep):
        if i != prev + 1:
            chunks.append("% ...")
        chunks.append(lines[i])
        prev = i
    return f"paper.tex, lines around {numbers[:5]}", "\n".join(chunks)
