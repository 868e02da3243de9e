"""Plot: the brain picks runs and labels (and may edit plot.py); `plot.py` runs in the
sandbox; each figure gets a caption and description for the writeup."""

from __future__ import annotations

import json
from pathlib import Path

from agent import literature
from agent.analysis import analyze
from agent.edits import EditRefused, apply_edits
from agent.errors import StageFailed
from agent.models import FigureNote, Idea, PaperContext
from agent.pipeline import workdir as wd
from agent.pipeline.deps import Deps
from agent.pipeline.nodes.experiments import NOTES_FILE, load_runs, note
from agent.pipeline.progress import emit
from agent.pipeline.stage import StageResult
from agent.pipeline.state import IdeaTask
from agent.sandbox.limits import Limits
from agent.sandbox.runner import python_executable
from agent.template.run import load_info

FIGURES = "figures"
FIGURES_FILE = "figures.json"
RESULTS_FILE = "results.json"
PLOT_LIMITS = Limits(timeout_s=180, memory_mb=4096)


def results_bundle(deps: Deps, workdir: Path) -> dict:
    """`results.json`: every run's numbers and the analysis. The paper may only quote these."""
    runs = load_runs(workdir)
    baseline = load_info(workdir / "run_0")
    return {
        "template": deps.template.name,
        "scale": deps.settings.scale,
        "seeds": deps.template.seeds_for(deps.settings.scale),
        "datasets": deps.template.datasets_for(deps.settings.scale),
        "baseline": baseline,
        "runs": {r.name: {"description": r.planned.description, "args": r.planned.args,
                          "final_info": r.results, "wall_s": r.wall_s} for r in runs if r.ok},
        "failed_runs": {r.name: {"description": r.planned.description, "error": (r.error or "")[-500:]}
                        for r in runs if not r.ok},
        "analysis": analyze(deps.template, baseline, runs, scale=deps.settings.scale).model_dump(mode="json"),
    }


def novelty_file(deps: Deps, idea: str) -> Path:
    """Where the novelty stage leaves an idea's literature hits."""
    return deps.run_dir / "novelty" / f"{idea}.json"


def paper_context(deps: Deps, task: IdeaTask) -> PaperContext:
    """What the plot, writeup and review stages know about an idea, read back from its workdir."""
    workdir = Path(task["workdir"])
    results = json.loads((workdir / RESULTS_FILE).read_text())
    figures_file = workdir / FIGURES_FILE
    lit_file = novelty_file(deps, task["idea"]["name"])
    bib = deps.template.path / "latex" / "references.bib"
    return PaperContext(
        idea=Idea.model_validate(task["idea"]),
        template=deps.template,
        scale=deps.settings.scale,
        baseline=results["baseline"],
        runs=load_runs(workdir),
        analysis=results["analysis"],
        figures=[FigureNote.model_validate(f) for f in json.loads(figures_file.read_text())]
        if figures_file.is_file() else [],
        notes=(workdir / NOTES_FILE).read_text() if (workdir / NOTES_FILE).is_file() else "",
        literature=json.loads(lit_file.read_text()) if lit_file.is_file() else [],
        bib_keys=literature.bib_keys(bib),
        author_line=f"AI Scientist ({deps.brain.info.label})",
    )


def plot(deps: Deps, task: IdeaTask) -> StageResult:
    workdir = Path(task["workdir"])
    (workdir / RESULTS_FILE).write_text(json.dumps(results_bundle(deps, workdir), indent=1))
    ctx = paper_context(deps, task)
    plan = deps.brain.plot_plan(ctx)
    ok_names = {"run_0"} | {r.name for r in ctx.runs if r.ok}
    labels = {k: v for k, v in plan.labels.items() if k in ok_names} or {n: n for n in sorted(ok_names)}
    (workdir / "labels.json").write_text(json.dumps(labels, indent=1))
    try:
        apply_edits(workdir, plan.edits)
    except EditRefused as e:
        note(workdir, f"## plot\nplot.py edit refused ({e}); using the template's plot.py.")
    pngs = run_plot(deps, workdir, ctx.idea.name)
    if not pngs and plan.edits:  # the brain's plot.py edit broke it: fall back to the template's
        wd.restore_file(workdir, "plot.py")
        pngs = run_plot(deps, workdir, ctx.idea.name)
    if not pngs:
        raise StageFailed("plot", "plot.py produced no PNG figures")
    notes = deps.brain.describe_figures(ctx, [p.name for p in pngs])
    known = {p.name for p in pngs}
    notes = [n for n in notes if n.file in known]
    (workdir / FIGURES_FILE).write_text(json.dumps([n.model_dump() for n in notes], indent=1))
    wd.commit(workdir, f"plot: {len(pngs)} figures")
    return "writeup", task


def run_plot(deps: Deps, workdir: Path, idea: str) -> list[Path]:
    out = workdir / FIGURES
    out.mkdir(exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    emit(idea, "plot", note="running plot.py")
    result = deps.executor.run([python_executable(), "plot.py", "--labels", "labels.json", "--out_dir", FIGURES],
                               workdir, PLOT_LIMITS, log_name="plot")
    if not result.ok:
        note(workdir, f"## plot\nplot.py failed: {result.error_tail(10)}")
    return sorted(out.glob("*.png"))
