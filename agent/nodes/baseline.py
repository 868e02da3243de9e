"""The baseline `run_0`: the unmodified template, run once per template, scale and machine,
then cached under `experiments/.baselines/` (keyed by the template's content hash)."""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

from agent.errors import TemplateError
from agent.executors import Executor
from agent.progress import emit
from agent.sandbox import Limits, python_executable, read_output
from agent.templates import Template, check_final_info


def cache_dir(experiments: Path, template: Template, scale: str) -> Path:
    key = f"{scale}-{template.content_hash()}-{platform.machine()}"
    return experiments / ".baselines" / template.name / key


def limits_for(template: Template, scale: str) -> Limits:
    prof = template.profile(scale)
    return Limits(timeout_s=prof.timeout_s, memory_mb=prof.memory_mb)


def experiment_cmd(template: Template, scale: str, run: str, args: dict[str, str] | None = None) -> list[str]:
    cmd = [python_executable(), "experiment.py", "--out_dir", run, *template.experiment_args(scale)]
    for flag, value in (args or {}).items():
        cmd += [flag, value]
    return cmd


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


def load_info(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "final_info.json").read_text())
