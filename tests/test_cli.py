"""The console script as a user meets it: exit codes, one-line errors, the template workflow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.template.contract import list_templates
from tests.helpers import cli, scaffold


def _one_line_error(res) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_doctor_lists_every_tool() -> None:
    res = cli("doctor")
    assert res.returncode == 0, res.stdout + res.stderr  # this machine has everything `make setup` installs
    for tool in ("pdflatex", "latexmk", "chktex", "bubblewrap", "torch", "GPU"):
        assert tool in res.stdout


def test_template_list_shows_the_shipped_templates() -> None:
    res = cli("template", "list")
    assert res.returncode == 0
    for name in list_templates():
        assert name in res.stdout


@pytest.mark.parametrize("args,expected", [
    (("run", "--template", "no_such_template"), "no such template"),
    (("run", "--template", "2d_diffusion", "--parallel", "0"), "parallel"),
    (("resume", "no-such-run"), "no run 'no-such-run'"),
    (("template", "new", "9bad name"), "template name"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    env = {"AI_SCIENTIST_EXPERIMENTS": str(tmp_path / "experiments"), "AI_SCIENTIST_ARCHIVE": str(tmp_path / "a")}
    assert expected in _one_line_error(cli(*args, cwd=tmp_path, env=env))


def test_a_bad_second_template_is_refused_before_the_first_runs(tmp_path: Path) -> None:
    env = {"AI_SCIENTIST_EXPERIMENTS": str(tmp_path / "experiments"), "AI_SCIENTIST_ARCHIVE": str(tmp_path / "a")}
    res = cli("run", "--template", "2d_diffusion,no_such_template", cwd=tmp_path, env=env)
    assert "no such template" in _one_line_error(res)
    assert res.stdout == "" and not (tmp_path / "experiments").exists()


def test_a_mistyped_run_id_is_answered_with_the_recent_ones(tmp_path: Path) -> None:
    experiments = tmp_path / "experiments"
    for i, run_id in enumerate(("20261201-000000-toy-aaaa", "20261202-000000-toy-bbbb")):
        (experiments / run_id).mkdir(parents=True)
        (experiments / run_id / "settings.json").write_text("{}")
        os.utime(experiments / run_id / "settings.json", (1000 + i, 1000 + i))
    line = _one_line_error(cli("resume", "20261202-000000-toy-bbb", "--experiments", str(experiments), cwd=tmp_path))
    assert "recent: 20261201-000000-toy-aaaa, 20261202-000000-toy-bbbb" in line


def test_status_without_runs(tmp_path: Path) -> None:
    line = _one_line_error(cli("status", "--experiments", str(tmp_path / "none"), cwd=tmp_path))
    assert "no runs" in line


def test_unknown_option_is_a_usage_error() -> None:
    res = cli("run", "--no-such-flag")
    assert res.returncode == 2 and "Traceback" not in res.stderr


@pytest.mark.slow
def test_template_new_passes_template_check(tmp_path: Path) -> None:
    """A scaffolded template is a working template: validated, run in the sandbox, plotted."""
    tpl = scaffold(tmp_path, "my_study")
    res = cli("template", "check", str(tpl))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "my_study: ok" in res.stdout and "test_nll.png" in res.stdout
    again = cli("template", "new", "my_study", "--dest", str(tmp_path))
    assert "already exists" in _one_line_error(again)


@pytest.mark.slow
@pytest.mark.parametrize("old,new,field", [
    ('flag = "--num_components"', 'flag = "--n_components"', "does not list --n_components"),
    ('constant = "INIT"', 'constant = "INITIALISATION"', "no module-level line `INITIALISATION = ...`"),
    ('default = "spread"', 'default = "random"', "differs from the declared default"),
])
def test_template_check_verifies_knobs_reach_the_experiment(tmp_path: Path, old: str, new: str, field: str) -> None:
    tpl = scaffold(tmp_path, "knobs")
    toml = tpl / "template.toml"
    toml.write_text(toml.read_text().replace(old, new))
    line = _one_line_error(cli("template", "check", str(tpl)))
    assert field in line and "knobs." in line
