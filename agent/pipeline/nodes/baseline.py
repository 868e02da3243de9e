"""The baseline `run_0`: the unmodified template, run once per template, scale and machine,
then cached under `experiments/.baselines/` (keyed by the template's content hash) and
copied into each run. Its output is copied through agent.sandbox.files like any run's."""

from __future__ import annotations

import platform
import shutil
import tempfile
from pathlib import Path

from agent.errors import TemplateError
from agent.pipeline.deps import Deps
from agent.pipeline.progress import emit
from agent.pipeline.state import RunState
from agent.sandbox import files
from agent.sandbox.executors import Executor
from agent.template.contract import Template, check_final_info
from agent.template.run import experiment_cmd, limits_for


def cache_dir(experiments: Path, template: Template, scale: str) -> Path:
    key = f"{scale}-{template.content_hash()}-{platform.machine()}"
    return experiments / ".baselines" / template.name / key


def ensure_baseline(template: Template, scale: str, experiments: Path, executor: Executor) -> Path:
    """Return the cache folder holding `run_0`, running the baseline first if needed."""
    cached = cache_dir(experiments, template, scale)
    if cached.is_dir() and files.is_file(cached, "run_0/final_info.json"):
        return cached
    emit("baseline", "baseline", note=f"running {template.name} baseline at {scale} scale")
    where = str(template.path / "experiment.py")
    with tempfile.TemporaryDirectory(prefix="baseline-", dir=experiments) as tmp:
        work = Path(tmp) / "work"
        shutil.copytree(template.path, work, ignore=shutil.ignore_patterns("__pycache__", "run_*", ".git"))
        prof = template.profile(scale)
        result = executor.run(experiment_cmd(template, scale, "run_0"), work, limits_for(template, scale),
                              cpus=prof.cpus, gpus=prof.gpus, log_name="run_0")
        if not result.ok:
            raise TemplateError(where, "baseline", f"the unmodified template failed: {result.error_tail(15)}")
        try:
            check_final_info(files.read_json(work, "run_0/final_info.json"), template, scale, "run_0/final_info.json")
            for log in files.list_files(work, ".", (".log",)):
                if log.startswith("run_0."):
                    files.copy_file(work, log, work, f"run_0/{log}")
            staging = Path(tmp) / "cache"
            files.copy_tree(work, "run_0", staging, "run_0")
        except (OSError, files.UnsafeFile) as e:
            raise TemplateError(where, "baseline", f"no valid run_0/final_info.json: {e}") from None
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(cached, ignore_errors=True)
        staging.rename(cached)  # whole or not at all: a half-copied cache must never count
    return cached


def baseline(deps: Deps, state: RunState) -> dict:
    """Copy the cached baseline `run_0` into this run (running it first if needed)."""
    cached = ensure_baseline(deps.template, deps.settings.scale, deps.settings.experiments, deps.executor)
    if not files.is_file(deps.run_dir, "baseline/run_0/final_info.json"):
        files.remove(deps.run_dir, "baseline")
        files.copy_tree(cached, "run_0", deps.baseline_dir, "run_0")
    emit("baseline", "done", note=f"baseline run_0 ready ({deps.settings.scale} scale)")
    return {}
