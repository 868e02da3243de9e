"""`template check`: validate a template, run it in the sandbox, and compare what it did with
what `template.toml` declares.

| Check | How | Fails when |
|---|---|---|
| contract | `load_template` | a field, file or placeholder is wrong |
| knobs reach the code | `experiment.py --help` (in the sandbox); the constant's line, read | a flag is unknown, a constant line is missing or holds another value |
| baseline | the scale's datasets and seeds, in the sandbox | it fails, or `final_info.json` lacks a dataset or a declared metric |
| knob defaults | `run_0/config.json`, else a dry parse of `experiment.py` (never imported) | the code used another value than the declared default |
| every dataset | the datasets the scale leaves out, one seed, in the sandbox | one fails, or lacks a declared metric |
| figures | `plot.py` in the sandbox | a declared figure is missing, or an undeclared one appears |

Every failure is one `TemplateError` line that names the file and field and says what to
change. What the runs wrote is read through `agent.sandbox.files` (no links, size and depth
caps); the code is read from the template itself, never from the copy the sandbox ran in.
"""

from __future__ import annotations

import ast
import json
import math
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.errors import TemplateError
from agent.sandbox import files
from agent.sandbox.executors import Executor, LocalExecutor
from agent.sandbox.limits import Limits
from agent.sandbox.runner import python_executable
from agent.template.contract import FIGURES_HINT, Knob, Template, check_final_info, load_template
from agent.template.knobs import constant_value, parse_flag_value
from agent.template.run import experiment_cmd, limits_for

FIGURES_DIR = "figures"
DATASETS_RUN = "check_datasets"  # not `run_*`, so plot.py never mistakes it for a run


class CheckReport(BaseModel):
    template: str
    scale: str
    experiment_s: float
    datasets_s: float
    """Seconds for the datasets the scale leaves out (0 when it runs them all)."""
    plot_s: float
    figures: list[str]
    primary: dict[str, float]  # dataset -> primary metric mean


def check_template(
    name: str, scale: str = "smoke", executor: Executor | None = None, keep: Path | None = None
) -> CheckReport:
    """Raise `TemplateError` on the first problem; return timings and outputs otherwise."""
    tpl = load_template(name)
    tpl.profile(scale)
    executor = executor or LocalExecutor()
    with tempfile.TemporaryDirectory(prefix=f"check-{tpl.name}-") as tmp:
        work = Path(tmp) / tpl.name
        # no run_* or figures of the author's own: stale outputs must not pass for fresh ones
        shutil.copytree(
            tpl.path, work, ignore=shutil.ignore_patterns("__pycache__", "run_*", ".git", FIGURES_DIR)
        )
        check_knobs(tpl, executor, work)
        exp_s = _run(executor, tpl, work, experiment_cmd(tpl, scale, "run_0"), limits_for(tpl, scale), "run")
        info = check_final_info(
            _read_json(tpl, work, "run_0/final_info.json"), tpl, scale, "run_0/final_info.json"
        )
        check_defaults(tpl, work, "run_0")
        datasets_s = check_datasets(tpl, executor, work, scale)
        files.write_text(work, "labels.json", json.dumps({"run_0": "Baseline"}))
        plot_cmd = [python_executable(), "plot.py", "--labels", "labels.json", "--out_dir", FIGURES_DIR]
        plot_s = _run(executor, tpl, work, plot_cmd, Limits(timeout_s=180), "run", what="plot.py", log="plot")
        figures = check_figures(tpl, work)
        if keep is not None:
            files.copy_tree(work, ".", keep, ".")
    primary = tpl.primary.name
    return CheckReport(
        template=tpl.name,
        scale=scale,
        experiment_s=exp_s,
        datasets_s=datasets_s,
        plot_s=plot_s,
        figures=figures,
        primary={ds: block["means"][primary] for ds, block in info.items()},
    )


def check_knobs(tpl: Template, executor: Executor, work: Path) -> None:
    """Every knob must reach experiment.py: a flag its argparse accepts (seen in `--help`, run in
    the sandbox), or a module-level `NAME = <default>` line (read, never imported)."""
    code = (tpl.path / "experiment.py").read_text()
    for knob in tpl.knobs:
        if knob.constant:
            found = constant_value(code, knob.constant)
            if found is None:
                raise TemplateError(
                    str(tpl.path / "experiment.py"),
                    f"knobs.{knob.name}",
                    f"no module-level line `{knob.constant} = ...` for the constant knob",
                )
            if not same_value(knob, found[1], knob.default):
                raise TemplateError(
                    str(tpl.path / "experiment.py"),
                    f"knobs.{knob.name}",
                    f"`{found[0].strip()}` differs from the declared default {knob.default!r}",
                )
    flags = [k for k in tpl.knobs if k.flag]
    if flags:
        result = executor.run(
            [python_executable(), "experiment.py", "--help"], work, Limits(timeout_s=60), log_name="help"
        )
        usage = files.read_text(work, "help.stdout.log") if result.ok else ""
        for knob in flags:
            if not re.search(rf"{re.escape(knob.flag)}\b", usage):  # type: ignore[arg-type]
                raise TemplateError(
                    str(tpl.path / "experiment.py"),
                    f"knobs.{knob.name}",
                    f"`python experiment.py --help` does not list {knob.flag}",
                )


# ---------------------------------------------------------------- knob defaults


def same_value(knob: Knob, used: Any, declared: Any) -> bool:
    """Whether the code's value is the declared one (3e-4 == 0.0003; a string is parsed as the
    knob's type first, since some scripts record flags as they arrived)."""
    if isinstance(used, str) and not isinstance(declared, str):
        used = parse_flag_value(knob, used)
    if isinstance(used, bool) or isinstance(declared, bool):
        return used is declared
    if isinstance(used, int | float) and isinstance(declared, int | float):
        return math.isclose(used, declared, rel_tol=1e-9, abs_tol=0.0)
    return used == declared


def _literal(node: ast.AST | None) -> tuple[bool, Any]:
    if node is None:
        return False, None
    try:
        return True, ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return False, None


def dry_default(code: str, knob: Knob) -> tuple[bool, Any]:
    """The knob's default as `experiment.py` writes it, found without running it: the literal
    `default=` of `add_argument("--flag", ...)`, else a class-level `name: type = literal` (the
    dataclass of defaults the guide asks for). (False, None) when neither is there."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False, None
    names = {knob.name, (knob.flag or "").lstrip("-")} - {""}
    for node in ast.walk(tree):
        if (
            knob.flag
            and isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
            and any(isinstance(a, ast.Constant) and a.value == knob.flag for a in node.args)
        ):
            found = _literal(next((k.value for k in node.keywords if k.arg == "default"), None))
            if found[0] and found[1] is not None:
                return found
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if (
                    isinstance(item, ast.AnnAssign)
                    and isinstance(item.target, ast.Name)
                    and item.target.id in names
                ):
                    found = _literal(item.value)
                    if found[0]:
                        return found
    return False, None


def check_defaults(tpl: Template, work: Path, run: str) -> None:
    """Every declared knob default must be what the code used: the value `config.json` records
    under the knob's name (or its constant's), else what a dry parse of experiment.py finds.
    Otherwise every run of a study would be compared with a baseline that is not the declared one."""
    config: Any = {}
    if files.kind(work, f"{run}/config.json") is not None:
        config = _read_json(tpl, work, f"{run}/config.json")
    if not isinstance(config, dict):
        raise TemplateError(f"{run}/config.json", "top level", "must be an object of setting -> value")
    code = (tpl.path / "experiment.py").read_text()
    for knob in tpl.knobs:
        keys = [k for k in (knob.constant, knob.name, (knob.flag or "").lstrip("-")) if k]
        key = next((k for k in keys if k in config), None)
        if key is not None:
            used, where = config[key], f"{run}/config.json records {key} = {config[key]!r}"
        else:
            found, used = dry_default(code, knob)
            if not found:
                raise TemplateError(
                    str(tpl.path / "experiment.py"),
                    f"knobs.{knob.name}",
                    f"cannot tell which value the code uses: record it in {run}/config.json "
                    f'as "{keys[0]}" (docs/templates.md, config.json)',
                )
            where = f"experiment.py defaults it to {used!r}"
        if not same_value(knob, used, knob.default):
            raise TemplateError(
                str(tpl.path / "template.toml"),
                f"knobs.{knob.name}.default",
                f"declared {knob.default!r}, but {where}: make the two equal "
                "(a sweep would otherwise compare against a baseline that is not the declared one)",
            )


# ---------------------------------------------------------------- datasets and figures


def check_datasets(tpl: Template, executor: Executor, work: Path, scale: str) -> float:
    """Run the declared datasets the scale leaves out, with one seed, and check their results
    hold every declared metric. Returns the seconds it took (0 when there are none)."""
    rest = [d for d in tpl.datasets if d not in tpl.datasets_for(scale)]
    if not rest:
        return 0.0
    seed = str(tpl.seeds_for(scale)[0])
    cmd = [
        python_executable(),
        "experiment.py",
        "--out_dir",
        DATASETS_RUN,
        "--scale",
        scale,
        "--seeds",
        seed,
        "--datasets",
        ",".join(rest),
    ]
    seconds = _run(
        executor, tpl, work, cmd, limits_for(tpl, scale), f"datasets {','.join(rest)}", log="datasets"
    )
    where = f"{DATASETS_RUN}/final_info.json"
    check_final_info(_read_json(tpl, work, where), tpl, scale, where, datasets=rest, n_seeds=1)
    return seconds


def check_figures(tpl: Template, work: Path) -> list[str]:
    """The PNGs plot.py wrote must be exactly the declared ones."""
    written = files.list_files(work, FIGURES_DIR, (".png",)) if files.kind(work, FIGURES_DIR) == "dir" else []
    declared = [f.file for f in tpl.figures]
    undeclared = [f for f in written if f not in declared]
    missing = [f for f in declared if f not in written]
    where = str(tpl.path / "plot.py")
    if undeclared:
        raise TemplateError(
            where,
            "figures",
            f"wrote {', '.join(undeclared)}, which template.toml does not declare: "
            f"{FIGURES_HINT.removeprefix('declare every PNG plot.py writes: ')}",
        )
    if missing:
        raise TemplateError(
            where,
            "figures",
            f"did not write {', '.join(missing)}, which template.toml declares: "
            "write it into --out_dir, or remove its [[figures]] entry",
        )
    return written


# ---------------------------------------------------------------- helpers


def _read_json(tpl: Template, work: Path, rel: str) -> Any:
    try:
        return files.read_json(work, rel)
    except FileNotFoundError:
        raise TemplateError(str(tpl.path / "experiment.py"), "output", f"wrote no {rel}") from None
    except (OSError, files.UnsafeFile) as e:
        raise TemplateError(rel, "json", str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def _run(
    executor: Executor,
    tpl: Template,
    work: Path,
    cmd: list[str],
    limits: Limits,
    field: str,
    what: str = "experiment.py",
    log: str = "experiment",
) -> float:
    started = time.time()
    result = executor.run(cmd, work, limits, log_name=log)
    if not result.ok:
        why = (
            "timed out" if result.timed_out else f"failed ({result.killed_for or f'exit {result.exit_code}'})"
        )
        tail = " ".join(result.error_tail(5).split())
        raise TemplateError(str(tpl.path / what), field, f"{why}: {tail}")
    return round(time.time() - started, 2)
