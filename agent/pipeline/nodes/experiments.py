"""The experiments of one idea, by `--search`:

- tree: the staged best-first search of agent.pipeline.search, then confirmation on fresh
  seeds; its confirmation runs become the idea's runs and its figure is drawn from the tree.
- linear: plan a run, apply its edits strictly, run it in the sandbox, and on failure feed the
  error tail back for up to `--max-fixes` attempts.

Every finished run is recorded (`IdeaWorkdir.save_runs`), with the brain's notebook entry
for it and the coder's memory (`IdeaWorkdir.save_memory`), before the next one starts, so a
resumed idea continues with its next run instead of starting over. What a run leaves is read
back through agent.sandbox.files: a result that is a link, a FIFO, too big, too deep or not
JSON fails that run, with the reason, into the fix loop.
"""

from __future__ import annotations

import json

from agent.edits import EditRefused, apply_edits
from agent.models import ExperimentContext, Idea, PlannedRun, RunRecord
from agent.paper import tree_figure
from agent.pipeline import search
from agent.pipeline.deps import Deps
from agent.pipeline.progress import emit
from agent.pipeline.stage import StageResult, failed
from agent.pipeline.state import IdeaTask
from agent.pipeline.workdir import IdeaWorkdir
from agent.sandbox import files
from agent.template.run import refused_flags, run_experiment


def run_experiments(deps: Deps, task: IdeaTask) -> StageResult:
    return (search_tree if deps.settings.search == "tree" else run_linear)(deps, task)


def create(deps: Deps, idea: Idea) -> IdeaWorkdir:
    """The idea's folders: the template, or for a continuation the continued paper's code."""
    wd = deps.workdir(idea.name)
    bundle = deps.archive.folder(idea.continues) / "workdir.bundle" if idea.continues else None
    wd.create(deps.template, continues=bundle)
    return wd


def search_tree(deps: Deps, task: IdeaTask) -> StageResult:
    """Search, confirm, and go on only if the confirmation of the selected node and of the
    baseline both produced results."""
    idea = Idea.model_validate(task["idea"])
    wd = create(deps, idea)
    tree = search.Search(deps, idea, wd).run()
    tree_figure.draw(tree, deps.template, wd.search_figure)
    runs = search.adopt(deps, wd, tree)
    if not runs:
        why = next((n.bug for n in reversed(tree.nodes) if n.buggy), "the brain proposed no runs")
        return failed(deps, task, "experiments", f"no successful run to confirm: {why[:300]}")
    baseline = tree.nodes[tree.confirmed["baseline"]]
    for node, what in ((baseline, "the baseline"), (tree.nodes[tree.confirmed["selected"]], "the selected node")):
        if node.buggy:
            return failed(deps, task, "experiments", f"the confirmation of {what} on fresh seeds failed: {node.bug}")
    return {**task, "workdir": str(wd.tree)}


def run_linear(deps: Deps, task: IdeaTask) -> StageResult:
    """Run up to `max_runs` planned runs; continue only if at least one succeeded."""
    idea = Idea.model_validate(task["idea"])
    wd = create(deps, idea)
    if not files.is_file(wd.tree, "run_0/final_info.json"):
        files.copy_tree(deps.baseline_dir, "run_0", wd.tree, "run_0")
        wd.note(f"# Lab notebook: {idea.title}\n\nHypothesis: {idea.hypothesis}\n\n"
                f"Plan: {idea.experiment}\n\n## run_0 (baseline)\nUnmodified template, scale {deps.settings.scale}.")
        wd.commit("run_0: baseline")
    runs = wd.runs()
    while len(runs) < deps.settings.max_runs:
        ctx = context(deps, idea, wd, runs)
        plan = deps.brain.next_run(ctx)
        wd.save_memory(ctx.memory)
        if plan is None:
            break
        runs.append(attempt_run(deps, ctx, wd, f"run_{len(runs) + 1}", plan))
        wd.note(deps.brain.run_notes(ctx, runs[-1]))
        wd.save_memory(ctx.memory)
        wd.save_runs(runs)
        wd.commit(f"{runs[-1].name}: {'ok' if runs[-1].ok else 'failed'} - {plan.description[:60]}")
    if not any(r.ok for r in runs):
        why = runs[-1].error if runs else "the brain planned no runs"
        return failed(deps, task, "experiments", f"no successful run: {(why or '')[:300]}")
    return {**task, "workdir": str(wd.tree)}


def current_code(wd: IdeaWorkdir) -> str:
    """experiment.py as it is now; empty if a run deleted it or left something else there."""
    try:
        return wd.read("experiment.py")
    except (OSError, files.UnsafeFile):
        return ""


def context(deps: Deps, idea: Idea, wd: IdeaWorkdir, runs: list[RunRecord]) -> ExperimentContext:
    return ExperimentContext(
        idea=idea, template=deps.template, scale=deps.settings.scale,
        baseline=deps.baseline(), history=runs, max_runs=deps.settings.max_runs, code=current_code(wd),
        memory=wd.memory(),
        prior=prior_findings(deps, idea),
    )


def prior_findings(deps: Deps, idea: Idea) -> dict | None:
    """For a continuation: what the continued paper found (its archived analysis), to build on."""
    if not idea.continues:
        return None
    try:
        results = json.loads((deps.archive.folder(idea.continues) / "results.json").read_text())
        analysis = results["analysis"]
        return {"paper": idea.continues, "verdict": analysis.get("verdict"), "findings": analysis.get("findings", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def attempt_run(deps: Deps, ctx: ExperimentContext, wd: IdeaWorkdir, name: str, plan: PlannedRun) -> RunRecord:
    """One run with its fix attempts; returns the record of the last attempt."""
    fixes = 0
    while True:
        emit(ctx.idea.name, "experiments", run=name, note=f"{plan.description[:50]} (attempt {fixes + 1})",
             cost_usd=deps.ledger.summary(ctx.idea.name)["cost_usd"])
        record = execute(deps, wd, name, plan, fixes)
        if record.ok or fixes >= deps.settings.max_fixes:
            return record  # the brain writes its notebook entry
        wd.note(f"### {name}, attempt {fixes + 1}: {plan.description}\nargs: {plan.args or '{}'}; "
                f"edits: {len(plan.edits)}; FAILED: {(record.error or '')[-300:]}")
        wd.commit(f"{name}: attempt {fixes + 1} failed")
        fixes += 1
        ctx = ctx.model_copy(update={"code": current_code(wd)})
        plan = deps.brain.fix_run(ctx, record, record.error or "")
        wd.save_memory(ctx.memory)


def execute(deps: Deps, wd: IdeaWorkdir, name: str, plan: PlannedRun, fixes: int) -> RunRecord:
    """Apply the plan's edits and run it in the sandbox; never raises for the run's own failures."""
    record = RunRecord(name=name, planned=plan, ok=False, fixes=fixes)
    bad = refused_flags(plan.args)
    if bad:
        return record.model_copy(update={"error": bad})
    try:
        apply_edits(wd.tree, plan.edits, deps.template.editable_files)
    except EditRefused as e:
        return record.model_copy(update={"error": f"edit refused: {e}"})
    files.remove(wd.tree, name)  # a failed earlier attempt's partial output
    got = run_experiment(deps.executor, deps.template, deps.settings.scale, wd.tree, name, plan.args, log_name=name)
    return record.model_copy(update={"ok": got.ok, "results": got.results, "error": got.error, "wall_s": got.wall_s,
                                     "shared": got.shared})
