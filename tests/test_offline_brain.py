"""The offline brain end to end on real templates: ideas, novelty, a run plan whose edits
apply to the real experiment.py, plots, every paper section, LaTeX that compiles, reviews.

A tiny synthetic template (stdlib only, milliseconds per run) is built in a tmp folder so
these tests do not depend on the research templates; those that exist are tested too, with
generated results in place of their (slow) experiments.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.analysis import Analysis, analyze
from agent.brains.base import Brain
from agent.brains.offline import writer as offline_writer
from agent.brains.offline.brain import OfflineBrain, judge_novelty
from agent.brains.offline.reviewer import extract
from agent.edits import apply_edits
from agent.literature import LiteratureSearch, LiteratureSettings
from agent.models import (
    ArchivedIdea,
    Edit,
    ExperimentContext,
    Idea,
    IdeationContext,
    LiteratureHit,
    PaperContext,
    PlannedRun,
    Review,
    RunRecord,
)
from agent.template.contract import SECTIONS, Template, list_templates, load_template
from agent.template.knobs import run_settings

EDITABLE = ("experiment.py", "plot.py")  # what a stage lets a brain edit

PARTS = ("title", *SECTIONS)

# ---------------------------------------------------------------- a synthetic template

TOML = '''
title = "Toy regression on synthetic curves"
description = """A small model is fit to synthetic curves. The loss is a closed-form function of the settings plus seed noise, so a run takes milliseconds."""
datasets = ["easy", "hard"]
seeds = [0, 1, 2]

[[metrics]]
name = "eval_loss"
direction = "minimize"
primary = true
description = "held-out squared error"

[[metrics]]
name = "accuracy"
direction = "maximize"
description = "fraction of points within tolerance"

[[figures]]
file = "eval_loss_bar.png"
shows = "the held-out squared error of each setting on each dataset"
metric = "eval_loss"

[[figures]]
file = "train_curves_hard.png"
shows = "the training loss against the step on the hard curves"

[[figures]]
file = "eval_loss.png"
shows = "the held-out squared error per setting"
metric = "eval_loss"

[[figures]]
file = "accuracy_hard.png"
shows = "the accuracy of each setting on the hard curves"
metric = "accuracy"

[scale.smoke]
timeout_s = 60
description = "milliseconds per run"

[scale.full]
timeout_s = 600
gpus = 1

[[knobs]]
name = "learning_rate"
type = "float"
range = [1e-3, 1e-1]
log = true
default = 1e-2
flag = "--learning_rate"
description = "Adam learning rate"

[[knobs]]
name = "depth"
type = "int"
values = [1, 2, 4]
default = 2
flag = "--depth"
description = "Number of hidden layers"

[[knobs]]
name = "activation"
type = "choice"
values = ["relu", "tanh", "gelu"]
default = "relu"
constant = "ACTIVATION"
description = "Nonlinearity of the hidden layers"

[[knobs]]
name = "use_norm"
type = "bool"
values = [true, false]
default = true
constant = "USE_NORM"
description = "Whether to normalise hidden activations"
'''

# The loss depends on learning_rate and activation; depth and use_norm only reseed the noise.
EXPERIMENT = '''"""Toy experiment: python experiment.py --out_dir run_0 --seeds 0,1,2 --datasets easy,hard"""
import argparse
import json
import math
import os
import random

ACTIVATION = "relu"  # relu | tanh | gelu
USE_NORM: bool = True  # normalise hidden activations

OFFSET = {"relu": 0.0, "tanh": 0.3, "gelu": -0.05}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out_dir", required=True)
    p.add_argument("--scale", default="smoke")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--datasets", default="easy,hard")
    p.add_argument("--learning_rate", type=float, default=1e-2)
    p.add_argument("--depth", type=int, default=2)
    a = p.parse_args()
    out = {}
    for ds in a.datasets.split(","):
        per = {"eval_loss": [], "accuracy": []}
        for s in a.seeds.split(","):
            rng = random.Random(f"{ds}-{s}-{a.depth}-{USE_NORM}")
            loss = (1.0 if ds == "easy" else 2.0) + 0.5 * (math.log10(a.learning_rate) + 2) ** 2
            loss += OFFSET[ACTIVATION] + 0.05 * rng.gauss(0, 1)
            per["eval_loss"].append(loss)
            per["accuracy"].append(1 / (1 + loss) + 0.01 * rng.gauss(0, 1))
        means = {k: sum(v) / len(v) for k, v in per.items()}
        se = {k: (sum((x - means[k]) ** 2 for x in v) / (len(v) - 1) / len(v)) ** 0.5 for k, v in per.items()}
        out[ds] = {"means": means, "stderrs": se, "per_seed": per}
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "final_info.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
'''

TEX = r"""\documentclass{article}
\usepackage{graphicx}
\usepackage{booktabs}
\usepackage[numbers]{natbib}
\title{%%TITLE%%}
\author{%%BRAIN%%}
\begin{document}
\maketitle
\begin{abstract}
%%ABSTRACT%%
\end{abstract}
\section{Introduction}
%%INTRODUCTION%%
\section{Related Work}
%%RELATED_WORK%%
\section{Method}
%%METHOD%%
\section{Experimental Setup}
%%EXPERIMENTAL_SETUP%%
\section{Results}
%%RESULTS%%
\section{Conclusion}
%%CONCLUSION%%
\bibliographystyle{plainnat}
\bibliography{references}
\end{document}
"""

BIB = """@article{kingma2014adam,
  title = {Adam: A Method for Stochastic Optimization},
  author = {Kingma, Diederik P. and Ba, Jimmy},
  journal = {arXiv preprint},
  year = {2014}
}

@inproceedings{he2016deep,
  title = {Deep Residual Learning for Image Recognition},
  author = {He, Kaiming and Zhang, Xiangyu and Ren, Shaoqing and Sun, Jian},
  booktitle = {CVPR},
  year = {2016}
}
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Template:
    root = tmp_path_factory.mktemp("templates") / "toy"
    (root / "latex").mkdir(parents=True)
    for rel, text in {"template.toml": TOML, "experiment.py": EXPERIMENT, "plot.py": "print('plots')\n",
                      "seed_ideas.json": "[]", "latex/template.tex": TEX, "latex/references.bib": BIB,
                      "README.md": "A toy template for tests.\n"}.items():
        (root / rel).write_text(text)
    return load_template(root)


# ---------------------------------------------------------------- helpers


def run_experiment(workdir: Path, tpl: Template, name: str, planned: PlannedRun | None) -> dict:
    """Apply a plan's edits to the workdir and really run the toy experiment.py."""
    if planned is not None:
        apply_edits(workdir, planned.edits, EDITABLE)
    args = [x for k, v in (planned.args.items() if planned else []) for x in (k, v)]
    subprocess.run([sys.executable, "experiment.py", "--out_dir", name, *tpl.experiment_args("smoke"), *args],
                   cwd=workdir, check=True, capture_output=True, timeout=60)
    return json.loads((workdir / name / "final_info.json").read_text())


def fake_results(tpl: Template, rng: random.Random, shift: float) -> dict:
    """final_info.json for a template whose experiment is too slow for a unit test."""
    out = {}
    for ds in tpl.datasets_for("smoke"):
        per = {m.name: [1.0 + shift + 0.05 * rng.gauss(0, 1) for _ in tpl.seeds_for("smoke")] for m in tpl.metrics}
        out[ds] = {"means": {k: sum(v) / len(v) for k, v in per.items()},
                   "stderrs": {k: 0.01 for k in per}, "per_seed": per}
    return out


def plan_all(brain: OfflineBrain, tpl: Template, idea: Idea, workdir: Path, max_runs: int,
             results) -> tuple[dict, list[RunRecord]]:
    """Drive next_run to completion, applying every edit to a real copy of experiment.py."""
    baseline = results("run_0", None)
    history: list[RunRecord] = []
    while True:
        ctx = ExperimentContext(idea=idea, template=tpl, scale="smoke", baseline=baseline, history=history,
                                max_runs=max_runs, code=(workdir / "experiment.py").read_text())
        planned = brain.next_run(ctx)
        if planned is None:
            return baseline, history
        assert isinstance(planned, PlannedRun)
        name = f"run_{len(history) + 1}"
        history.append(RunRecord(name=name, planned=planned, ok=True, results=results(name, planned)))
        assert len(history) <= max_runs


def numbers_checked(tex: str, dump: dict) -> list[str]:
    """Numbers printed in `tex` that match no value in the analysis dump up to the rounding
    shown (integers are counts and always allowed). Returns the unmatched ones."""
    values: list[float] = []

    def walk(x) -> None:
        if isinstance(x, bool):
            return
        if isinstance(x, int | float):
            values.append(float(x))
        elif isinstance(x, str):
            values.extend(float(m) for m in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e-?\d+)?(?!\w)", x))
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(dump)
    text = re.sub(r"\\(?:includegraphics|label|ref|citep?|begin|end)(?:\[[^\]]*\])?\{[^}]*\}(?:\{[^}]*\})?", " ", tex)
    bad = []
    for token in re.findall(r"(?<![\w.\\])-?\d+(?:\.\d+)?(?:e-?\d+)?(?![\w])", text):
        if re.fullmatch(r"-?\d+", token):
            continue
        mantissa, _, exp = token.partition("e")
        decimals = len(mantissa.partition(".")[2])
        tol = 0.5 * 10 ** (-decimals) * (10 ** int(exp) if exp else 1) * (1 + 1e-9)
        if not any(abs(v - float(token)) <= tol for v in values):
            bad.append(token)
    return bad


def paper(tpl: Template, sections: dict[str, str]) -> str:
    tex = (tpl.path / "latex" / "template.tex").read_text().replace("%%BRAIN%%", "offline brain (no LLM)")
    for part, text in sections.items():
        tex = tex.replace(f"%%{part.upper()}%%", text)
    return tex


def toy_study(toy: Template, tmp_path: Path, knobs: list[str], max_runs: int = 5):
    """A real small study on the toy template: plan, edit, run, analyse."""
    brain = OfflineBrain(seed=0)
    workdir = tmp_path / "work"
    shutil.copytree(toy.path, workdir)
    idea = Idea(name="_".join(knobs), title=f"Does {' and '.join(knobs)} matter for toy regression?",
                hypothesis="h", experiment="e", interestingness=5, feasibility=5, novelty=5, knobs=knobs)
    baseline, runs = plan_all(brain, toy, idea, workdir, max_runs,
                              lambda name, planned: run_experiment(workdir, toy, name, planned))
    analysis = analyze(toy, baseline, runs, scale="smoke")
    ctx = PaperContext(idea=idea, template=toy, scale="smoke", baseline=baseline, runs=runs,
                       analysis=analysis.model_dump(), bib_keys=["kingma2014adam", "he2016deep"],
                       author_line="offline brain (no LLM)")
    return brain, ctx, workdir


# ---------------------------------------------------------------- ideation and novelty


def test_brain_satisfies_the_protocol():
    brain = OfflineBrain(seed=3)
    assert isinstance(brain, Brain)
    assert brain.info.kind == "offline" and not brain.info.concurrent and not hasattr(brain, "ledger")


def test_ideas_are_valid_unique_and_deterministic(toy):
    ctx = IdeationContext(template=toy, archive=[], seed_ideas=[], num_ideas=4)
    ideas = OfflineBrain(seed=0).ideas(ctx)
    assert len(ideas) == 4
    assert len({i.name for i in ideas}) == 4 and len({frozenset(i.knobs) for i in ideas}) == 4
    for idea in ideas:
        assert re.fullmatch(r"[a-z0-9_]{1,48}", idea.name)
        assert 1 <= len(idea.knobs) <= 2 and all(k in {kn.name for kn in toy.knobs} for k in idea.knobs)
        assert idea.knobs[0] in idea.hypothesis or idea.knobs[0].replace("_", " ") in idea.title
    assert [i.model_dump() for i in OfflineBrain(seed=0).ideas(ctx)] == [i.model_dump() for i in ideas]
    assert len({i.title.split()[0] for i in ideas}) > 1  # phrasing varies between ideas


def test_second_night_proposes_new_ideas(toy):
    brain = OfflineBrain(seed=0)
    first = brain.ideas(IdeationContext(template=toy, archive=[], seed_ideas=[], num_ideas=2))
    archive = [ArchivedIdea(template=toy.name, name=i.name, title=i.title, hypothesis=i.hypothesis,
                            knobs=i.knobs, score=4.0) for i in first]
    second = brain.ideas(IdeationContext(template=toy, archive=archive, seed_ideas=[], num_ideas=2))
    assert {frozenset(i.knobs) for i in second}.isdisjoint({frozenset(i.knobs) for i in first})
    assert {i.name for i in second}.isdisjoint({i.name for i in first})
    # once every single knob is tested, a high-scoring knob pulls its interactions forward
    singles = [ArchivedIdea(template=toy.name, name=f"{k.name}_sweep", title="t", hypothesis="h", knobs=[k.name],
                            score=8.0 if k.name == "activation" else 3.0) for k in toy.knobs]
    third = brain.ideas(IdeationContext(template=toy, archive=singles, seed_ideas=[], num_ideas=2))
    assert all(len(i.knobs) == 2 and "activation" in i.knobs for i in third)


def test_novelty_uses_the_archive_knob_sets(toy):
    brain = OfflineBrain()
    idea = brain.ideas(IdeationContext(template=toy, archive=[], seed_ideas=[], num_ideas=1))[0]
    same = LiteratureHit(title="An earlier sweep", abstract="We varied things.", knobs=idea.knobs,
                         source="archive", score=0.9)
    other = LiteratureHit(title="Another study", abstract="", knobs=["depth", "use_norm"], source="archive",
                          score=0.95)
    no = judge_novelty(idea, [other, same])
    assert not no.novel and "An earlier sweep" in no.reason and no.queries
    yes = judge_novelty(idea, [other])
    assert yes.novel and "Another study" in yes.reason


# ---------------------------------------------------------------- runs


def test_run_plan_is_real_edits_and_flags(toy, tmp_path):
    brain, ctx, workdir = toy_study(toy, tmp_path, ["activation", "learning_rate"], max_runs=5)
    assert 3 <= len(ctx.runs) <= 5
    plans = [r.planned for r in ctx.runs]
    assert all(len(p.edits) == 1 and p.edits[0].path == "experiment.py" for p in plans)
    # a 2 x 3 grid around the defaults: each knob alone, then both together
    assert [run_settings(toy, p) for p in plans] == [
        {"learning_rate": 0.01, "activation": "gelu"},
        {"learning_rate": 0.001, "activation": "relu"}, {"learning_rate": 0.1, "activation": "relu"},
        {"learning_rate": 0.001, "activation": "gelu"}, {"learning_rate": 0.1, "activation": "gelu"},
    ]
    assert [p.args for p in plans][:2] == [{"--learning_rate": "0.01"}, {"--learning_rate": "0.001"}]
    # the last plan's constant is what the workdir now holds
    code = (workdir / "experiment.py").read_text()
    assert ctx.runs[-1].planned.edits[0].replace in code
    analysis = Analysis.model_validate(ctx.analysis)
    assert [k.name for k in analysis.knobs] == ["learning_rate", "activation"]


def test_single_knob_sweep_covers_candidates_then_stops(toy, tmp_path):
    brain, ctx, _ = toy_study(toy, tmp_path, ["depth"])
    assert [r.planned.args for r in ctx.runs] == [{"--depth": "1"}, {"--depth": "4"}]
    done = ExperimentContext(idea=ctx.idea, template=toy, scale="smoke", baseline=ctx.baseline, history=ctx.runs,
                             max_runs=5, code=EXPERIMENT)
    assert brain.next_run(done) is None


def test_fix_run_rederives_a_refused_edit(toy, tmp_path):
    brain = OfflineBrain()
    idea = Idea(name="act", title="t", hypothesis="h", experiment="e", interestingness=5, feasibility=5,
                novelty=5, knobs=["activation"])
    stale = PlannedRun(description="set gelu", edits=[Edit(path="experiment.py", search='ACTIVATION = "tanh"',
                                                           replace='ACTIVATION = "gelu"')])
    failed = RunRecord(name="run_2", planned=stale, ok=False, error="EditRefused: SEARCH text not found")
    ctx = ExperimentContext(idea=idea, template=toy, scale="smoke", baseline={}, history=[], max_runs=5,
                            code=EXPERIMENT)
    fixed = brain.fix_run(ctx, failed, "experiment.py: SEARCH text not found; copy it exactly")
    workdir = tmp_path / "w"
    shutil.copytree(toy.path, workdir)
    apply_edits(workdir, fixed.edits, EDITABLE)
    assert 'ACTIVATION = "gelu"  # relu | tanh | gelu' in (workdir / "experiment.py").read_text()
    crashed = RunRecord(name="run_2", planned=fixed, ok=False, error="Traceback ... ZeroDivisionError")
    assert brain.fix_run(ctx, crashed, "ZeroDivisionError") == fixed  # no fake fix


# ---------------------------------------------------------------- writing


def test_sections_compile_and_every_number_is_in_the_analysis(toy, tmp_path):
    brain, ctx, workdir = toy_study(toy, tmp_path, ["learning_rate"])
    plan = brain.plot_plan(ctx)
    assert plan.labels["run_0"].startswith("Baseline") and set(plan.labels) == {"run_0", "run_1", "run_2"}
    assert plan.labels["run_1"] == "learning_rate=0.001"
    files = ["eval_loss_bar.png", "train_curves_hard.png"]
    ctx.figures = brain.describe_figures(ctx, files)
    assert [n.file for n in ctx.figures] == files and all(n.caption and n.description for n in ctx.figures)
    sections = {part: brain.write_section(ctx, part, {}) for part in PARTS}
    for part, text in sections.items():
        assert isinstance(text, str) and text.strip(), part
        assert numbers_checked(text, ctx.analysis) == [], part
        assert not re.search(r"\\cite\w*\{(?![^}]*(?:kingma2014adam|he2016deep))", text)
    assert "offline brain" in sections["experimental_setup"]
    assert "\\includegraphics" in sections["results"] and "\\ref{fig:" in sections["results"]
    assert "\\begin{tabular}" in sections["results"] and "\\toprule" in sections["results"]
    # the paper compiles with the real pdflatex + bibtex
    for f in files:
        _png(workdir / f)
    (workdir / "paper.tex").write_text(paper(toy, sections))
    shutil.copy(toy.path / "latex" / "references.bib", workdir)
    proc = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
                          cwd=workdir, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, (workdir / "paper.log").read_text()[-3000:]
    log = (workdir / "paper.log").read_text()
    assert "undefined" not in log.lower()


def test_a_time_measured_beside_other_runs_is_reported_as_such(toy, tmp_path):
    """A wall-clock metric whose runs shared the machine: the paper says why it is not judged,
    in the method, the secondary table and the findings, and never calls it better or worse."""
    timed = toy.model_copy(update={"metrics": [
        m.model_copy(update={"wall_clock": m.name == "accuracy"}) for m in toy.metrics]})
    brain, ctx, _ = toy_study(timed, tmp_path, ["learning_rate"])
    ctx.runs = [r.model_copy(update={"shared": True}) for r in ctx.runs]
    ctx.analysis = analyze(timed, ctx.baseline, ctx.runs, scale="smoke").model_dump()
    tex = paper(timed, {p: brain.write_section(ctx, p, {}) for p in PARTS})
    assert ("\\texttt{accuracy} is a wall-clock time measured while other runs shared the machine, so it is "
            "reported and never judged") in tex
    assert "\\texttt{accuracy}&not judged&" in tex
    assert "or a wall-clock time measured while other runs shared the machine, is reported, not judged" in tex
    by_metric = [c.verdict for _, _, c in Analysis.model_validate(ctx.analysis).comparisons("accuracy")]
    assert by_metric and set(by_metric) == {"not_judged"}


def test_paper_passes_the_pipeline_faithfulness_check(toy, tmp_path):
    """The pipeline's own checker (agent.faithfulness) accepts every number the writer prints,
    given only the analysis, for an effect, a null and a two-knob study."""
    from agent.paper import faithfulness

    brain = OfflineBrain()
    for knobs in (["learning_rate"], ["use_norm"], ["activation", "depth"]):
        _, ctx, _ = toy_study(toy, tmp_path / "_".join(knobs), knobs)
        ctx.figures = brain.describe_figures(ctx, ["eval_loss.png", "accuracy_hard.png"])
        tex = paper(toy, {p: brain.write_section(ctx, p, {}) for p in PARTS})
        report = faithfulness.check(tex, {"analysis": ctx.analysis})
        assert report.ok, report.summary()
        assert report.checked > 30


def _png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.figure(figsize=(3, 2))
    plt.plot([0, 1], [1, 0])
    plt.savefig(path)
    plt.close()


def test_null_and_effect_are_worded_differently(toy, tmp_path):
    _, effect_ctx, _ = toy_study(toy, tmp_path / "effect", ["learning_rate"])
    brain, null_ctx, _ = toy_study(toy, tmp_path / "null", ["use_norm"])
    effect, null = Analysis.model_validate(effect_ctx.analysis), Analysis.model_validate(null_ctx.analysis)
    assert effect.verdict == "effect" and null.verdict == "null"
    e_abs = brain.write_section(effect_ctx, "abstract", {})
    n_abs = brain.write_section(null_ctx, "abstract", {})
    e_con = brain.write_section(effect_ctx, "conclusion", {})
    n_con = brain.write_section(null_ctx, "conclusion", {})
    assert "degraded" not in n_abs and "improved" not in n_abs
    assert re.search(r"no setting|none of the settings|no tested setting", n_abs, re.IGNORECASE)
    assert re.search(r"no effect|does not measurably", n_con) and not re.search(r"no effect|does not measurably", e_con)
    assert re.search(r"Null|Noise|No Measurable", brain.write_section(null_ctx, "title", {}))
    # the toy's default learning rate is optimal: every change hurts, and the text says so
    assert "degraded" in e_abs and "improved" not in e_abs and "default" in e_con
    for ctx in (effect_ctx, null_ctx):
        for part in PARTS:
            assert numbers_checked(brain.write_section(ctx, part, {}), ctx.analysis) == []


def test_failed_runs_are_reported_not_hidden(toy, tmp_path):
    brain, ctx, _ = toy_study(toy, tmp_path, ["learning_rate"])
    failed = ctx.runs[1].model_copy(update={"ok": False, "results": None, "error": "timed out after 60 s"})
    ctx.runs = [ctx.runs[0], failed]
    ctx.analysis = analyze(toy, ctx.baseline, ctx.runs, scale="smoke").model_dump()
    results = brain.write_section(ctx, "results", {})
    assert "timed out" in results and "1 of 2 runs" in results
    assert numbers_checked(results, ctx.analysis) == []


def test_no_finished_run_is_inconclusive_not_null(toy, tmp_path):
    brain, ctx, _ = toy_study(toy, tmp_path, ["learning_rate"])
    ctx.runs = [r.model_copy(update={"ok": False, "results": None, "error": "Traceback: crash"}) for r in ctx.runs]
    ctx.analysis = analyze(toy, ctx.baseline, ctx.runs, scale="smoke").model_dump()
    assert ctx.analysis["verdict"] == "inconclusive"
    conclusion = brain.write_section(ctx, "conclusion", {})
    assert "cannot say" in conclusion and "no effect" not in conclusion
    assert "Inconclusive" in brain.write_section(ctx, "title", {})


def test_an_idea_without_knobs_uses_the_knobs_its_text_names(toy):
    idea = Idea(name="llm_idea", title="Is a smaller learning rate better?", hypothesis="The learning rate matters.",
                experiment="Try a few.", interestingness=5, feasibility=5, novelty=5)
    ctx = ExperimentContext(idea=idea, template=toy, scale="smoke", baseline={}, max_runs=5, code=EXPERIMENT)
    assert OfflineBrain().next_run(ctx).args == {"--learning_rate": "0.001"}
    vague = idea.model_copy(update={"title": "Something else", "hypothesis": "h", "experiment": "e"})
    assert OfflineBrain().next_run(ctx.model_copy(update={"idea": vague})) is None


def test_citations_only_from_hits_with_bibtex(toy, tmp_path):
    brain, ctx, _ = toy_study(toy, tmp_path, ["depth"])
    ctx.literature = [
        LiteratureHit(title="With bib", source="semantic_scholar", bibtex="@article{doe2020x,\n title={X}\n}"),
        LiteratureHit(title="No bib", source="openalex"),
        LiteratureHit(title="Known", source="bib", bibtex="@article{kingma2014adam, title={Adam}}"),
    ]
    cites = brain.citations(ctx, {}, LiteratureSearch(ctx.idea, toy, [], LiteratureSettings()), 3).citations
    assert [c.key for c in cites] == ["doe2020x"]


def test_fix_numbers_drops_untraceable_sentences(toy, tmp_path):
    brain, ctx, _ = toy_study(toy, tmp_path, ["learning_rate"])
    results = brain.write_section(ctx, "results", {})
    token = re.search(r"\$p\$ = ([\d.e-]+\d)", results).group(1)
    fixed = brain.fix_numbers(ctx, "results", results + " We also saw 12.345 here.", [token])
    assert not re.search(rf"(?<![\w.]){re.escape(token)}(?!\w)", fixed)
    assert "12.345" not in fixed and "\\begin{tabular}" in fixed


def test_fix_latex_repairs_real_compile_errors(tmp_path):
    brain = OfflineBrain()
    tex = "\n".join([
        r"\documentclass{article}", r"\usepackage{graphicx}", r"\begin{document}",
        r"The knob learning_rate matters.", r"See Figure~\ref{fig:missing} and \cite{nokey,alsono}.",
        r"\includegraphics{nothere.png}", r"A & B.", "x \u2264 y", r"\end{document}", ""])
    (tmp_path / "paper.tex").write_text(tex)
    for _ in range(4):  # the repair loop the pipeline runs
        proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "paper.tex"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        log = (tmp_path / "paper.log").read_text(errors="replace")
        edits = brain.fix_latex((tmp_path / "paper.tex").read_text(), log)
        if not edits:
            break
        apply_edits(tmp_path, edits, {"paper.tex"})
    assert proc.returncode == 0 and "! " not in log
    fixed = (tmp_path / "paper.tex").read_text()
    assert r"learning\_rate" in fixed and r"A \& B" in fixed
    assert "nothere" not in fixed and "fig:missing" not in fixed and "nokey" not in fixed
    assert "x \\ensuremath{\\leq} y" in fixed  # pylatexenc's spelling of ≤
    assert brain.fix_latex(fixed, "no errors here") == []


def _bare_article_fails(tmp_path: Path, chars: list[str]) -> list[str]:
    """The characters whose `esc` output pdflatex cannot set in a bare article (bisected)."""
    body = "\n\n".join(f"{ord(c):04X}: {offline_writer.esc(c)}" for c in chars)
    (tmp_path / "chars.tex").write_text(f"\\documentclass{{article}}\n\\begin{{document}}\n{body}\n\\end{{document}}\n")
    proc = subprocess.run(["pdflatex", "-interaction=batchmode", "-halt-on-error", "-no-shell-escape", "chars.tex"],
                          cwd=tmp_path, capture_output=True, timeout=120)
    if proc.returncode == 0 and "Missing character" not in (tmp_path / "chars.log").read_text(errors="replace"):
        return []
    if len(chars) == 1:
        return chars
    half = len(chars) // 2
    return _bare_article_fails(tmp_path, chars[:half]) + _bare_article_fails(tmp_path, chars[half:])


def test_escaped_unicode_compiles_in_a_bare_article(tmp_path):
    """Every character esc spells through pylatexenc (pdflatex_chars.txt) sets in the weakest
    preamble; the ones whose LaTeX needs a package become `?`."""
    safe = sorted(offline_writer._PDFLATEX_CHARS)
    assert len(safe) > 500 and all(offline_writer.esc(c) != c for c in safe)
    assert _bare_article_fails(tmp_path, safe) == []
    assert offline_writer.esc("Ж ℝ ⅓ 😀") == "? ? ? ?"  # T2A, amssymb, textcomp fractions, no glyph
    assert offline_writer.esc("Schrödinger’s 5% α–β ≤ x_1") == (
        "Schr\\\"odinger\\textquoteright{}s 5\\% \\ensuremath{\\alpha}\\textendash{}\\ensuremath{\\beta} "
        "\\ensuremath{\\leq} x\\_1"
    )


# ---------------------------------------------------------------- review


def test_review_rich_paper_beats_bare_paper(toy, tmp_path):
    brain, ctx, _ = toy_study(toy, tmp_path, ["learning_rate"])
    ctx.figures = brain.describe_figures(ctx, ["eval_loss.png"])
    rich = paper(toy, {p: brain.write_section(ctx, p, {}) for p in PARTS})
    bare = "A Method\n\nWe propose a method. It outperforms prior work by a wide margin on our data."
    r_rich, r_bare = brain.review(rich), brain.review(bare)
    assert isinstance(r_rich, Review) and isinstance(r_bare, Review)
    assert r_rich.overall > r_bare.overall and r_rich.soundness > r_bare.soundness
    assert any("seed" in w.lower() for w in r_bare.weaknesses)
    assert any("outperforms prior work" in w for w in r_bare.weaknesses)
    assert not any("seed" in w.lower() and "No mention" in w for w in r_rich.weaknesses)
    assert r_bare.decision == "Reject"
    assert (r_rich.decision == "Accept") == (r_rich.overall >= 6)
    assert extract(rich).figures == 1 and extract(rich).tables == 2


REVIEW_BENCH = Path(__file__).resolve().parents[2] / "shared" / "review_bench" / "iclr2022" / "papers"


@pytest.mark.skipif(not REVIEW_BENCH.is_dir(), reason="review-bench data not present")
def test_review_reads_human_papers():
    brain = OfflineBrain()
    for path in sorted(REVIEW_BENCH.iterdir())[:3]:
        r = brain.review(path.read_text())
        f = extract(path.read_text())
        assert isinstance(r, Review) and f.words > 1000 and f.references > 5 and "introduction" in f.sections
        assert f.title.lower()[:10] in r.summary.lower()


def test_meta_review_reflects_on_disagreement():
    brain = OfflineBrain()
    base = brain.review("Title line here\n\nAbstract\n\nWe study seeds. " * 5)
    high = base.model_copy(update={"overall": 7, "decision": "Accept", "strengths": ["A"], "soundness": 4})
    low = base.model_copy(update={"overall": 3, "decision": "Reject", "strengths": ["A", "B"], "soundness": 2})
    meta = brain.meta_review([high, high, low, low, low])
    assert meta.overall == 5 and meta.decision == "Reject" and meta.soundness == 3
    assert meta.strengths[0] == "A"
    very_low = low.model_copy(update={"overall": 1})
    split = brain.meta_review([high, high, very_low])  # most vote Accept, the mean overall is 5
    assert split.overall == 5 and split.decision == "Reject" and "Reflection" in split.summary
    with pytest.raises(ValueError):
        brain.meta_review([])


def test_revise_answers_actionable_weaknesses(toy, tmp_path):
    brain, ctx, _ = toy_study(toy, tmp_path, ["learning_rate"])
    sections = {p: brain.write_section(ctx, p, {}) for p in SECTIONS}
    sections["conclusion"] = "We are done."
    review = brain.review(paper(toy, sections)).model_copy(update={"weaknesses": [
        "Limitations are not discussed.", "No confidence intervals support the comparisons.",
        "Few references; related work is thin."]})
    ctx.bib_keys = ["kingma2014adam", "he2016deep"]
    sections["related_work"] = r"Prior work exists~\citep{kingma2014adam}."
    revised = brain.revise(ctx, sections, review)
    assert "Limitations" in revised["conclusion"]
    assert revised["results"].startswith("All intervals are")
    assert "he2016deep" in revised["related_work"]
    for text in revised.values():
        assert numbers_checked(text, ctx.analysis) == []


# ---------------------------------------------------------------- the research templates


@pytest.mark.parametrize("name", list_templates())
def test_research_templates(name, tmp_path):
    """Every shipped template: ideas, novelty, a plan whose edits apply to its experiment.py,
    plots, all sections and a review, all valid (with generated numbers for the results)."""
    tpl = load_template(name)
    brain = OfflineBrain(seed=1)
    ideas = brain.ideas(IdeationContext(template=tpl, archive=[], seed_ideas=[], num_ideas=3))
    assert len(ideas) == 3
    rng = random.Random(0)
    for idea in ideas:
        assert judge_novelty(idea, []).novel
        workdir = tmp_path / idea.name
        shutil.copytree(tpl.path, workdir, ignore=shutil.ignore_patterns("run_*", "__pycache__"))

        def results(name: str, planned: PlannedRun | None, workdir: Path = workdir) -> dict:
            if planned is not None:
                apply_edits(workdir, planned.edits, EDITABLE)  # raises if an edit does not apply
            return fake_results(tpl, rng, 0.0 if planned is None else 0.3 * rng.random())

        baseline, runs = plan_all(brain, tpl, idea, workdir, 5, results)
        assert runs, idea.name
        for r in runs:
            for flag in r.planned.args:
                assert flag in {k.flag for k in tpl.knobs}
        ctx = PaperContext(idea=idea, template=tpl, scale="smoke", baseline=baseline, runs=runs,
                           bib_keys=[], analysis=analyze(tpl, baseline, runs, scale="smoke").model_dump())
        assert brain.plot_plan(ctx).labels["run_0"].startswith("Baseline")
        ctx.figures = brain.describe_figures(ctx, [f.file for f in tpl.figures])
        sections = {p: brain.write_section(ctx, p, {}) for p in PARTS}
        for part, text in sections.items():
            assert numbers_checked(text, ctx.analysis) == [], (name, part)
        assert isinstance(brain.review(paper(tpl, sections)), Review)


# ---------------------------------------------------------------- issue 14: seeds, figures, the run's own text


def test_seed_ideas_come_first_until_the_archive_tested_them(toy):
    seed = Idea(name="author_idea", title="Does the activation matter here?", hypothesis="h", experiment="e",
                interestingness=5, feasibility=5, novelty=5, knobs=["activation", "no_such_knob"])
    ctx = IdeationContext(template=toy, archive=[], seed_ideas=[seed], num_ideas=2)
    first, second = OfflineBrain(seed=0).ideas(ctx)
    assert first.name == "author_idea" and first.title == seed.title and first.knobs == ["activation"]
    assert second.knobs != ["activation"]
    tested = [ArchivedIdea(template=toy.name, name="author_idea", title=seed.title, hypothesis="h",
                           knobs=["activation"], score=5.0)]
    later = OfflineBrain(seed=0).ideas(ctx.model_copy(update={"archive": tested}))
    assert all(i.knobs != ["activation"] and i.name != "author_idea" for i in later)


def test_captions_come_from_the_declarations_never_from_file_names(toy, tmp_path):
    brain, ctx, _ = toy_study(toy, tmp_path, ["learning_rate"])
    notes = brain.describe_figures(ctx, ["accuracy_hard.png", "samples_per_setting.png", "eval_loss_bar.png"])
    # undeclared: left out; declared: in the order template.toml lists them
    assert [n.file for n in notes] == ["eval_loss_bar.png", "accuracy_hard.png"]
    loss, acc = notes
    assert acc.caption.startswith("The accuracy of each setting on the hard curves.")
    assert "Metric: accuracy (higher is better)." in acc.caption and "The baseline and 2 tested settings." in acc.caption
    assert loss.caption.startswith("The held-out squared error of each setting on each dataset.")
    ctx.figures = notes
    results = brain.write_section(ctx, "results", {})
    assert results.count("Figure~\\ref{fig:") == 2 and "Figure~\\ref{fig:accuracy-hard}" in results
    assert "comparisons in eval\\_loss are significantly better" in results  # the metric's corrected verdicts


def test_intro_and_method_describe_this_run_not_the_whole_description(tmp_path):
    """2d_diffusion declares five datasets and describes both scales; its smoke paper runs two."""
    tpl = load_template("2d_diffusion")
    rng = random.Random(0)
    baseline = fake_results(tpl, rng, 0.0)
    runs = [RunRecord(name="run_1", planned=PlannedRun(description="", args={"--learning_rate": "0.001"}), ok=True,
                      results=fake_results(tpl, rng, 0.2))]
    idea = Idea(name="lr", title="t", hypothesis="h", experiment="e", interestingness=5, feasibility=5, novelty=5,
                knobs=["learning_rate"])
    ctx = PaperContext(idea=idea, template=tpl, scale="smoke", baseline=baseline, runs=runs,
                       analysis=analyze(tpl, baseline, runs, scale="smoke").model_dump())
    brain = OfflineBrain()
    text = {p: brain.write_section(ctx, p, {}) for p in ("introduction", "method", "experimental_setup")}
    joined = " ".join(" ".join(t.split()) for t in text.values())
    assert "a thin ring (circle) and two interleaved half circles (moons)" in text["introduction"]
    for left_out in ("(line)", "(spiral)", "(gaussians)"):
        assert left_out not in joined
    assert "At smoke scale the model is smaller" in text["experimental_setup"]
    assert "The denoiser is a residual MLP" in text["method"] and "The denoiser" not in text["introduction"]
    description = " ".join(tpl.description.split())
    assert description not in joined and "maximum mean discrepancy" not in joined  # metric sentences: setup lists them
    for sentence in re.split(r"(?<=\.)\s+", description):
        assert joined.count(sentence) <= 1, sentence


def test_null_study_names_no_best_setting(toy, tmp_path):
    brain, ctx, _ = toy_study(toy, tmp_path, ["use_norm"])
    assert Analysis.model_validate(ctx.analysis).verdict == "null"
    text = " ".join(brain.write_section(ctx, p, {}) for p in ("abstract", "results", "conclusion"))
    assert not re.search(r"best setting|largest significant|(?<!no setting )improved|improvements over", text)
    assert "could not be told apart" in text
