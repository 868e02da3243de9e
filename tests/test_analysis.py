"""agent.analysis: known samples give known statistics, edge cases give None (never NaN),
and verdicts follow each metric's direction."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from agent.analysis import analyze, compare, headline, holm, summarize
from agent.models import Edit, PlannedRun, RunRecord
from agent.numbers import fmt, fmt_value, numbers_in
from agent.template.contract import Metric, Template
from agent.template.knobs import constant_value, run_settings

# ---------------------------------------------------------------- fmt: the one number format


@pytest.mark.parametrize(("x", "expected"), [
    (1.0, "1.00"), (12.3456, "12.3"), (0.012345, "0.0123"), (-4.5678, "-4.57"), (999.96, "1000"),
    (0.000123456, "1.23e-4"), (-0.0004, "-4.00e-4"), (123456.7, "1.23e5"), (3, "3"), (0, "0"),
    (0.0, "0"), (None, "n/a"), (float("nan"), "n/a"), (float("inf"), "n/a"),
])
def test_fmt_three_significant_digits(x, expected):
    assert fmt(x) == expected


def test_fmt_trim_and_knob_values():
    assert fmt(0.05, trim=True) == "0.05"
    assert fmt(1e-4, trim=True) == "1e-4"
    assert fmt_value(3e-4) == "3e-4"
    assert fmt_value(True) == "true"
    assert fmt_value("cosine") == "cosine"
    assert fmt_value(256) == "256"


def test_numbers_in_ignores_digits_glued_to_words():
    assert numbers_in("S5 and run_1 on 2-D points, 0.5 or -3e-4") == [2.0, 0.5, -3e-4]


# ---------------------------------------------------------------- summaries and tests


def test_summary_of_known_samples():
    s = summarize([1.0, 2.0, 3.0])
    assert s.n == 3 and s.mean == 2.0 and s.std == pytest.approx(1.0)
    assert s.stderr == pytest.approx(1 / math.sqrt(3))
    half = 4.302652729749464 / math.sqrt(3)  # t(0.975, df=2) from tables
    assert (s.ci_low, s.ci_high) == (pytest.approx(2 - half), pytest.approx(2 + half))


def test_welch_test_matches_hand_computation():
    # base: mean 19/6, variance 19/12. Welch: t = (2 - 19/6) / sqrt(1/3 + 19/36)
    c = compare([1.0, 2.0, 3.0], [2.0, 3.0, 4.5], "minimize", "loss")
    assert c.delta == pytest.approx(-7 / 6)
    assert c.delta_pct == pytest.approx(100 * (-7 / 6) / (19 / 6))
    assert c.t == pytest.approx(-1.257237, abs=1e-5)
    assert c.df == pytest.approx(3.805941, abs=1e-5)
    assert c.p_value == pytest.approx(0.2803, abs=1e-4)
    pooled = math.sqrt((2 * 1.0 + 2 * 19 / 12) / 4)
    assert c.cohens_d == pytest.approx((-7 / 6) / pooled)
    assert c.hedges_g == pytest.approx((-7 / 6) / pooled * (1 - 3 / 15))
    assert c.verdict == "no_significant_difference"


def test_verdict_follows_metric_direction():
    low, high = [1.0, 1.1, 0.9, 1.05], [2.0, 2.1, 1.9, 2.05]
    assert compare(low, high, "minimize").verdict == "better"
    assert compare(low, high, "maximize").verdict == "worse"
    assert compare(high, low, "maximize").verdict == "better"
    assert compare(low, high, "minimize").p_value < 1e-4


def test_zero_variance_and_single_seed_are_not_nan():
    exact = compare([0.5, 0.5, 0.5], [0.7, 0.7, 0.7], "minimize")
    assert exact.p_value is None and exact.t is None and exact.hedges_g is None
    # issue 14: a zero-variance difference has no test, so it is reported and not counted
    assert exact.verdict == "untestable" and "zero variance" in exact.note
    same = compare([0.5, 0.5], [0.5, 0.5], "minimize")
    assert same.verdict == "no_significant_difference" and same.delta == 0
    one = compare([0.4], [0.5, 0.6], "minimize")
    assert one.run.stderr is None and one.run.ci_low is None and one.p_value is None
    assert one.verdict == "no_significant_difference"
    zero_base = compare([1.0, 1.2], [0.0, 0.0], "maximize")
    assert zero_base.delta_pct is None and zero_base.p_value is not None
    for c in (exact, same, one, zero_base):
        json.dumps(c.model_dump(), allow_nan=False)


# ---------------------------------------------------------------- a whole idea


def _template(tmp_path: Path) -> Template:
    return Template(
        name="toy", path=tmp_path, title="Toy task", description="A toy task with 2 datasets.",
        datasets=["a", "b"], seeds=[0, 1, 2],
        metrics=[{"name": "loss", "direction": "minimize", "primary": True},
                 {"name": "acc", "direction": "maximize"}],
        scale={"smoke": {"timeout_s": 30}, "full": {"timeout_s": 600}},
        knobs=[{"name": "lr", "type": "float", "range": [1e-3, 1e-1], "log": True, "default": 1e-2, "flag": "--lr"},
               {"name": "act", "type": "choice", "values": ["relu", "tanh"], "default": "relu", "constant": "ACT"}],
        figures=[{"file": "loss.png", "shows": "the loss of each setting", "metric": "loss"}],
    )


def _info(loss: dict[str, list[float]], acc: float = 0.5) -> dict:
    out = {}
    for ds, values in loss.items():
        per = {"loss": values, "acc": [acc + 0.01 * i for i in range(len(values))]}
        out[ds] = {"means": {k: sum(v) / len(v) for k, v in per.items()},
                   "stderrs": {k: 0.0 for k in per}, "per_seed": per}
    return out


BASE = {"a": [1.00, 1.02, 0.98], "b": [2.00, 2.03, 1.97]}


def _run(name: str, planned: PlannedRun, loss: dict[str, list[float]] | None) -> RunRecord:
    return RunRecord(name=name, planned=planned, ok=loss is not None,
                     results=_info(loss) if loss else None, error=None if loss else "Traceback: boom")


def test_settings_are_read_back_from_flags_and_edits():
    tpl = _template(Path("."))
    planned = PlannedRun(description="x", args={"--lr": "0.001"},
                         edits=[Edit(path="experiment.py", search='ACT = "relu"  # relu | tanh',
                                     replace='ACT = "tanh"  # relu | tanh')])
    assert run_settings(tpl, planned) == {"lr": 0.001, "act": "tanh"}
    assert constant_value('X = 1\nACT: str = "gelu"  # note\n', "ACT") == ('ACT: str = "gelu"  # note', "gelu")


def test_analysis_of_an_effect_a_null_and_a_failure(tmp_path):
    tpl = _template(tmp_path)
    runs = [
        _run("run_1", PlannedRun(description="", args={"--lr": "0.001"}),
             {"a": [1.30, 1.31, 1.29], "b": [2.40, 2.42, 2.38]}),  # clearly worse everywhere
        _run("run_2", PlannedRun(description="", args={"--lr": "0.1"}),
             {"a": [1.01, 0.99, 1.03], "b": [2.01, 1.99, 2.02]}),  # noise
        _run("run_3", PlannedRun(description="", args={"--lr": "0.05"}), None),
    ]
    a = analyze(tpl, _info(BASE), runs, scale="smoke")
    json.dumps(a.model_dump(), allow_nan=False)
    assert a.verdict == "effect" and a.n_runs == 3 and a.n_ok == 2 and a.n_seeds == 3
    assert a.setup.seeds == [0, 1, 2] and a.setup.quoted_numbers == [2.0]
    by_run = {r.run: r for r in a.runs}
    assert by_run["run_1"].datasets["a"]["loss"].verdict == "worse"
    assert by_run["run_2"].datasets["b"]["loss"].verdict == "no_significant_difference"
    assert not by_run["run_3"].ok and not by_run["run_3"].datasets
    assert a.best["a"].run == "run_0"  # neither finished run beats the baseline on a
    assert a.knobs[0].name == "lr" and a.knobs[0].tested == [0.001, 0.1, 0.05]
    assert a.baseline_label == "Baseline (lr=0.01)"
    assert any("failed" in f for f in a.findings)
    assert "consistent effect" in a.findings[0]


def test_null_and_mixed_verdicts(tmp_path):
    tpl = _template(tmp_path)
    noise = _run("run_1", PlannedRun(description="", args={"--lr": "0.1"}),
                 {"a": [1.01, 0.99, 1.03], "b": [2.01, 1.99, 2.02]})
    null = analyze(tpl, _info(BASE), [noise])
    assert null.verdict == "null"
    assert "no tested setting" in null.findings[0].lower()
    better = _run("run_2", PlannedRun(description="", args={"--lr": "0.001"}),
                  {"a": [0.70, 0.71, 0.69], "b": [2.40, 2.42, 2.38]})  # better on a, worse on b
    mixed = analyze(tpl, _info(BASE), [noise, better])
    assert mixed.verdict == "mixed"
    assert mixed.best["a"].run == "run_2" and mixed.best["a"].verdict == "better"
    assert mixed.best["b"].run in ("run_0", "run_1")


# ---------------------------------------------------------------- claims follow the corrected statistics


def test_holm_adjusts_known_p_values():
    # sorted: 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> made monotone: 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.9, 0.5]) == [1.0, 1.0] and holm([]) == []


def _runs(*losses: dict[str, list[float]]) -> list[RunRecord]:
    return [_run(f"run_{i}", PlannedRun(description="", args={"--lr": lr}), loss)
            for i, (lr, loss) in enumerate(zip(("0.001", "0.1", "0.05", "0.002"), losses, strict=False), 1)]


def test_a_difference_holm_rejects_is_neither_better_nor_best(tmp_path):
    tpl = _template(tmp_path)
    # alone, each run is significantly better on `a` (p = 0.032); corrected over 4 comparisons, neither is
    runs = _runs({"a": [0.95, 0.96, 0.94], "b": [2.01, 1.99, 2.02]}, {"a": [0.955, 0.965, 0.935], "b": BASE["b"]})
    a = analyze(tpl, _info(BASE), runs, scale="smoke")
    c = a.runs[0].datasets["a"]["loss"]
    assert c.p_value < 0.05 <= c.p_adjusted and c.verdict == "no_significant_difference"
    assert compare([0.95, 0.96, 0.94], BASE["a"], "minimize").verdict == "better"  # a family of one
    assert a.verdict == "null" and a.best["a"].outcome == "undecided" and a.best["a"].run == "run_0"
    assert not any("best" in f for f in a.findings)
    assert "no setting could be told apart" in a.findings[1]


def test_the_headline_is_the_largest_significant_effect_not_the_smallest_p(tmp_path):
    tpl = _template(tmp_path)
    base = {"a": [1.000, 1.001, 0.999], "b": [2.00, 2.03, 1.97]}
    runs = _runs({"a": [0.98, 0.9801, 0.9799], "b": base["b"]},  # -2 %, tiny p
                 {"a": [0.5, 0.55, 0.6], "b": base["b"]})  # -45 %, larger p, still significant
    a = analyze(tpl, _info(base), runs, scale="smoke")
    small, large = a.runs[0].datasets["a"]["loss"], a.runs[1].datasets["a"]["loss"]
    assert small.p_adjusted < large.p_adjusted < 0.05 and small.judged and large.judged
    r, ds, c = headline(a)
    assert (r.run, ds) == ("run_2", "a") and c.delta_pct == pytest.approx(-45.0)
    assert c.delta_pct_ci_low < -45.0 < c.delta_pct_ci_high < 0  # the interval comes with it
    assert a.best["a"].outcome == "improved" and a.best["a"].run == "run_2"
    assert "the largest improvement was lr=0.1" in a.findings[1]


def test_a_metric_without_direction_is_reported_never_judged(tmp_path):
    tpl = _template(tmp_path).model_copy(update={"metrics": [
        Metric(name="loss", direction="minimize", primary=True), Metric(name="acc", direction="none")]})
    runs = _runs({"a": [1.30, 1.31, 1.29], "b": [2.40, 2.42, 2.38]})
    for run in runs:  # acc moves a lot: still no verdict
        for block in run.results.values():
            block["per_seed"]["acc"] = [9.0, 9.1, 9.2]
    a = analyze(tpl, _info(BASE), runs, scale="smoke")
    acc = a.runs[0].datasets["a"]["acc"]
    assert acc.verdict == "not_judged" and acc.p_value is not None and acc.p_value < 0.05
    assert any("acc has no better direction" in f for f in a.findings)
    with pytest.raises(ValueError, match="needs direction"):
        Template.model_validate({**tpl.model_dump(), "metrics": [{"name": "loss", "direction": "none", "primary": True}]})


def test_a_wall_clock_time_is_judged_only_when_no_run_shared_the_machine(tmp_path):
    tpl = _template(tmp_path).model_copy(update={"metrics": [
        Metric(name="loss", direction="minimize", primary=True),
        Metric(name="acc", direction="maximize", wall_clock=True)]})
    runs = _runs({"a": [1.30, 1.31, 1.29], "b": [2.40, 2.42, 2.38]}, {"a": [1.31, 1.30, 1.28], "b": BASE["b"]})
    for run in runs:  # the "time" moves far beyond its seed-to-seed noise
        for block in run.results.values():
            block["per_seed"]["acc"] = [9.0, 9.1, 9.2]
    alone = analyze(tpl, _info(BASE), runs, scale="smoke")
    assert alone.runs[0].datasets["a"]["acc"].verdict == "better"
    assert [m.unjudged for m in alone.setup.metrics] == ["", ""]

    for shared_run, shared_base in ((True, False), (False, True)):
        recs = [r.model_copy(update={"shared": shared_run and i == 0}) for i, r in enumerate(runs)]
        a = analyze(tpl, _info(BASE), recs, scale="smoke", baseline_shared=shared_base)
        acc = a.runs[1].datasets["a"]["acc"]
        assert acc.verdict == "not_judged" and acc.p_value is not None and acc.p_value < 0.05
        assert a.runs[0].datasets["a"]["loss"].verdict == "worse"  # the other metrics are judged as before
        assert [(m.direction, m.unjudged) for m in a.setup.metrics] == [("minimize", ""), ("none", "shared_machine")]
        assert any("acc is a wall-clock time measured while other runs shared the machine" in f for f in a.findings)
    failed = [runs[0], _run("run_9", runs[0].planned, None).model_copy(update={"shared": True})]
    assert analyze(tpl, _info(BASE), failed, scale="smoke").runs[0].datasets["a"]["acc"].verdict == "better"
    with pytest.raises(ValueError, match="cannot be wall_clock"):
        Template.model_validate({**tpl.model_dump(), "metrics": [
            {"name": "loss", "direction": "minimize", "primary": True, "wall_clock": True}]})


def test_zero_variance_differences_are_not_counted(tmp_path):
    tpl = _template(tmp_path)
    flat = {"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}
    a = analyze(tpl, _info(flat), _runs({"a": [0.5, 0.5, 0.5], "b": [2.0, 2.0, 2.0]}), scale="smoke")
    c = a.runs[0].datasets["a"]["loss"]
    assert c.verdict == "untestable" and c.p_value is None and not c.judged
    assert a.verdict == "null" and a.best["a"].outcome == "undecided"
