"""A researcher's own template, written from docs/templates.md alone and kept outside
`templates/`: `tests/templates/vae_shapes` (a VAE on binary images drawn in code).

`template check` must pass it by folder path and must reject the silent mistakes the guide
warns about (a code default that differs from template.toml, an undeclared or a missing
figure, a declared dataset that fails); the offline pipeline, run on it by folder path, must
write captions from the declarations and no claim beyond the Holm-corrected statistics.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from agent.analysis import Analysis
from agent.brains.offline.writer import esc
from agent.errors import TemplateError
from agent.paper import faithfulness
from agent.paper.figures import sentence
from agent.pipeline.workdir import SEARCH_FIGURE
from agent.template.check import check_defaults, dry_default
from agent.template.contract import load_template
from tests.helpers import REPO, cli
from tests.pipeline_helpers import archived

VAE = REPO / "tests" / "templates" / "vae_shapes"


@pytest.fixture
def vae(tmp_path: Path) -> Path:
    """A copy of the template, free to break."""
    return Path(
        shutil.copytree(VAE, tmp_path / "vae_shapes", ignore=shutil.ignore_patterns("run_*", "__pycache__"))
    )


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def _one_line_error(res) -> str:
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    return res.stderr.strip()


# ---------------------------------------------------------------- the contract, without running


def test_the_template_loads_from_its_folder() -> None:
    tpl = load_template(VAE)
    assert tpl.name == "vae_shapes" and not VAE.is_relative_to(REPO / "templates")
    assert [f.file for f in tpl.figures] == ["samples.png", "metrics.png", "rate_distortion.png"]
    assert tpl.metric("kl").direction == "none" and tpl.datasets_for("smoke") == ["shapes", "strokes"]


def test_templates_folder_is_configurable(tmp_path: Path) -> None:
    res = cli("template", "list", env={"AI_SCIENTIST_TEMPLATES": str(VAE.parent)})
    assert res.returncode == 0, res.stderr
    assert "vae_shapes" in res.stdout and "2d_diffusion" not in res.stdout


def test_dry_parse_finds_argparse_and_dataclass_defaults() -> None:
    tpl = load_template(VAE)
    code = (VAE / "experiment.py").read_text()
    # the flags default to `defaults.beta` (not a literal): the dataclass line gives the value
    assert dry_default(code, tpl.knob("latent_dim")) == (True, 8)
    literal = 'p.add_argument("--latent_dim", type=int, default=16)\n'
    assert dry_default(literal, tpl.knob("latent_dim")) == (True, 16)
    assert dry_default("x = 1\n", tpl.knob("latent_dim")) == (False, None)


def test_defaults_come_from_config_json_then_the_code(vae: Path) -> None:
    tpl = load_template(vae)
    run = vae / "run_0"
    run.mkdir()
    config = {"beta": 1.0, "latent_dim": 8, "kl_warmup": 0, "learning_rate": 0.003, "PRIOR": "gaussian"}
    (run / "config.json").write_text(json.dumps(config))
    check_defaults(tpl, vae, "run_0")  # 0.003 == 3e-3
    (run / "config.json").write_text(json.dumps({**config, "latent_dim": 16}))
    with pytest.raises(
        TemplateError,
        match=r"knobs\.latent_dim\.default: declared 8, but run_0/config.json records "
        r"latent_dim = 16: make the two equal",
    ):
        check_defaults(tpl, vae, "run_0")
    del config["latent_dim"]  # not recorded: the dataclass line decides
    (run / "config.json").write_text(json.dumps(config))
    _edit(vae / "experiment.py", "latent_dim: int = 8", "latent_dim: int = 16")
    with pytest.raises(TemplateError, match="experiment.py defaults it to 16"):
        check_defaults(tpl, vae, "run_0")


# ---------------------------------------------------------------- template check, in the sandbox


@pytest.mark.slow
def test_template_check_passes_by_folder_path() -> None:
    res = cli("template", "check", str(VAE))
    assert res.returncode == 0, res.stdout + res.stderr
    out = " ".join(res.stdout.split())
    assert "figures: metrics.png, rate_distortion.png, samples.png" in out
    assert "the 1 other declared dataset(s) ran" in out and "vae_shapes: ok" in out


@pytest.mark.slow
def test_check_rejects_a_code_default_that_differs_from_the_toml(vae: Path) -> None:
    _edit(vae / "experiment.py", "latent_dim: int = 8", "latent_dim: int = 16")
    line = _one_line_error(cli("template", "check", str(vae)))
    assert "template.toml: knobs.latent_dim.default: declared 8" in line and "latent_dim = 16" in line


@pytest.mark.slow
def test_check_rejects_an_undeclared_figure(vae: Path) -> None:
    _edit(
        vae / "plot.py",
        "    plot_rate_distortion(infos, runs, out)\n",
        '    plot_rate_distortion(infos, runs, out)\n    plt.figure()\n    plt.savefig(out / "extra.png")\n',
    )
    line = _one_line_error(cli("template", "check", str(vae)))
    assert "plot.py: figures: wrote extra.png, which template.toml does not declare" in line
    assert '[[figures]] with file = "name.png"' in line


@pytest.mark.slow
def test_check_rejects_a_missing_declared_figure(vae: Path) -> None:
    _edit(vae / "plot.py", "    plot_samples(runs, out)\n", "")
    line = _one_line_error(cli("template", "check", str(vae)))
    assert "plot.py: figures: did not write samples.png, which template.toml declares" in line


@pytest.mark.slow
def test_check_runs_the_datasets_the_smoke_scale_leaves_out(vae: Path) -> None:
    _edit(
        vae / "experiment.py",
        "    return metrics, strip\n",
        '    if dataset == "checkers":  # forgets a metric on the dataset smoke does not run\n'
        '        del metrics["kl"]\n    return metrics, strip\n',
    )
    line = _one_line_error(cli("template", "check", str(vae)))
    assert "check_datasets/final_info.json: checkers.means.kl: missing" in line


# ---------------------------------------------------------------- the pipeline, by folder path


def _captions(tex: str) -> dict[str, str]:
    """PNG file -> caption text of each figure environment."""
    envs = re.findall(r"\\begin\{figure\}.*?\\end\{figure\}", tex, re.DOTALL)
    return {
        re.search(r"\\includegraphics(?:\[[^\]]*\])?\{([^}]+)\}", e).group(1): re.search(
            r"\\caption\{(.*?)\}\n", e, re.DOTALL
        ).group(1)
        for e in envs
    }


@pytest.mark.slow
def test_offline_paper_on_a_template_outside_templates(tmp_path: Path) -> None:
    env = {
        "AI_SCIENTIST_EXPERIMENTS": str(tmp_path / "experiments"),
        "AI_SCIENTIST_ARCHIVE": str(tmp_path / "archive"),
        "AI_SCIENTIST_MODEL": "offline",
    }
    res = cli(
        "run",
        "--template",
        str(VAE),
        "--num-ideas",
        "1",
        "--search-budget",
        "6",
        "--reviewers",
        "1",
        cwd=tmp_path,
        env=env,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    [paper] = archived(tmp_path, env)
    folder = tmp_path / "archive" / paper["id"]
    tpl = load_template(VAE)
    idea = json.loads((folder / "idea.json").read_text())
    assert idea["name"] == "beta_rate_distortion", "the offline brain starts from the template's seed idea"
    tex = (folder / "paper.tex").read_text()
    results = json.loads((folder / "results.json").read_text())
    a = Analysis.model_validate(results["analysis"])

    # Captions come from the declarations: each names what its own figure shows.
    captions = _captions(tex)
    assert set(captions) == {f.file for f in tpl.figures} | {SEARCH_FIGURE}, "the declared figures and the tree"
    captions.pop(SEARCH_FIGURE)
    for fig in tpl.figures:
        assert captions[fig.file].startswith(esc(sentence(fig.shows))), (fig.file, captions[fig.file])
    assert len(set(captions.values())) == 3 and "per setting on every dataset" not in tex  # the old guess
    assert "Metric: recon (nats; lower is better)." in captions["rate_distortion.png"]

    # No claim beyond the Holm-corrected statistics.
    for r in a.runs:
        for by_metric in r.datasets.values():
            assert by_metric["kl"].verdict == "not_judged" and by_metric["train_time"].verdict == "not_judged"
            c = by_metric["recon"]
            assert c.judged == (c.p_adjusted is not None and c.p_adjusted < a.alpha)
    improved = {b.label for b in a.best.values() if b.outcome == "improved"}
    for label in re.findall(r"The best setting here is (.+?)\.(?:\s|$)", tex):
        assert label in {esc(x) for x in improved}, label
    if not improved:
        assert not re.search(r"best setting|significant gain|improvements over the default", tex)
    assert re.search(r"\\texttt\{kl\}&not judged&--&--&--&--", tex), "kl has no direction: never judged"

    # Intro and method describe this run: no dataset it left out, no description pasted.
    body = tex[tex.index("\\section{Introduction}") : tex.index("\\section{Results}")]
    assert "checkers" not in body and "full scale" not in body.lower()
    description = " ".join(tpl.description.split())
    assert esc(description) not in " ".join(tex.split())
    for s in re.split(r"(?<=\.)\s+", description):
        assert " ".join(tex.split()).count(esc(s)) <= 1, s

    report = faithfulness.check(tex, results)
    assert report.ok, report.summary()
