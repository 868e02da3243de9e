"""The template contract: good templates load; each malformation is one clear line naming the
file and the field, and exit code 2 from the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agent.errors import TemplateError
from agent.template.contract import check_final_info, list_templates, load_template
from tests.helpers import cli, scaffold


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return scaffold(tmp_path)


def test_scaffold_loads(tiny: Path) -> None:
    tpl = load_template(tiny)
    assert tpl.primary.name == "test_nll"
    assert {k.name for k in tpl.knobs} == {"num_components", "learning_rate", "init"}
    assert tpl.experiment_args("smoke")[:2] == ["--scale", "smoke"]


@pytest.mark.parametrize("name", list_templates())
def test_shipped_templates_load(name: str) -> None:
    tpl = load_template(name)
    assert len(tpl.knobs) >= 4, "every shipped template declares at least 4 knobs"
    assert any(k.constant for k in tpl.knobs) or any(k.flag for k in tpl.knobs)


def _edit_toml(tpl: Path, old: str, new: str) -> None:
    path = tpl / "template.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


MALFORMED = [
    # (change, field expected in the message)
    (lambda t: _edit_toml(t, "primary = true", "primary = false"), "exactly one metric must be primary"),
    (lambda t: _edit_toml(t, 'direction = "minimize"', 'direction = "lower"'), "metrics.0.direction"),
    (lambda t: _edit_toml(t, "[scale.full]", "[scale.huge]"), "scale.full"),
    (lambda t: _edit_toml(t, 'flag = "--num_components"', 'flag = "--num_components"\nconstant = "K"'), "knobs.0"),
    (lambda t: _edit_toml(t, "values = [1, 2, 3, 5, 8]", "values = [3]"), "knobs.0"),
    (lambda t: _edit_toml(t, "title =", "title = = "), "syntax"),
    (lambda t: (t / "plot.py").unlink(), "plot.py: file"),
    (lambda t: (t / "latex" / "template.tex").write_text("\\documentclass{article}"), "placeholders"),
    (lambda t: _edit_toml(t, "[[figures]]", "[[plots]]"), 'figures: declare every PNG plot.py writes: [[figures]]'),
    (lambda t: _edit_toml(t, 'metric = "test_nll"', 'metric = "nll"'), "names unknown metric 'nll'"),
    (lambda t: _edit_toml(t, 'file = "test_nll.png"', 'file = "../test_nll.png"'), "figures.0.file"),
    (lambda t: _edit_toml(t, 'direction = "minimize"\nprimary = true', 'direction = "none"\nprimary = true'),
     "primary metric test_nll needs direction minimize or maximize"),
]


@pytest.mark.parametrize("change,expected", MALFORMED)
def test_malformed_template_names_file_and_field(tiny: Path, change, expected: str) -> None:
    change(tiny)
    with pytest.raises(TemplateError) as err:
        load_template(tiny)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_template_cli_exit_code(tiny: Path) -> None:
    _edit_toml(tiny, "primary = true", "primary = false")
    res = cli("template", "check", str(tiny))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "template.toml" in res.stderr
    assert "Traceback" not in res.stderr


def test_unknown_template_lists_known_ones() -> None:
    res = cli("template", "check", "no_such_template")
    assert res.returncode == 2
    assert re.search(r"no such template \(known: .*\)", res.stderr)


def _info(n_seeds: int = 3) -> dict:
    block = {"means": {"test_nll": 1.0, "train_nll": 1.0, "train_time": 0.1},
             "stderrs": {"test_nll": 0.1, "train_nll": 0.1, "train_time": 0.0},
             "per_seed": {m: [1.0] * n_seeds for m in ("test_nll", "train_nll", "train_time")}}
    return {"bimodal": json.loads(json.dumps(block)), "trimodal": json.loads(json.dumps(block))}


def test_final_info_schema(tiny: Path) -> None:
    tpl = load_template(tiny)
    check_final_info(_info(), tpl, "smoke")
    bad = _info()
    bad["bimodal"]["means"]["test_nll"] = float("nan")
    with pytest.raises(TemplateError, match="bimodal.means.test_nll"):
        check_final_info(bad, tpl, "smoke")
    with pytest.raises(TemplateError, match="per_seed.test_nll"):
        check_final_info(_info(n_seeds=2), tpl, "smoke")
    with pytest.raises(TemplateError, match="datasets"):
        check_final_info({"bimodal": _info()["bimodal"]}, tpl, "smoke")


def test_knob_candidates(tiny: Path) -> None:
    tpl = load_template(tiny)
    assert tpl.knob("num_components").candidates() == [1, 2, 5, 8]
    # three log-spaced points of [0.005, 0.5], less the default 0.05
    assert tpl.knob("learning_rate").candidates() == [pytest.approx(0.005), pytest.approx(0.5)]


def test_scaffold_follows_its_own_guide(tiny: Path) -> None:
    """`--out_dir` has a default, log.txt gets progress lines, config.json records every knob."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "experiment.py"], cwd=tiny, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    log = (tiny / "run_0" / "log.txt").read_text()
    assert len(re.findall(r"^dataset=bimodal seed=1 step=\d+ train_nll=", log, re.MULTILINE)) >= 2
    config = json.loads((tiny / "run_0" / "config.json").read_text())
    tpl = load_template(tiny)
    assert {k.constant or k.name for k in tpl.knobs} <= set(config)
    check_final_info(json.loads((tiny / "run_0" / "final_info.json").read_text()), tpl, "smoke")
