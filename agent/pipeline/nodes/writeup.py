"""Writeup: section by section into the template's LaTeX, compiled in the sandbox with a
repair loop, then the faithfulness check: every number must come from `results.json`."""

from __future__ import annotations

import json
from pathlib import Path

from agent.errors import StageFailed
from agent.models import Citation, PaperContext
from agent.paper import faithfulness, latex
from agent.pipeline import workdir as wd
from agent.pipeline.deps import Deps
from agent.pipeline.nodes.plot import FIGURES, RESULTS_FILE, paper_context
from agent.pipeline.progress import emit
from agent.pipeline.stage import StageResult
from agent.pipeline.state import IdeaTask
from agent.template.contract import SECTIONS

PAPER = "paper"
SECTIONS_FILE = "sections.json"
FAITH_FILE = "faithfulness.json"


def writeup(deps: Deps, task: IdeaTask) -> StageResult:
    workdir = Path(task["workdir"])
    ctx = paper_context(deps, task)
    parts: dict[str, str] = {}
    for section in ("title", *SECTIONS):
        emit(ctx.idea.name, "writeup", note=f"writing {section}")
        parts[section] = deps.brain.write_section(ctx, section, dict(parts))
    parts["brain"] = ctx.author_line
    citations = deps.brain.citations(ctx)
    (workdir / "citations.json").write_text(json.dumps([c.model_dump() for c in citations], indent=1))
    build(deps, ctx, workdir, parts)
    wd.commit(workdir, "writeup: paper compiled")
    return "review", task


def build(deps: Deps, ctx: PaperContext, workdir: Path, parts: dict[str, str]) -> Path:
    """Assemble, compile and check the paper; one repair round for unfaithful numbers."""
    results = json.loads((workdir / RESULTS_FILE).read_text())
    cite_file = workdir / "citations.json"
    citations = [Citation.model_validate(c) for c in json.loads(cite_file.read_text())] if cite_file.is_file() else []
    pdf = compile_parts(deps, ctx, workdir, parts, citations)
    bad = unfaithful_sections(parts, results)
    if bad:
        emit(ctx.idea.name, "writeup", note=f"repairing numbers in {', '.join(bad)}")
        for section, numbers in bad.items():
            parts[section] = deps.brain.fix_numbers(ctx, section, parts[section], numbers)
        pdf = compile_parts(deps, ctx, workdir, parts, citations)
    report = faithfulness.check((workdir / PAPER / "paper.tex").read_text(), results)
    (workdir / FAITH_FILE).write_text(report.model_dump_json(indent=1))
    (workdir / SECTIONS_FILE).write_text(json.dumps(parts, indent=1))
    return pdf


def compile_parts(deps: Deps, ctx: PaperContext, workdir: Path, parts: dict[str, str],
                  citations: list[Citation]) -> Path:
    paper_dir = workdir / PAPER
    figures = [workdir / FIGURES / f.file for f in ctx.figures if (workdir / FIGURES / f.file).is_file()]
    latex.assemble_paper(paper_dir, deps.template, parts, citations, figures)
    emit(ctx.idea.name, "writeup", note="compiling LaTeX")
    result = latex.repair_loop(paper_dir, deps.brain)
    if not result.ok or result.pdf is None:
        raise StageFailed("writeup", f"LaTeX did not compile: {result.log_tail[-400:]}")
    return result.pdf


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
