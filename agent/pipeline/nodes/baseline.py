"""The baseline `run_0`: the unmodified template, run once per template, scale and machine,
then cached under `experiments/.baselines/` (keyed by the template's content hash) and
copied into each run."""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from pathlib import Path

from agent.errors import TemplateError
from agent.pipeline.deps import Deps
from agent.pipeline.progress import emit
from agent.pipeline.state import RunState
from agent.sandbox.executors import Executor
from agent.sandbox.runner import read_output
from agent.template.contract import Template, check_final_info
from agent.template.run import experiment_cmd, limits_for, load_info


def cache_dir(experiments: Path, template: Template, scale: str) -> Path:
    key = f"{scale}-{template.content_hash()}-{platform.machine()}"
    return experiments / ".baselines" / template.name / key


def ensure_baseline(template: Template, scale: str, experiments: Path, executor: Executor) -> Path:
    """Return the cached `run_0` folder, running the baseline first if needed."""
    cached = cache_dir(experiments, template, scale) / "run_0"
    if (cached / "final_info.json").is_file():
        return cached
    emit("baseline", "baseline", note=f"running {template.name} baseline at {scale} scale")
    with tempfile.TemporaryDirectory(prefix="baseline-", dir=experiments) as tmp:
        work = Path(tmp) / "work"
        shutil.copytree(template.path, work, ignore=shutil.ignore_patterns("__pycache__", "run_*"))
        prof = template.profile(scale)
        result = executor.run(experiment_cmd(template, scale, "run_0"), work, limits_for(template, scale),
                              cpus=prof.cpus, gpus=prof.gpus, log_name="run_0")
        if not result.ok:
            raise TemplateError(str(template.path / "experiment.py"), "baseline",
                                f"the unmodified template failed: {result.error_tail(15)}")
        try:
            info = json.loads(read_output(work, "run_0/final_info.json"))
        except (OSError, ValueError) as e:
            raise TemplateError(str(template.path / "experiment.py"), "baseline", f"no valid final_info.json: {e}") from None
        check_final_info(info, template, scale, "run_0/final_info.json")
        cached.parent.mkdir(parents=True, exist_ok=True)
        for log in work.glob("run_0.*.log"):
            shutil.copy2(log, work / "run_0" / log.name)
        shutil.copytree(work / "run_0", cached, dirs_exist_ok=True)
    return cached


def baseline(deps: Deps, state: RunState) -> dict:
    """Copy the cached baseline `run_0` into this run (running it first if needed)."""
    cached = ensure_baseline(deps.template, deps.settings.scale, deps.settings.experiments, deps.executor)
    dst = deps.run_dir / "baseline" / "run_0"
    if not dst.is_dir():
        shutil.copytree(cached, dst)
    emit("baseline", "done", note=f"baseline run_0 ready ({deps.settings.scale} scale)")
    return {"baseline": load_info(dst)}
