"""`LLMBrain`: the `Brain` protocol answered by an OpenAI-compatible model.

Each method renders its prompt from `agent/prompts/<stage>.md` with compact context (see
`agent.llm.summaries`), asks `LLMClient` for a typed answer, and tidies it (known knobs
only, unique names, labels of runs that exist). The code is sent only where code is edited
(next_run, fix_run); fix_latex sees the lines around the error, not the whole file.

Stage names (the `X-AI-Scientist-Stage` header, the ledger's `stage`) are the method names,
plus `ideas_reflect`, `meta_review_reflect` and `write_section:<section>`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, Field

from agent.analysis import paper_analysis
from agent.brains.base import BrainInfo
from agent.brains.llm import search_brief
from agent.brains.llm.client import LLMClient
from agent.brains.llm.prompts import render
from agent.brains.llm.summaries import (
    PAPER_DIGITS,
    analysis_brief,
    archive_brief,
    edits_brief,
    follow_ups_brief,
    history_brief,
    hits_brief,
    idea_brief,
    knobs_table,
    metrics_line,
    results_brief,
    tail,
    template_brief,
)
from agent.errors import StageFailed
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
from agent.paper import bibtex
from agent.paper import figures as declared_figures

ERROR_TAIL_CHARS = 3000
PAPER_CHARS = 60_000  # a review reads the whole paper, up to ~15k tokens
MAX_CITATIONS = 8
TEX_CONTEXT_LINES = 12


# ------------------------------------------------------------------ answer shapes (JSON from the model)


class EditAnswer(BaseModel):
    path: str = Field(default="experiment.py", description="file relative to the work folder")
    search: str = Field(min_length=1, description="exact existing text, occurring once")
    replace: str

    def edit(self) -> Edit:
        return Edit(path=self.path, search=self.search, replace=self.replace)


class RunAnswer(BaseModel):
    description: str
    args: dict[str, str | int | float | bool] = Field(default_factory=dict, description="knob flag -> value")
    edits: list[EditAnswer] = Field(default_factory=list)

    def planned(self) -> PlannedRun:
        return PlannedRun(
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


class IdeaList(BaseModel):
    ideas: list[Idea] = Field(min_length=1)


class FigureNotes(BaseModel):
    figures: list[FigureNote]


class CitationList(BaseModel):
    citations: list[Citation]


class EditList(BaseModel):
    edits: list[EditAnswer]


class Revision(BaseModel):
    sections: dict[str, str] = Field(description="section name -> complete revised LaTeX body")


def _flag(name: str) -> str:
    return name if name.startswith("--") else f"--{name.lstrip('-')}"


def _arg(value: str | int | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# ------------------------------------------------------------------ per-section guidance

GUIDANCE = {
    "title": "Reply with the paper title only: one line, at most 15 words, no LaTeX commands.",
    "abstract": "One paragraph of 150-200 words: the problem, what was varied, the main quantitative finding, what it means.",
    "introduction": "3-4 paragraphs: motivation, the question, what was done, and the contributions as an itemize list.",
    "related_work": "2-3 paragraphs comparing with the cited work and saying how this study differs.",
    "method": "What was changed and why, with equations where useful; the knobs varied and their values.",
    "experimental_setup": "Data, model, training, metrics, seeds, scale, and a table of the runs' settings.",
    "results": "Each run against the baseline with mean ± standard error over seeds, the effect sizes and tests of "
    "the ANALYSIS, a results table, and the figures. State null results as null.",
    "conclusion": "1-2 paragraphs: the findings, their limitations (scale, seeds), and future work.",
}
_NEEDS_RESULTS = {"abstract", "experimental_setup", "results", "conclusion"}
_NEEDS_FIGURES = {"experimental_setup", "results"}
_NEEDS_TEMPLATE = {"introduction", "method", "experimental_setup"}
_NEEDS_RUNS = {"method", "experimental_setup"}
_INCLUDE = re.compile(r"\\includegraphics(?:\[[^\]]*\])?\{([^}]*)\}")


class LLMBrain:
    """The `Brain` protocol over an `LLMClient`; each call's ledger row names the idea it is for."""

    def __init__(self, client: LLMClient):
        self.client = client
        self.info = BrainInfo(kind="llm", model=client.model, concurrent=True)

    # ------------------------------------------------------------------ ideation

    def ideas(self, ctx: IdeationContext) -> list[Idea]:
        tpl = ctx.template
        archive = archive_brief(ctx.archive, tpl.name)
        seeds = "\n".join(s.model_dump_json(exclude={"knobs"}) for s in ctx.seed_ideas[:2]) or "(none)"
        system, user = render(
            "ideas", template=template_brief(tpl), archive=archive, seeds=seeds, num_ideas=ctx.num_ideas,
            follow_ups=follow_ups_brief(ctx.follow_ups),
        )
        tokens = 400 * ctx.num_ideas + 400
        got = self.client.complete("ideas", system, user, IdeaList, max_tokens=tokens).ideas
        for r in range(1, ctx.reflections + 1):
            current = "\n".join(i.model_dump_json() for i in got)
            system, user = render(
                "ideas_reflect",
                knobs=knobs_table(tpl),
                archive=archive,
                ideas=current,
                round=r,
                rounds=ctx.reflections,
                num_ideas=ctx.num_ideas,
            )
            got = self.client.complete("ideas_reflect", system, user, IdeaList, max_tokens=tokens).ideas
        return self._clean_ideas(got, ctx)

    def _clean_ideas(self, ideas: list[Idea], ctx: IdeationContext) -> list[Idea]:
        """Unique names, none from the archive, known knobs only, at most num_ideas."""
        taken = {a.name for a in ctx.archive if a.template == ctx.template.name}
        known = {k.name for k in ctx.template.knobs}
        out: list[Idea] = []
        for idea in ideas:
            if idea.name in taken:
                continue
            taken.add(idea.name)
            out.append(idea.model_copy(update={"knobs": [k for k in idea.knobs if k in known]}))
        if not out:
            raise StageFailed("ideas", "every proposed idea repeats an archived or earlier name")
        return out[: ctx.num_ideas]

    def novelty(self, idea: Idea, hits: list[LiteratureHit]) -> NoveltyDecision:
        tag = idea.name
        system, user = render("novelty", idea=idea_brief(idea), hits=hits_brief(hits))
        return self.client.complete("novelty", system, user, NoveltyDecision, idea=tag, max_tokens=600)

    # ------------------------------------------------------------------ experiments

    def next_run(self, ctx: ExperimentContext) -> PlannedRun | None:
        tag = ctx.idea.name
        if len(ctx.history) >= ctx.max_runs:
            return None
        system, user = render(
            "next_run",
            idea=idea_brief(ctx.idea),
            metrics=metrics_line(ctx.template),
            knobs=knobs_table(ctx.template),
            scale=ctx.scale,
            baseline=results_brief(ctx.baseline),
            done=len(ctx.history),
            max_runs=ctx.max_runs,
            history=history_brief(ctx.history),
            code=ctx.code or "(not shown)",
            next=_next_run_number(ctx.history),
        )
        ans = self.client.complete("next_run", system, user, NextRunAnswer, idea=tag, max_tokens=2500)
        if ans.done or ans.run is None:
            return None
        return ans.run.planned()

    def fix_run(self, ctx: ExperimentContext, failed: RunRecord, error_tail: str) -> PlannedRun:
        tag = ctx.idea.name
        system, user = render(
            "fix_run",
            idea=idea_brief(ctx.idea),
            knobs=knobs_table(ctx.template),
            name=failed.name,
            attempt=failed.fixes + 1,
            planned=failed.planned.model_dump_json(),
            error=tail(error_tail, ERROR_TAIL_CHARS),
            code=ctx.code or "(not shown)",
        )
        return self.client.complete("fix_run", system, user, RunAnswer, idea=tag, max_tokens=2500).planned()

    def expand(self, ctx: ExpandContext) -> Expansion | None:
        """One child of a search node: code edits on the node's code, having seen its results,
        its error tail and its ancestors' history (see search_brief and prompts/expand.md)."""
        tree, node = ctx.tree, ctx.tree.node(ctx.node)
        system, user = render(
            "expand",
            idea=idea_brief(ctx.idea),
            metrics=metrics_line(ctx.template),
            knobs=knobs_table(ctx.template),
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
        ans = self.client.complete(f"expand:{ctx.kind}", system, user, ExpandAnswer, idea=ctx.idea.name,
                                   max_tokens=2500)
        return Expansion(plan=ans.planned(), flag=ans.flag.strip())

    # ------------------------------------------------------------------ figures

    def plot_plan(self, ctx: PaperContext) -> PlotPlan:
        tag = ctx.idea.name
        runs = "\n".join(
            [f"- run_0: baseline | {results_brief(ctx.baseline)}"]
            + [f"- {r.name}: {r.planned.description} | {'ok' if r.ok else 'FAILED'}" for r in ctx.runs]
        )
        system, user = render("plot_plan", title=ctx.idea.title, runs=runs)
        plan = self.client.complete("plot_plan", system, user, PlotPlan, idea=tag, max_tokens=600)
        usable = {"run_0"} | {r.name for r in ctx.runs if r.ok}
        labels = {k: v for k, v in plan.labels.items() if k in usable}
        labels.setdefault("run_0", "Baseline")
        return PlotPlan(labels=dict(sorted(labels.items(), key=lambda kv: _run_index(kv[0]))), edits=plan.edits)

    def describe_figures(self, ctx: PaperContext, files: list[str]) -> list[FigureNote]:
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

    # ------------------------------------------------------------------ writing

    def write_section(self, ctx: PaperContext, section: str, written: dict[str, str]) -> str:
        tag = ctx.idea.name
        title = written.get("title") or ctx.idea.title
        system, user = render(
            "write_section",
            title=title,
            idea=idea_brief(ctx.idea),
            section=section,
            guidance=GUIDANCE.get(section, "Write this section."),
            context=_section_context(ctx, section, written),
        )
        figure_files = {f.file for f in ctx.figures}

        def check(text: str) -> None:
            if section == "title":
                if "\n" in text.strip() or len(text) > 200:
                    raise ValueError("the title must be one line of at most 200 characters")
                return
            unknown = [f for f in _INCLUDE.findall(text) if f not in figure_files]
            if unknown:
                raise ValueError(f"\\includegraphics names unknown files {unknown}; use only {sorted(figure_files)}")

        tokens = 60 if section == "title" else 2500 if section == "results" else 1600
        text = self.client.complete_text(f"write_section:{section}", system, user, idea=tag, max_tokens=tokens, check=check)
        if section != "title":
            return _strip_heading(text)
        title = _strip_heading(text).strip().strip('"')
        return title

    def citations(self, ctx: PaperContext) -> list[Citation]:
        tag = ctx.idea.name
        have = set(ctx.bib_keys)
        candidates = [h for h in ctx.literature if h.bibtex.strip()]
        if not candidates:
            return []
        listing = "\n".join(
            f"[{i}] {h.title} ({h.year or 'n.d.'}): {h.abstract[:200]}\n{h.bibtex.strip()}" for i, h in enumerate(candidates, 1)
        )
        system, user = render(
            "citations",
            title=ctx.idea.title,
            idea=ctx.idea.hypothesis,
            bib_keys=", ".join(sorted(have)) or "(none)",
            candidates=listing,
            max=MAX_CITATIONS,
        )
        ans = self.client.complete("citations", system, user, CitationList, idea=tag, max_tokens=400 * MAX_CITATIONS)
        out, seen = [], set(have)
        for c in ans.citations:
            entries = bibtex.parse(c.bibtex)  # LLM-written: one well-formed entry under the key it names
            if c.key in seen or len(entries) != 1 or entries[0].key != c.key:
                continue
            seen.add(c.key)
            out.append(Citation(key=c.key, bibtex=entries[0].raw))
        return out[:MAX_CITATIONS]

    def fix_latex(self, tex: str, log_tail: str, *, idea: str = "") -> list[Edit]:
        tag = idea
        where, excerpt = _tex_excerpt(tex, log_tail)
        system, user = render("fix_latex", log=tail(log_tail, ERROR_TAIL_CHARS), where=where, tex=excerpt)

        def check(ans: EditList) -> None:
            for i, e in enumerate(ans.edits, 1):
                n = tex.count(e.search)
                if n != 1:
                    raise ValueError(f"edit {i}: SEARCH text occurs {n} times in paper.tex; copy it exactly, once")

        ans = self.client.complete("fix_latex", system, user, EditList, idea=tag, max_tokens=1500, check=check)
        return [Edit(path="paper.tex", search=e.search, replace=e.replace) for e in ans.edits]

    def fix_numbers(self, ctx: PaperContext, section: str, text: str, bad: list[str]) -> str:
        tag = ctx.idea.name
        system, user = render(
            "fix_numbers",
            section=section,
            bad=", ".join(bad),
            results=_results_lines(ctx),
            analysis=analysis_brief(ctx.analysis),
            text=text,
        )
        return _strip_heading(
            self.client.complete_text("fix_numbers", system, user, idea=tag, max_tokens=len(text) // 3 + 500)
        )

    # ------------------------------------------------------------------ review

    def review(self, paper_text: str, figures: Sequence[PaperFigure] = (), *, idea: str = "") -> Review:
        """The figures are listed by page and caption; sending them as image parts is the LLM
        client's vision support (issue 12), which takes `figures` as they are."""
        tag = idea
        listing = "\n".join(f"- page {f.page}: {f.caption or '(no caption found)'}" for f in figures)
        system, user = render("review", paper=paper_text[:PAPER_CHARS], figures=listing or "(none extracted)")
        return self.client.complete("review", system, user, Review, idea=tag, max_tokens=2000)

    def meta_review(self, reviews: list[Review], *, idea: str = "") -> Review:
        tag = idea
        if len(reviews) == 1:
            return reviews[0]
        listing = "\n".join(f"[{i}] {r.model_dump_json()}" for i, r in enumerate(reviews, 1))
        system, user = render("meta_review", reviews=listing)
        meta = self.client.complete("meta_review", system, user, Review, idea=tag, max_tokens=2000)
        system, user = render(
            "meta_review_reflect", scores=", ".join(str(r.overall) for r in reviews), meta=meta.model_dump_json()
        )
        return self.client.complete("meta_review_reflect", system, user, Review, idea=tag, max_tokens=2000)

    def revise(self, ctx: PaperContext, sections: dict[str, str], review: Review) -> dict[str, str]:
        tag = ctx.idea.name
        system, user = render(
            "revise",
            weaknesses="\n".join(f"- {w}" for w in review.weaknesses) or "(none)",
            questions="\n".join(f"- {q}" for q in review.questions) or "(none)",
            results=_results_lines(ctx),
            analysis=analysis_brief(ctx.analysis),
            sections="\n\n".join(f"### {name}\n{body}" for name, body in sections.items()),
        )
        size = sum(len(b) for b in sections.values())
        ans = self.client.complete("revise", system, user, Revision, idea=tag, max_tokens=min(16000, size // 3 + 1000))
        revised = dict(sections)
        revised.update({k: _strip_heading(v) for k, v in ans.sections.items() if k in sections and v.strip()})
        return revised


# ------------------------------------------------------------------ helpers


def _run_index(name: str) -> int:
    m = re.fullmatch(r"run_(\d+)", name)
    return int(m.group(1)) if m else 10**6


def _next_run_number(history: list[RunRecord]) -> int:
    return max([_run_index(r.name) for r in history if _run_index(r.name) < 10**6] + [0]) + 1


def _results_lines(ctx: PaperContext) -> str:
    lines = [f"- run_0 (baseline): {results_brief(ctx.baseline, PAPER_DIGITS)}"]
    for r in ctx.runs:
        args = " ".join(f"{k} {v}" for k, v in r.planned.args.items())
        lines.append(
            f"- {r.name} ({r.planned.description}{'; ' + args if args else ''}): "
            + (results_brief(r.results, PAPER_DIGITS) if r.ok else "FAILED")
        )
    return "\n".join(lines)


def _section_context(ctx: PaperContext, section: str, written: dict[str, str]) -> str:
    """Only what this section needs: numbers for results-bearing sections, literature for
    related work, figures where they are shown."""
    blocks: list[str] = []
    if section in _NEEDS_TEMPLATE:
        blocks.append(template_brief(ctx.template, ctx.scale))
    if section in _NEEDS_RUNS:
        blocks.append(f"CODE CHANGES:\n{edits_brief(ctx.runs)}")
    if section == "related_work":
        blocks.append(f"LITERATURE:\n{hits_brief(ctx.literature)}")
    if section in _NEEDS_RESULTS:
        blocks.append(f"RESULTS (mean±stderr over seeds, {ctx.scale} scale):\n{_results_lines(ctx)}")
        blocks.append(f"ANALYSIS:\n{analysis_brief(ctx.analysis)}")
    if section in _NEEDS_FIGURES and ctx.figures:
        blocks.append("FIGURES (use each caption as given):\n" + "\n".join(f"- {f.file}: {f.caption}" for f in ctx.figures))
    if section in ("introduction", "conclusion") and written.get("abstract"):
        blocks.append(f"ABSTRACT (written):\n{written['abstract']}")
    if section == "conclusion" and ctx.notes:
        blocks.append(f"LAB NOTES (tail):\n{tail(ctx.notes, 1500)}")
    if section != "title":
        blocks.append(f"BIB KEYS: {', '.join(ctx.bib_keys) or '(none)'}")
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
