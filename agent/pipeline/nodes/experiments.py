"""The experiment loop for one idea: plan a run, apply its edits strictly, run it in the
sandbox, and on failure feed the error tail back for up to `--max-fixes` attempts.

Every finished run is recorded in `runs.json` in the idea's workdir before the next one
starts, so a resumed idea continues with its next run instead of starting over.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from agent.edits import EditRefused, apply_edits
from agent.errors import TemplateError
from agent.models import ExperimentContext, Idea, PlannedRun, RunRecord
from agent.pipeline import workdir as wd
from agent.pipeline.deps import Deps
from agent.pipeline.progress import emit
from agent.pipeline.stage import StageResult, failed
from agent.pipeline.state import IdeaTask
from agent.sandbox.runner import read_output
from agent.template.contract import check_final_info
from agent.template.run import experiment_cmd, limits_for, load_info

RUNS_FILE = "runs.json"
NOTES_FILE = "notes.md"
# Flags only the orchestrator sets: a brain must not redirect output or change the scale.
RESERVED_FLAGS = {"--out_dir", "--scale", "--seeds", "--datasets"}


def load_runs(workdir: Path) -> list[RunRecord]:
    path = workdir / RUNS_FILE
    return [RunRecord.model_validate(r) for r in json.loads(path.read_text())] if path.is_file() else []


def save_runs(workdir: Path, runs: list[RunRecord]) -> None:
    tmp = workdir / (RUNS_FILE + ".tmp")
    tmp.write_text(json.dumps([r.model_dump() for r in runs], indent=1))
    tmp.replace(workdir / RUNS_FILE)


def note(workdir: Path, text: str) -> None:
    """Append to the lab notebook."""
    with (workdir / NOTES_FILE).open("a") as f:
        f.write(text.rstrip() + "\n\n")


def run_experiments(deps: Deps, task: IdeaTask) -> StageResult:
    """Run up to `max_runs` planned runs; continue only if at least one succeeded."""
    idea = Idea.model_validate(task["idea"])
    workdir = deps.workdir(idea.name)
    wd.create(deps.template, workdir)
    baseline_dst = workdir / "run_0"
    if not (baseline_dst / "final_info.json").is_file():
        shutil.copytree(deps.run_dir / "baseline" / "run_0", baseline_dst, dirs_exist_ok=True)
        note(workdir, f"# Lab notebook: {idea.title}\n\nHypothesis: {idea.hypothesis}\n\n"
                      f"Plan: {idea.experiment}\n\n## run_0 (baseline)\nUnmodified template, scale {deps.settings.scale}.")
        wd.commit(workdir, "run_0: baseline")
    runs = load_runs(workdir)
    while len(runs) < deps.settings.max_runs:
        ctx = context(deps, idea, workdir, runs)
        plan = deps.brain.next_run(ctx)
        if plan is None:
            break
        runs.append(attempt_run(deps, ctx, workdir, f"run_{len(runs) + 1}", plan))
        save_runs(workdir, runs)
        wd.commit(workdir, f"{runs[-1].name}: {'ok' if runs[-1].ok else 'failed'} - {plan.description[:60]}")
    if not any(r.ok for r in runs):
        why = runs[-1].error if runs else "the brain planned no runs"
        return failed(task, "experiments", f"no successful run: {(why or '')[:300]}")
    return "plot", {**task, "workdir": str(workdir)}


def context(deps: Deps, idea: Idea, workdir: Path, runs: list[RunRecord]) -> ExperimentContext:
    return ExperimentContext(
        idea=idea, template=deps.template, scale=deps.settings.scale,
        baseline=load_info(workdir / "run_0"), history=runs, max_runs=deps.settings.max_runs,
        code=(workdir / "experiment.py").read_text(),
    )


def attempt_run(deps: Deps, ctx: ExperimentContext, workdir: Path, name: str, plan: PlannedRun) -> RunRecord:
    """One run with its fix attempts; returns the record of the last attempt."""
    fixes = 0
    while True:
        emit(ctx.idea.name, "experiments", run=name, note=f"{plan.description[:50]} (attempt {fixes + 1})",
             cost_usd=deps.brain.ledger.summary(ctx.idea.name)["cost_usd"])
        record = execute(deps, workdir, name, plan, fixes)
        note(workdir, f"## {name}: {plan.description}\nargs: {plan.args or '{}'}; edits: {len(plan.edits)}; "
                      + (f"ok in {record.wall_s:.0f}s" if record.ok else f"FAILED: {(record.error or '')[-300:]}"))
        if record.ok or fixes >= deps.settings.max_fixes:
            return record
        wd.commit(workdir, f"{name}: attempt {fixes + 1} failed")
        fixes += 1
        ctx = ctx.model_copy(update={"code": (workdir / "experiment.py").read_text()})
        plan = deps.brain.fix_run(ctx, record, record.error or "")


def execute(deps: Deps, workdir: Path, name: str, plan: PlannedRun, fixes: int) -> RunRecord:
    """Apply the plan's edits and run it in the sandbox; never raises for the run's own failures."""
    record = RunRecord(name=name, planned=plan, ok=False, fixes=fixes)
    bad = sorted(set(plan.args) & RESERVED_FLAGS) + [f for f in plan.args if not f.startswith("--")]
    if bad:
        return record.model_copy(update={"error": f"flags {bad} are not allowed: the orchestrator sets them"})
    try:
        apply_edits(workdir, plan.edits)
    except EditRefused as e:
        return record.model_copy(update={"error": f"edit refused: {e}"})
    out = workdir / name
    if out.exists():  # a failed earlier attempt's partial output
        shutil.rmtree(out)
    prof = deps.template.profile(deps.settings.scale)
    started = time.time()
    result = deps.executor.run(experiment_cmd(deps.template, deps.settings.scale, name, plan.args), workdir,
                               limits_for(deps.template, deps.settings.scale),
                               cpus=prof.cpus, gpus=prof.gpus, log_name=name)
    wall = round(time.time() - started, 2)
    if not result.ok:
        why = f"killed for {result.killed_for}" if result.killed_for else f"exit code {result.exit_code}"
        return record.model_copy(update={"error": f"{why}\n{result.error_tail(30)}", "wall_s": wall})
    try:
        info = check_final_info(json.loads(read_output(workdir, f"{name}/final_info.json")), deps.template,
                                deps.settings.scale, f"{name}/final_info.json")
    except (OSError, ValueError, TemplateError) as e:
        return record.model_copy(update={"error": f"bad results: {e}", "wall_s": wall})
    return record.model_copy(update={"ok": True, "results": info, "wall_s": wall})
