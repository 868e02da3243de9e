"""Writeup: citation rounds, then section by section into the template's LaTeX (each section
sees those before it), citation rounds over the draft, one pass over the whole paper; then
compiled in the sandbox with a repair loop, and the faithfulness check: every number must come
from `results.json`.

Citations: up to `--citation-rounds` rounds in all, the first half at most before writing
(the writer then cites the chosen papers where they belong), the rest over the draft (each
new paper cited where its claim is). Only chosen papers that the text cites go into the
paper's references.bib, so every entry the model chose is one the PDF lists."""

from __future__ import annotations

from agent import literature
from agent.errors import StageFailed
from agent.models import Citation, Idea, PaperContext
from agent.paper import faithfulness, latex, search_section
from agent.pipeline.deps import Deps
from agent.pipeline.progress import emit
from agent.pipeline.stage import StageResult
from agent.pipeline.state import IdeaTask
from agent.pipeline.workdir import FIGURES, PAPER, IdeaWorkdir
from agent.sandbox import files
from agent.template.contract import SECTIONS


def writeup(deps: Deps, task: IdeaTask) -> StageResult:
    idea = Idea.model_validate(task["idea"])
    wd = deps.workdir(idea.name)
    ctx = context(deps, wd, idea)
    search = literature.LiteratureSearch(idea, deps.template, deps.archive.past_ideas(deps.template.name),
                                         literature.LiteratureSettings(offline=deps.settings.literature_offline),
                                         known=ctx.literature)
    rounds = deps.settings.citation_rounds
    emit(idea.name, "writeup", note="finding citations")
    before = deps.brain.citations(ctx, {}, search, (rounds + 1) // 2)
    ctx = ctx.model_copy(update={"bib_keys": [*ctx.bib_keys, *(c.key for c in before.citations)],
                                 "literature": search.literature()})
    parts: dict[str, str] = {}
    for section in ("title", *SECTIONS):
        emit(ctx.idea.name, "writeup", note=f"writing {section}")
        parts[section] = deps.brain.write_section(ctx, section, dict(parts))
    during = deps.brain.citations(ctx, parts, search, max(0, rounds - before.rounds))
    emit(ctx.idea.name, "writeup", note="reading the whole paper")
    parts = deps.brain.polish(ctx, during.sections)
    parts["brain"] = ctx.author_line
    cited = set().union(*(latex.cited_keys(t) for t in parts.values()))
    chosen = {c.key: c for c in [*before.citations, *during.citations]}
    wd.save_citations([c for k, c in chosen.items() if k in cited])
    wd.save_literature(search.literature())
    build(deps, ctx, wd, parts)
    wd.commit("writeup: paper compiled")
    return task


def context(deps: Deps, wd: IdeaWorkdir, idea: Idea) -> PaperContext:
    return wd.paper_context(idea, deps.template, deps.settings.scale, f"AI Scientist ({deps.brain.info.label})")


def build(deps: Deps, ctx: PaperContext, wd: IdeaWorkdir, parts: dict[str, str]) -> None:
    """Assemble, compile and check the paper; one repair round for unfaithful numbers."""
    results = wd.results_dict()
    citations = wd.citations()
    compile_parts(deps, ctx, wd, parts, citations)
    bad = unfaithful_sections(parts, results)
    if bad:
        emit(ctx.idea.name, "writeup", note=f"repairing numbers in {', '.join(bad)}")
        for section, numbers in bad.items():
            parts[section] = deps.brain.fix_numbers(ctx, section, parts[section], numbers)
        compile_parts(deps, ctx, wd, parts, citations)
    wd.save_faithfulness(faithfulness.check(files.read_text(wd.paper_dir, latex.TEX), results))
    wd.save_sections(parts)


def compile_parts(deps: Deps, ctx: PaperContext, wd: IdeaWorkdir, parts: dict[str, str],
                  citations: list[Citation]) -> None:
    files.make_dirs(wd.tree, PAPER)
    on_disk = set(wd.figure_files())
    figures = [wd.tree / FIGURES / f.file for f in ctx.figures if f.file in on_disk]
    if ctx.search:  # our own account of the search, whatever brain wrote the sections
        tree_png = wd.search_figure if wd.search_figure.is_file() else None
        figures += [tree_png] if tree_png else []
        text = search_section.block(ctx.search, deps.template, tree_png.name if tree_png else None)
        parts = {**parts, search_section.SECTION: parts.get(search_section.SECTION, "") + text}
    latex.assemble_paper(wd.paper_dir, deps.template, parts, citations, figures)
    emit(ctx.idea.name, "writeup", note="compiling LaTeX")
    result = latex.repair_loop(wd.paper_dir, deps.brain, wd.log_dir, deps.local, idea=wd.name)
    if not result.ok or result.pdf is None:
        raise StageFailed("writeup", f"LaTeX did not compile: {result.log_tail[-400:]}")


def unfaithful_sections(parts: dict[str, str], results: dict) -> dict[str, list[str]]:
    """Sections holding numbers that match nothing in the results."""
    bad: dict[str, list[str]] = {}
    for section, text in parts.items():
        if section == "brain":
            continue
        report = faithfulness.check(text, results)
        if not report.ok:
            bad[section] = [b.text for b in report.bad]
    return bad
