"""Plot: the brain picks runs and labels (and may edit plot.py); `plot.py` runs in the
sandbox, and its errors go back to the brain for up to PLOT_FIXES fixes (then the template's
own plot.py is used); each figure gets a caption and description. A brain that sees images
then critiques the figures, and plot.py is revised from the critique in up to
VISION_ROUNDS rounds; the critiques go into the lab notebook."""

from __future__ import annotations

import json

from agent.analysis import analyze
from agent.edits import EditRefused, apply_edits
from agent.errors import StageFailed
from agent.models import Idea, PaperContext, Results
from agent.pipeline import search
from agent.pipeline.deps import Deps
from agent.pipeline.progress import emit
from agent.pipeline.stage import StageResult
from agent.pipeline.state import IdeaTask
from agent.pipeline.workdir import FIGURES, LABELS, IdeaWorkdir
from agent.sandbox.limits import Limits
from agent.sandbox.runner import python_executable

PLOT_LIMITS = Limits(timeout_s=180, memory_mb=4096)
PLOT_FIXES = 4  # plot.py failures fed back to the brain
VISION_ROUNDS = 2  # revisions of the figures from a critique


def results_bundle(deps: Deps, wd: IdeaWorkdir) -> Results:
    """Every run's numbers and the analysis. The paper may only quote these. After a tree
    search the runs and the baseline are its confirmation on fresh seeds (see search.adopt)."""
    runs = wd.runs()
    tree = wd.search()
    root = tree.nodes[tree.confirmed["baseline"]] if tree else None
    baseline = root.results if root else deps.baseline()
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
        analysis=analyze(deps.template, baseline, runs, scale=deps.settings.scale, seeds=seeds,
                         baseline_shared=bool(root and root.shared)).model_dump(mode="json"),
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
    pngs = draw(deps, wd, ctx)
    notes = [n for n in deps.brain.describe_figures(ctx, pngs) if n.file in pngs]
    for round_ in range(1, VISION_ROUNDS + 1):
        critiques = deps.brain.critique_figures(ctx.model_copy(update={"figures": notes}), wd.figure_images(notes))
        bad = [c for c in critiques if not c.ok]
        if critiques:
            wd.note(f"## figures, critique {round_}\n" + "\n".join(
                f"- {c.file}: " + ("ok" if c.ok else f"{'; '.join(c.problems)} (fix: {c.fix})") for c in critiques))
        if not bad:
            break
        before = wd.read("plot.py")
        problem = "A reviewer looked at the figures:\n" + "\n".join(
            f"- {c.file}: {'; '.join(c.problems)}. Fix: {c.fix}" for c in bad)
        try:
            edits = deps.brain.fix_plot(ctx, before, problem)
            apply_edits(wd.tree, edits, deps.template.editable_files)
        except (EditRefused, StageFailed) as e:  # the figures as they are still stand
            wd.note(f"plot.py revision from the critique not made: {e}")
            break
        if not edits:
            break
        revised = draw(deps, wd, ctx, fallback=before)
        if revised:
            pngs = revised
            notes = [n for n in deps.brain.describe_figures(ctx, pngs) if n.file in pngs]
    wd.save_figures(notes)
    wd.commit(f"plot: {len(pngs)} figures")
    return task


def draw(deps: Deps, wd: IdeaWorkdir, ctx: PaperContext, fallback: str | None = None) -> list[str]:
    """Run plot.py, feeding its errors back to the brain for up to PLOT_FIXES fixes; when it
    still draws nothing, go back to `fallback` (else the template's plot.py). The PNGs written."""
    pngs, error = run_plot(deps, wd)
    fixes = 0
    while not pngs and fixes < PLOT_FIXES:
        fixes += 1
        try:
            edits = deps.brain.fix_plot(ctx, wd.read("plot.py"), error)
        except StageFailed as e:  # no usable fix: the fallback below still draws
            wd.note(f"plot.py fix not made: {e.reason}")
            break
        if not edits:
            break
        try:
            apply_edits(wd.tree, edits, deps.template.editable_files)
        except EditRefused as e:
            error = f"your edit was refused: {e}\n\nthe error before it:\n{error}"
            continue
        pngs, error = run_plot(deps, wd)
    if pngs:
        return pngs
    if fallback is not None:
        wd.write("plot.py", fallback)
    else:
        wd.restore("plot.py")
    pngs, _ = run_plot(deps, wd)
    if not pngs:
        raise StageFailed("plot", "plot.py produced no PNG figures")
    return pngs


def run_plot(deps: Deps, wd: IdeaWorkdir) -> tuple[list[str], str]:
    """plot.py in the sandbox, into an empty figures/; the PNG names it wrote, and its error."""
    wd.fresh_dir(FIGURES)
    emit(wd.name, "plot", note="running plot.py")
    result = deps.executor.run([python_executable(), "plot.py", "--labels", LABELS, "--out_dir", FIGURES],
                               wd.tree, PLOT_LIMITS, log_name="plot")
    if not result.ok:
        error = result.error_tail(30)
        wd.note(f"## plot\nplot.py failed: {result.error_tail(10)}")
        return [], error
    pngs = wd.figure_files()
    return pngs, "" if pngs else f"plot.py exited 0 but wrote no PNG into {FIGURES}/"
