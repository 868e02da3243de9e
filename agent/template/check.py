"""`template check`: validate a template, run its smoke baseline and `plot.py` in the
sandbox, and check both outputs against the contract."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

from agent.errors import TemplateError
from agent.sandbox import files
from agent.sandbox.executors import Executor, LocalExecutor
from agent.sandbox.limits import Limits
from agent.sandbox.runner import python_executable
from agent.template.contract import Template, check_final_info, load_template
from agent.template.run import experiment_cmd, limits_for


class CheckReport(BaseModel):
    template: str
    scale: str
    experiment_s: float
    plot_s: float
    figures: list[str]
    primary: dict[str, float]  # dataset -> primary metric mean


def check_template(name: str, scale: str = "smoke", executor: Executor | None = None,
                   keep: Path | None = None) -> CheckReport:
    """Raise `TemplateError` on the first problem; return timings and outputs otherwise."""
    tpl = load_template(name)
    executor = executor or LocalExecutor()
    with tempfile.TemporaryDirectory(prefix=f"check-{tpl.name}-") as tmp:
        work = Path(tmp) / tpl.name
        shutil.copytree(tpl.path, work, ignore=shutil.ignore_patterns("__pycache__", "run_*", ".git"))
        check_knobs(tpl, executor, work)
        exp_s = _run(executor, tpl, work, experiment_cmd(tpl, scale, "run_0"), limits_for(tpl, scale), "experiment.py")
        try:
            info = files.read_json(work, "run_0/final_info.json")
        except FileNotFoundError:
            raise TemplateError(str(tpl.path / "experiment.py"), "output", "wrote no run_0/final_info.json") from None
        except (OSError, files.UnsafeFile) as e:
            raise TemplateError("run_0/final_info.json", "json", str(e)) from None
        check_final_info(info, tpl, scale, "run_0/final_info.json")
        files.write_text(work, "labels.json", json.dumps({"run_0": "Baseline"}))
        plot_cmd = [python_executable(), "plot.py", "--labels", "labels.json", "--out_dir", "figures"]
        plot_s = _run(executor, tpl, work, plot_cmd, Limits(timeout_s=180), "plot.py")
        figures = files.list_files(work, "figures", (".png",)) if files.kind(work, "figures") == "dir" else []
        if not figures:
            raise TemplateError(str(tpl.path / "plot.py"), "output", "wrote no PNG into --out_dir")
        if keep is not None:
            files.copy_tree(work, ".", keep, ".")
    primary = tpl.primary.name
    return CheckReport(template=tpl.name, scale=scale, experiment_s=exp_s, plot_s=plot_s, figures=figures,
                       primary={ds: block["means"][primary] for ds, block in info.items()})


def check_knobs(tpl: Template, executor: Executor, work: Path) -> None:
    """Every knob must reach experiment.py: a flag its argparse accepts (seen in `--help`, run in
    the sandbox), or a module-level `NAME = <default>` line (read, never imported)."""
    from agent.template.knobs import constant_value

    code = (work / "experiment.py").read_text()
    for knob in tpl.knobs:
        if knob.constant:
            found = constant_value(code, knob.constant)
            if found is None:
                raise TemplateError(str(tpl.path / "experiment.py"), f"knobs.{knob.name}",
                                    f"no module-level line `{knob.constant} = ...` for the constant knob")
            if found[1] != knob.default:
                raise TemplateError(str(tpl.path / "experiment.py"), f"knobs.{knob.name}",
                                    f"`{found[0].strip()}` differs from the declared default {knob.default!r}")
    flags = [k for k in tpl.knobs if k.flag]
    if flags:
        result = executor.run([python_executable(), "experiment.py", "--help"], work, Limits(timeout_s=60),
                              log_name="help")
        usage = files.read_text(work, "help.stdout.log") if result.ok else ""
        for knob in flags:
            if not re.search(rf"{re.escape(knob.flag)}\b", usage):
                raise TemplateError(str(tpl.path / "experiment.py"), f"knobs.{knob.name}",
                                    f"`python experiment.py --help` does not list {knob.flag}")


def _run(executor: Executor, tpl: Template, work: Path, cmd: list[str], limits: Limits, what: str) -> float:
    started = time.time()
    result = executor.run(cmd, work, limits, log_name=what.replace(".py", ""))
    if not result.ok:
        why = "timed out" if result.timed_out else f"failed ({result.killed_for or f'exit {result.exit_code}'})"
        raise TemplateError(str(tpl.path / what), "run", f"{why}: {result.error_tail(5)}")
    return round(time.time() - started, 2)
