"""How the orchestrator calls a template's `experiment.py`: its command line, its limits, and
one sandboxed call with its `final_info.json` read back and validated."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NamedTuple

from agent.errors import TemplateError
from agent.sandbox import files
from agent.sandbox.executors import Executor
from agent.sandbox.runner import Limits, python_executable
from agent.template.contract import Template, check_final_info

# Flags only the orchestrator sets: a brain must not redirect output or change the scale.
RESERVED_FLAGS = {"--out_dir", "--scale", "--seeds", "--datasets"}


def limits_for(template: Template, scale: str) -> Limits:
    prof = template.profile(scale)
    return Limits(timeout_s=prof.timeout_s, memory_mb=prof.memory_mb)


def experiment_cmd(template: Template, scale: str, run: str, args: dict[str, str] | None = None,
                   seeds: list[int] | None = None) -> list[str]:
    cmd = [python_executable(), "experiment.py", "--out_dir", run, *template.experiment_args(scale, seeds)]
    for flag, value in (args or {}).items():
        cmd += [flag, value]
    return cmd


def refused_flags(args: dict[str, str]) -> str | None:
    """Why a plan's flags may not run (reserved for the orchestrator, or not flags), or None."""
    bad = sorted(set(args) & RESERVED_FLAGS) + [f for f in args if not f.startswith("--")]
    return f"flags {bad} are not allowed: the orchestrator sets them" if bad else None


class RunOutcome(NamedTuple):
    """What one sandboxed `experiment.py` call gave: validated results, or why there are none."""

    ok: bool
    results: dict[str, Any] | None
    error: str | None
    wall_s: float
    shared: bool = False
    """Other sandboxed runs shared the machine during it (see `SandboxResult.shared`)."""


def run_experiment(executor: Executor, template: Template, scale: str, folder: Path, out: str,
                   args: dict[str, str], *, log_name: str, seeds: list[int] | None = None) -> RunOutcome:
    """`experiment.py --out_dir out` in the sandbox in `folder`, on `seeds` (by default the
    scale's). Its final_info.json is read back through agent.sandbox.files (a link, a FIFO, too
    big, too deep or not JSON fails the run) and checked against the template. Never raises for
    the run's own failures: they come back as the error, for the brain's fix loop."""
    prof = template.profile(scale)
    started = time.time()
    result = executor.run(experiment_cmd(template, scale, out, args, seeds), folder, limits_for(template, scale),
                          cpus=prof.cpus, gpus=prof.gpus, log_name=log_name)
    wall = round(time.time() - started, 2)
    if not result.ok:
        why = ("unsafe output" if result.violation else
               f"killed for {result.killed_for}" if result.killed_for else f"exit code {result.exit_code}")
        return RunOutcome(False, None, f"{why}\n{result.error_tail(30)}", wall, result.shared)
    where = f"{out}/final_info.json"
    try:
        info = check_final_info(files.read_json(folder, where), template, scale, where,
                                n_seeds=len(seeds) if seeds else None)
    except FileNotFoundError:
        return RunOutcome(False, None, f"bad results: the run wrote no {where}", wall, result.shared)
    except (OSError, files.UnsafeFile, TemplateError) as e:
        return RunOutcome(False, None, f"bad results: {e}", wall, result.shared)
    return RunOutcome(True, info, None, wall, result.shared)


def load_info(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "final_info.json").read_text())
