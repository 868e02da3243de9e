"""The experiment loop for one idea: plan a run, apply its edits strictly, run it in the
sandbox, and on failure feed the error tail back for up to `--max-fixes` attempts.

Every finished run is recorded (`IdeaWorkdir.save_runs`), with the brain's notebook entry
for it and the coder's memory (`IdeaWorkdir.save_memory`), before the next one starts, so a
resumed idea continues with its next run instead of starting over. What a run leaves is read
back through agent.sandbox.files: a result that is a link, a FIFO, too big, too deep or not
JSON fails that run, with the reason, into the fix loop.
"""

from __future__ import annotations

import json
import time

from agent.edits import EditRefused, apply_edits
from agent.errors import TemplateError
from agent.models import ExperimentContext, Idea, PlannedRun, RunRecord
from agent.pipeline.deps import Deps
from agent.pipeline.progress import emit
from agent.pipeline.stage import StageResult, failed
from agent.pipeline.state import IdeaTask
from agent.pipeline.workdir import IdeaWorkdir
from agent.sandbox import files
from agent.template.contract import check_final_info
from agent.template.run import experiment_cmd, limits_for

# Flags only the orchestrator sets: a brain must not redirect output or change the scale.
RESERVED_FLAGS = {"--out_dir", "--scale", "--seeds", "--datasets"}


def run_experiments(deps: Deps, task: IdeaTask) -> StageResult:
    """Run up to `max_runs` planned runs; continue only if at least one succeeded."""
    idea = Idea.model_validate(task["idea"])
    wd = deps.workdir(idea.name)
    bundle = deps.archive.folder(idea.continues) / "workdir.bundle" if idea.continues else None
    wd.create(deps.template, continues=bundle)
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
    bad = sorted(set(plan.args) & RESERVED_FLAGS) + [f for f in plan.args if not f.startswith("--")]
    if bad:
        return record.model_copy(update={"error": f"flags {bad} are not allowed: the orchestrator sets them"})
    try:
        apply_edits(wd.tree, plan.edits, deps.template.editable_files)
    except EditRefused as e:
        return record.model_copy(update={"error": f"edit refused: {e}"})
    files.remove(wd.tree, name)  # a failed earlier attempt's partial output
    prof = deps.template.profile(deps.settings.scale)
    started = time.time()
    result = deps.executor.run(experiment_cmd(deps.template, deps.settings.scale, name, plan.args), wd.tree,
                               limits_for(deps.template, deps.settings.scale),
                               cpus=prof.cpus, gpus=prof.gpus, log_name=name)
    wall = round(time.time() - started, 2)
    if not result.ok:
        why = ("unsafe output" if result.violation else
               f"killed for {result.killed_for}" if result.killed_for else f"exit code {result.exit_code}")
        return record.model_copy(update={"error": f"{why}\n{result.error_tail(30)}", "wall_s": wall})
    try:
        info = check_final_info(wd.final_info(name), deps.template, deps.settings.scale, f"{name}/final_info.json")
    except FileNotFoundError:
        return record.model_copy(update={"error": f"bad results: the run wrote no {name}/final_info.json",
                                         "wall_s": wall})
    except (OSError, files.UnsafeFile, TemplateError) as e:
        return record.model_copy(update={"error": f"bad results: {e}", "wall_s": wall})
    return record.model_copy(update={"ok": True, "results": info, "wall_s": wall})
