"""Every template under templates/ honours the contract of docs/templates.md.

The fast tests read the files; the slow ones run `experiment.py` at smoke scale in a temp copy
(a plain subprocess: the template code here is ours, not LLM-written), validate its
`final_info.json`, plot it, and check that a knob passed by flag changes the results.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.models import Idea
from agent.template.contract import check_final_info, list_templates, load_template

TEMPLATES = list_templates()


def test_there_are_templates() -> None:
    assert {"2d_diffusion", "grokking"} <= set(TEMPLATES)


def _module_constants(source: str) -> dict[str, list]:
    """NAME -> the literal values of every module-level `NAME = literal` line."""
    found: dict[str, list] = {}
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    found.setdefault(target.id, []).append(ast.literal_eval(node.value))
                except ValueError:
                    found.setdefault(target.id, []).append(None)
    return found


@pytest.mark.parametrize("name", TEMPLATES)
def test_constant_knobs_have_their_default_line(name: str) -> None:
    """The brain edits the line `NAME = <default literal>`: it must exist exactly once."""
    tpl = load_template(name)
    constants = _module_constants((tpl.path / "experiment.py").read_text())
    knobs = [k for k in tpl.knobs if k.constant]
    for knob in knobs:
        values = constants.get(knob.constant, [])
        assert values == [knob.default], (
            f"{name}: experiment.py needs one module-level line `{knob.constant} = {knob.default!r}` "
            f"for knob {knob.name}, found values {values}")
        line = [x for x in (tpl.path / "experiment.py").read_text().splitlines()
                if x.startswith(f"{knob.constant} =")]
        assert len(line) == 1, f"{name}: `{knob.constant} = ...` must be on one line, once"
    assert knobs, f"{name}: declare at least one `constant` knob"


@pytest.mark.parametrize("name", TEMPLATES)
def test_flag_knobs_are_accepted(name: str) -> None:
    tpl = load_template(name)
    out = subprocess.run([sys.executable, "experiment.py", "--help"], cwd=tpl.path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for knob in tpl.knobs:
        if knob.flag:
            assert knob.flag in out.stdout, f"{name}: experiment.py --help lacks {knob.flag}"


@pytest.mark.parametrize("name", TEMPLATES)
def test_seed_ideas_use_real_knobs(name: str) -> None:
    tpl = load_template(name)
    ideas = [Idea(**raw) for raw in json.loads((tpl.path / "seed_ideas.json").read_text())]
    assert 1 <= len(ideas) <= 2
    known = {k.name for k in tpl.knobs}
    for idea in ideas:
        assert idea.knobs and set(idea.knobs) <= known, f"{idea.name}: unknown knobs {set(idea.knobs) - known}"


# --- slow: real smoke runs ---------------------------------------------------------------


def _run(cmd: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}"
    return proc


def _experiment(workdir: Path, name: str, out_dir: str, extra: list[str]) -> dict:
    tpl = load_template(workdir)
    cmd = [sys.executable, "experiment.py", "--out_dir", out_dir, *tpl.experiment_args("smoke"), *extra]
    _run(cmd, workdir, tpl.profile("smoke").timeout_s)
    info = json.loads((workdir / out_dir / "final_info.json").read_text())
    return check_final_info(info, tpl, "smoke", where=f"{name}/{out_dir}/final_info.json")


@pytest.fixture(scope="module", params=TEMPLATES)
def baseline(request, tmp_path_factory) -> tuple[str, Path, dict]:
    """A temp copy of one template with its smoke baseline in run_0."""
    name = request.param
    workdir = tmp_path_factory.mktemp(name) / name
    shutil.copytree(load_template(name).path, workdir)
    return name, workdir, _experiment(workdir, name, "run_0", [])


@pytest.mark.slow
def test_smoke_run_meets_the_contract(baseline) -> None:
    name, workdir, _ = baseline  # check_final_info already validated final_info.json
    tpl = load_template(workdir)
    config = json.loads((workdir / "run_0" / "config.json").read_text())
    assert (workdir / "run_0" / "log.txt").read_text().strip(), "log.txt is empty"
    for knob in tpl.knobs:  # where config.json records a knob, it ran at its declared default
        for key in (knob.name, knob.constant):
            if key in config:
                assert config[key] == knob.default, f"{name}: config.json {key}={config[key]!r}"


@pytest.mark.slow
def test_flag_knob_changes_results(baseline) -> None:
    name, workdir, base = baseline
    tpl = load_template(workdir)
    knob = next(k for k in tpl.knobs if k.flag)
    value = knob.candidates()[0]
    changed = _experiment(workdir, name, "run_1", [knob.flag, str(value)])
    timings = {m.name for m in tpl.metrics if m.unit == "s"}  # wall clock differs anyway

    def outcome(info: dict) -> dict:
        return {ds: {m: v for m, v in b["per_seed"].items() if m not in timings} for ds, b in info.items()}

    assert outcome(changed) != outcome(base), f"{name}: {knob.flag} {value} left every metric unchanged"
    config = json.loads((workdir / "run_1" / "config.json").read_text())
    if knob.name in config:
        assert config[knob.name] == value


@pytest.mark.slow
def test_plot_writes_png(baseline) -> None:
    name, workdir, _ = baseline
    (workdir / "labels.json").write_text(json.dumps({"run_0": "Baseline"}))
    _run([sys.executable, "plot.py", "--labels", "labels.json", "--out_dir", "figures"], workdir, 300)
    pngs = list((workdir / "figures").glob("*.png"))
    assert pngs, f"{name}: plot.py wrote no PNG"
    assert all(p.stat().st_size > 1000 for p in pngs)
    declared = {f.file for f in load_template(workdir).figures}
    assert {p.name for p in pngs} == declared, f"{name}: plot.py must write exactly the [[figures]] of template.toml"
