"""Review-bench: data loading, sampling, metrics math, and runs over real data."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.brains.base import BrainInfo
from agent.errors import BudgetExceeded, UserError
from agent.models import Review
from agent.review import bench as rb
from agent.review import calibration

REPO = Path(__file__).resolve().parents[1]
SHARED = rb.default_data_dir()
CLI = str(Path(sys.executable).parent / "ai-scientist")  # the installed console script


def make_review(overall: int) -> Review:
    return Review(
        summary="s", strengths=[], weaknesses=[], originality=2, quality=2, clarity=2, significance=2,
        questions=[], limitations=[], ethical_concerns=False, soundness=2, presentation=2, contribution=2,
        overall=overall, confidence=3, decision="Accept" if overall >= 6 else "Reject",
    )


class ScriptedReviewer:
    """Stands in for an external LLM: the paper text says which score to give."""

    info = BrainInfo(kind="llm", model="scripted", concurrent=True)

    def __init__(self, budget_after: int | None = None):
        self.calls = 0
        self.budget_after = budget_after

    def review(self, paper_text: str, figures=(), *, idea: str = "") -> Review:
        self.calls += 1
        if self.budget_after is not None and self.calls > self.budget_after:
            raise BudgetExceeded("budget of $0.01 spent")
        m = re.search(r"SCORE (\d+)", paper_text)
        if not m:
            raise ValueError("the model answered with malformed JSON")
        return make_review(int(m.group(1)))

    def meta_review(self, reviews: list[Review], *, idea: str = "", paper_text: str = "",
                    reflections: int = 1) -> Review:
        return make_review(round(sum(r.overall for r in reviews) / len(reviews)))


def write_bench(root: Path, rows: list[tuple[str, list[float], str, str]]) -> Path:
    """A review-bench folder: (paper_id, human scores, decision, paper text) per paper."""
    (root / "papers").mkdir(parents=True)
    lines = ["paper_id\t0\t1\t2\t3\t4\t5\t6\tdecision"]
    for pid, scores, decision, text in rows:
        cells = [str(s) for s in scores] + [""] * (7 - len(scores))
        lines.append("\t".join([pid, *cells, decision]))
        (root / "papers" / f"{pid}.txt").write_text(text)
    (root / "ratings.tsv").write_text("\n".join(lines) + "\n")
    return root


# ---------------------------------------------------------------- metrics math


def known_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # 4 accepted papers scored 8, 7, 6, 3 and 6 rejected ones scored 7, 6, 5, 4, 2, 1; accept iff >= 6
    score = np.array([8, 7, 6, 3, 7, 6, 5, 4, 2, 1], dtype=float)
    truth = np.array([True] * 4 + [False] * 6)
    return truth, score >= 6, score


def test_metrics_from_a_known_confusion_matrix():
    truth, pred, score = known_case()
    assert rb.confusion(truth, pred) == {"tp": 3, "fp": 2, "tn": 4, "fn": 1}
    m = rb.metrics(truth, pred, score)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert m["fpr"] == pytest.approx(2 / 6)
    assert m["fnr"] == pytest.approx(1 / 4)
    # AUC by counting pairs: 18 of 24 (accepted, rejected) pairs ordered right, ties count half
    assert m["auc"] == pytest.approx(18 / 24)


def test_auc_is_undefined_with_one_class_and_symmetric_under_flip():
    truth, _, score = known_case()
    assert math.isnan(rb.auc(np.ones(5, dtype=bool), np.arange(5.0)))
    assert rb.auc(truth, -score) == pytest.approx(1 - rb.auc(truth, score))


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    truth = rng.random(200) < 0.4
    score = np.where(truth, rng.normal(6, 2, 200), rng.normal(5, 2, 200)).round().clip(1, 10)
    pred = score >= 6
    point = rb.metrics(truth, pred, score)
    cis = rb.bootstrap(truth, pred, score, resamples=400, seed=3)
    for k in rb.METRICS:
        low, high = cis[k]
        assert low <= point[k] <= high, k
        assert high - low < 0.35, k
    assert cis == rb.bootstrap(truth, pred, score, resamples=400, seed=3)
    assert cis != rb.bootstrap(truth, pred, score, resamples=400, seed=4)


def test_correlations_are_none_for_a_constant_reviewer():
    human = np.array([3.0, 5.0, 6.5, 8.0])
    assert rb.correlations(np.array([4, 4, 4, 4]), human) == {"pearson": None, "spearman": None}
    c = rb.correlations(np.array([2, 5, 6, 9]), human)
    assert c["spearman"] == pytest.approx(1.0)
    assert 0.9 < c["pearson"] <= 1.0


# ---------------------------------------------------------------- data and sampling


def test_load_reads_scores_decisions_and_nested_folders(tmp_path):
    write_bench(tmp_path / "set", [
        ("a1", [6.0, 8.0], "Accept (Poster)", "x"), ("r1", [3.0, 5.0, 1.0], "Reject", "y"),
        ("a2", [8.0], "Accept (Oral)", "z"),
    ])
    papers = rb.load(tmp_path)  # the one data set inside is found
    assert [(p.id, p.accept, p.human) for p in papers] == [
        ("a1", True, [6.0, 8.0]), ("r1", False, [3.0, 5.0, 1.0]), ("a2", True, [8.0])]
    assert papers[1].human_mean == pytest.approx(3.0)


def test_load_refuses_a_folder_without_the_layout(tmp_path):
    with pytest.raises(UserError, match="no ratings.tsv"):
        rb.load(tmp_path)
    write_bench(tmp_path / "set", [("a1", [6.0], "Accept (Poster)", "x")])
    (tmp_path / "set" / "papers" / "a1.txt").unlink()
    with pytest.raises(UserError, match="missing paper text"):
        rb.load(tmp_path / "set")


def test_sample_is_stratified_seeded_and_in_file_order():
    papers = [rb.BenchPaper(id=f"p{i:03d}", path=Path("x"), human=[5.0], decision="Accept (Poster)" if i % 8 < 3
                            else "Reject") for i in range(400)]
    share = sum(p.accept for p in papers) / 400
    s = rb.sample(papers, 20, seed=0)
    assert len(s) == 20 and sum(p.accept for p in s) == round(20 * share)
    assert [p.id for p in s] == sorted(p.id for p in s)
    assert s == rb.sample(papers, 20, seed=0) and s != rb.sample(papers, 20, seed=1)
    assert sum(p.accept for p in rb.sample(papers, 2, seed=0)) == 1  # both classes when there is room
    assert rb.sample(papers, None) == papers


# ---------------------------------------------------------------- the whole benchmark


def test_bench_end_to_end_with_a_scripted_reviewer(tmp_path):
    scores = [8, 7, 6, 3, 7, 6, 5, 4, 2, 1]
    rows = [(f"p{i}", [float(s), float(s + 1)], "Accept (Poster)" if i < 4 else "Reject", f"paper {i}\nSCORE {s}")
            for i, s in enumerate(scores)]
    rows.append(("broken", [5.0], "Reject", "no score here"))
    data = write_bench(tmp_path, rows)
    done = []
    report = rb.bench(ScriptedReviewer(), data, reviewers=2, workers=3, resamples=200, on_done=done.append)
    assert len(done) == 11 and report.failed == 1 and report.n == 10
    assert report.confusion == {"tp": 3, "fp": 2, "tn": 4, "fn": 1}
    assert report.metrics["auc"].value == pytest.approx(18 / 24)
    assert report.metrics["f1"].value == pytest.approx(6 / 9)
    assert report.pearson == pytest.approx(1.0) and report.spearman == pytest.approx(1.0)
    assert next(p for p in report.predictions if p.id == "broken").error.startswith("ValueError")
    rendered = _render_text(report)
    assert "Balanced acc." in rendered and "0.65" in rendered and "GPT-4o" in rendered


def test_the_reviewers_calibration_examples_are_not_scored(tmp_path):
    """The LLM reviewer's prompt shows four of the bench's papers with their human scores: the
    bench must not score those."""
    shown = sorted(calibration.ids())
    assert len(shown) == 4
    rows = [(pid, [6.0], "Accept (Poster)", "SCORE 8") for pid in shown]
    rows += [("fresh1", [6.0], "Accept (Poster)", "SCORE 7"), ("fresh2", [3.0], "Reject", "SCORE 2")]
    report = rb.bench(ScriptedReviewer(), write_bench(tmp_path, rows), reviewers=1, workers=1, resamples=50)
    assert sorted(p.id for p in report.predictions) == ["fresh1", "fresh2"]


def test_a_spent_budget_stops_the_bench_with_partial_results(tmp_path):
    rows = [(f"p{i}", [5.0], "Accept (Poster)" if i % 2 else "Reject", f"SCORE {3 + i}") for i in range(12)]
    data = write_bench(tmp_path, rows)
    report = rb.bench(ScriptedReviewer(budget_after=5), data, reviewers=1, workers=1, resamples=50)
    assert report.stopped and "budget" in report.stopped
    assert report.n == 5


def _render_text(report: rb.BenchReport) -> str:
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(rb.render(report))
    return console.export_text()


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/review_bench (the calibration data)")
def test_cli_review_bench_on_the_real_data_with_the_offline_brain():
    cmd = [CLI, "review-bench", "--data", str(SHARED), "--limit", "20", "--json",
           "--resamples", "200"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["n"] + report["failed"] == 20 and report["failed"] == 0
    assert report["n_accept"] == round(20 * 147 / 400)
    assert "offline" in report["model"] and report["cost"] is None
    for k in rb.METRICS:
        e = report["metrics"][k]
        if e["value"] is not None:
            assert e["low"] <= e["value"] <= e["high"], k
    human = subprocess.run(cmd[:-3], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert human.returncode == 0 and "Balanced acc." in human.stdout and "95% CI" in human.stdout


def test_cli_review_bench_refuses_a_missing_folder(tmp_path):
    out = subprocess.run([CLI, "review-bench", "--data", str(tmp_path / "nope")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no such folder" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_review_bench_with_an_llm_reports_cost_and_tokens(tmp_path):
    """The real `openai` client against a loopback server that scores each paper by the
    SCORE line in its text; the meta-review averages the listed reviews."""
    from tests.llm_server import LoopbackLLM, review_shaped

    def answer(stage: str, req) -> object:
        if stage == "review":
            return review_shaped(stage, make_review(int(re.search(r"SCORE (\d+)", req.prompt).group(1))))
        overall = [int(x) for x in re.findall(r'"overall":\s*(\d+)', req.prompt)] or [5]  # the probe lists none
        return review_shaped(stage, make_review(round(sum(overall) / len(overall))))

    scores = [8, 7, 6, 3, 7, 6, 5, 4, 2, 1]
    rows = [(f"p{i}", [float(s)], "Accept (Poster)" if i < 4 else "Reject", f"Paper {i}.\nSCORE {s}\n")
            for i, s in enumerate(scores)]
    data = write_bench(tmp_path / "data", rows)
    with LoopbackLLM(default=answer) as srv:
        out = subprocess.run(
            [CLI, "review-bench", "--data", str(data), "--model", "test-model", "--base-url", srv.url,
             "--reviewers", "2", "--parallel", "4", "--resamples", "100", "--json"],
            cwd=REPO, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        stages = srv.stages()
    report = json.loads(out.stdout)
    assert report["confusion"] == {"tp": 3, "fp": 2, "tn": 4, "fn": 1}
    assert report["metrics"]["auc"]["value"] == pytest.approx(18 / 24)
    assert sorted(set(stages)) == ["meta_review", "meta_review_reflect", "review"]
    assert len(stages) == 10 * (2 + 2)
    assert report["cost"]["calls"] == len(stages) and report["cost"]["prompt_tokens"] > 0
    assert "test-model" in report["model"]
