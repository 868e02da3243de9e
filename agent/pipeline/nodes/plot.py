"""Plot: the brain picks runs and labels (and may edit plot.py); `plot.py` runs in the
sandbox; each figure gets a caption and description for the writeup."""

from __future__ import annotations

import json

from agent.analysis import analyze
from agent.edits import EditRefused, apply_edits
from agent.errors import StageFailed
from agent.models import Idea, Results
from agent.pipeline import search
from agent.pipeline.deps import Deps
from agent.pipeline.progress import emit
from agent.pipeline.stage import StageResult
from agent.pipeline.state import IdeaTask
from agent.pipeline.workdir import FIGURES, LABELS, IdeaWorkdir
from agent.sandbox.limits import Limits
from agent.sandbox.runner import python_executable

PLOT_LIMITS = Limits(timeout_s=180, memory_mb=4096)


def results_bundle(deps: Deps, wd: IdeaWorkdir) -> Results:
    """Every run's numbers and the analysis. The paper may only quote these. After a tree
    search the runs and the baseline are its confirmation on fresh seeds (see search.adopt)."""
    runs = wd.runs()
    tree = wd.search()
    baseline = tree.nodes[tree.confirmed["baseline"]].results if tree else deps.baseline()
    seeds = tree.fresh_seeds if tree else deps.template.seeds_for(deps.settings.scale)
    return Results(
        template=deps.template.name,
        scale=deps.settings.scale,
        seeds=seeds,
        datasets=deps.template.datasets_for(deps.settings.scale),
        baseline=baseline,
        runs={r.name: {"description": r.planned.description, "args": r.planned.args,
                       "final_info": r.results, "wall_s": r.wall_s} for r in runs if r.ok},
        failed_runs={r.name: {"description": r.planned.description, "error": (r.error or "")[-500:]}
                     for r in runs if not r.ok},
        analysis=analyze(deps.template, baseline, runs, scale=deps.settings.scale, seeds=seeds).model_dump(mode="json"),
        search=search.summary(tree).model_dump(mode="json") if tree else None,
    )


def plot(deps: Deps, task: IdeaTask) -> StageResult:
    idea = Idea.model_validate(task["idea"])
    wd = deps.workdir(idea.name)
    wd.save_results(results_bundle(deps, wd))
    ctx = wd.paper_context(idea, deps.template, deps.settings.scale, f"AI Scientist ({deps.brain.info.label})")
    plan = deps.brain.plot_plan(ctx)
    ok_names = {"run_0"} | {r.name for r in ctx.runs if r.ok}
    labels = {k: v for k, v in plan.labels.items() if k in ok_names} or {n: n for n in sorted(ok_names)}
    wd.write(LABELS, json.dumps(labels, indent=1))
    try:
        apply_edits(wd.tree, plan.edits, deps.template.editable_files)
    except EditRefused as e:
        wd.note(f"## plot\nplot.py edit refused ({e}); using the template's plot.py.")
    pngs = run_plot(deps, wd)
    if not pngs and plan.edits:  # the brain's plot.py edit broke it: fall back to the template's
        wd.restore("plot.py")
        pngs = run_plot(deps, wd)
    if not pngs:
        raise StageFailed("plot", "plot.py produced no PNG figures")
    notes = [n for n in deps.brain.describe_figures(ctx, pngs) if n.file in pngs]
    wd.save_figures(notes)
    wd.commit(f"plot: {len(pngs)} figures")
    return task


def run_plot(deps: Deps, wd: IdeaWorkdir) -> list[str]:
    """plot.py in the sandbox, into an empty figures/; the PNG names it wrote."""
    wd.fresh_dir(FIGURES)
    emit(wd.name, "plot", note="running plot.py")
    result = deps.executor.run([python_executable(), "plot.py", "--labels", LABELS, "--out_dir", FIGURES],
                               wd.tree, PLOT_LIMITS, log_name="plot")
    if not result.ok:
        wd.note(f"## plot\nplot.py failed: {result.error_tail(10)}")
        return []
    return wd.figure_files()
