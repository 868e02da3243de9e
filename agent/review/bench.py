"""Calibrate the reviewer against human decisions (the AI Scientist paper's review benchmark).

Data: the layout of `../shared/review_bench/` — `ratings.tsv` (paper_id, human scores in
columns 0..6, decision) and `papers/<paper_id>.txt`. It is read in place, never copied.

The reviewer predicts Accept iff the meta-review's Overall is >= 6, and Overall is the
score for AUC, as in the paper. Each metric comes with a seeded percentile bootstrap 95%
CI over papers. Positive class = Accept, so FPR is the share of rejected papers the
reviewer would accept and FNR the share of accepted papers it would reject.
"""

from __future__ import annotations

import csv
import math
import random
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from agent.archive.store import Archive
from agent.brains.base import Brain
from agent.errors import BudgetExceeded, UserError
from agent.paper import latex
from agent.review import pdf_layouts
from agent.review.ensemble import review_paper
from agent.review.paper_text import Paper, read_paper

ACCEPT_AT = 6
METRICS = ("balanced_accuracy", "accuracy", "f1", "auc", "fpr", "fnr")
LABELS = {
    "balanced_accuracy": "Balanced acc.", "accuracy": "Accuracy", "f1": "F1", "auc": "AUC",
    "fpr": "FPR", "fnr": "FNR",
}
# AI Scientist paper (GPT-4o, 5 reviews + meta, ICLR 2022); humans: NeurIPS 2021 experiment.
REFERENCE: dict[str, dict[str, float]] = {
    "GPT-4o (paper)": {"balanced_accuracy": 0.65, "accuracy": 0.66, "f1": 0.57, "auc": 0.65,
                           "fpr": 0.31, "fnr": 0.39},
    "Humans": {"balanced_accuracy": 0.66, "f1": 0.49},
}


def default_data_dir() -> Path:
    """`../shared/review_bench/iclr2022` next to the repository."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "review_bench" / "iclr2022"


# ---------------------------------------------------------------- data


class BenchPaper(BaseModel):
    id: str
    path: Path
    human: list[float] = Field(description="individual human reviewer scores, 1-10")
    decision: str

    @property
    def accept(self) -> bool:
        return self.decision.lower().startswith("accept")

    @property
    def human_mean(self) -> float:
        return sum(self.human) / len(self.human) if self.human else math.nan


def find_ratings(data: Path) -> Path:
    """`data/ratings.tsv`, or that of the single data set folder inside `data`."""
    if (data / "ratings.tsv").is_file():
        return data / "ratings.tsv"
    inner = sorted(data.glob("*/ratings.tsv")) if data.is_dir() else []
    if len(inner) == 1:
        return inner[0]
    hint = f" (found {len(inner)} data sets; pick one: {', '.join(str(p.parent) for p in inner)})" if inner else ""
    raise UserError(f"{data}: no ratings.tsv{hint}; expected the layout of ../shared/review_bench/ (see its README)")


def load(data: Path) -> list[BenchPaper]:
    """Every paper of a review-bench folder with its human scores and decision."""
    ratings = find_ratings(data)
    papers = []
    with ratings.open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            pid = (row.get("paper_id") or "").strip()
            if not pid:
                continue
            human = [float(v) for k, v in row.items() if k and k.isdigit() and v and v.strip()]
            path = ratings.parent / "papers" / f"{pid}.txt"
            if not path.is_file():
                raise UserError(f"{path}: missing paper text for {pid} listed in {ratings}")
            papers.append(BenchPaper(id=pid, path=path, human=human, decision=row["decision"].strip()))
    if not papers:
        raise UserError(f"{ratings}: no papers listed")
    return papers


def sample(papers: list[BenchPaper], limit: int | None, seed: int = 0) -> list[BenchPaper]:
    """A seeded sample of `limit` papers with the data's share of accepts (at least one of
    each class when there is room), in file order."""
    if limit is None or limit >= len(papers):
        return list(papers)
    if limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    acc = [p for p in papers if p.accept]
    rej = [p for p in papers if not p.accept]
    n_acc = round(limit * len(acc) / len(papers))
    if limit >= 2 and acc and rej:
        n_acc = min(max(n_acc, 1), limit - 1)
    n_acc = min(n_acc, len(acc))
    n_rej = min(limit - n_acc, len(rej))
    rng = random.Random(seed)
    chosen = {p.id for p in rng.sample(acc, n_acc) + rng.sample(rej, n_rej)}
    return [p for p in papers if p.id in chosen]


# ---------------------------------------------------------------- reviewing


class Prediction(BaseModel):
    id: str
    accept: bool = Field(description="the human decision")
    human_mean: float
    overall: int | None = None
    predicted: bool | None = None
    error: str | None = None


def as_pdf(paper: BenchPaper) -> Paper:
    """The paper's text typeset in the ICLR-like layout, compiled, and read back from the PDF."""
    with tempfile.TemporaryDirectory(prefix="ai-scientist-bench-pdf-") as tmp:
        folder = Path(tmp)
        pdf_layouts.write(paper.path.read_text(errors="replace"), "iclr", folder)
        built = latex.compile_pdf(folder, timeout_s=120)
        if built.pdf is None:
            raise RuntimeError(f"LaTeX built no PDF: {'; '.join(built.problems[:2])}")
        return read_paper(built.pdf)


def review_one(brain: Brain, paper: BenchPaper, reviewers: int, pdf: bool = False) -> Prediction:
    base = dict(id=paper.id, accept=paper.accept, human_mean=paper.human_mean)
    try:
        source = as_pdf(paper) if pdf else paper.path.read_text(errors="replace")
        meta = review_paper(brain, source, reviewers).meta
    except UserError:
        raise  # a spent budget or a bad key ends the benchmark
    except Exception as e:  # one paper's failure (a bad LLM answer) must not
        return Prediction(**base, error=f"{type(e).__name__}: {e}"[:300])
    return Prediction(**base, overall=meta.overall, predicted=meta.overall >= ACCEPT_AT)


def run_reviews(
    brain: Brain, papers: list[BenchPaper], reviewers: int, workers: int,
    on_done: Callable[[Prediction], None] = lambda p: None, pdf: bool = False,
) -> tuple[list[Prediction], str | None]:
    """Review every paper on `workers` threads; returns predictions in paper order and the
    reason it stopped early (a spent budget), if it did. Threads suit an LLM, whose calls
    wait on the network; the offline rubric takes about 0.1 s of CPU a paper, so the whole
    set is under a minute even without parallelism."""
    results: dict[str, Prediction] = {}
    error: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = [pool.submit(review_one, brain, p, reviewers, pdf) for p in papers]
        for f in as_completed(futures):
            if (error := f.exception()) is not None:
                break
            pred = f.result()
            results[pred.id] = pred
            on_done(pred)
    finally:  # on an error or Ctrl-C, papers not yet started are never started
        pool.shutdown(wait=True, cancel_futures=True)
    if error is not None and not isinstance(error, BudgetExceeded):
        raise error
    for f in futures:  # reviews that were in flight when the budget ran out still count
        if f.done() and not f.cancelled() and f.exception() is None and f.result().id not in results:
            pred = f.result()
            results[pred.id] = pred
            on_done(pred)
    return [results[p.id] for p in papers if p.id in results], str(error) if error else None


# ---------------------------------------------------------------- metrics


class Estimate(BaseModel):
    """A metric on the sample and its bootstrap 95% CI (None where undefined)."""

    value: float | None
    low: float | None = None
    high: float | None = None


def confusion(truth: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    return {
        "tp": int(np.sum(truth & pred)), "fp": int(np.sum(~truth & pred)),
        "tn": int(np.sum(~truth & ~pred)), "fn": int(np.sum(truth & ~pred)),
    }


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def _rates(truth: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Confusion-matrix metrics along the last axis (so one call serves every resample)."""
    tp = np.sum(truth & pred, axis=-1).astype(float)
    fp = np.sum(~truth & pred, axis=-1).astype(float)
    tn = np.sum(~truth & ~pred, axis=-1).astype(float)
    fn = np.sum(truth & ~pred, axis=-1).astype(float)
    tpr, tnr = _div(tp, tp + fn), _div(tn, tn + fp)
    return {
        "balanced_accuracy": (tpr + tnr) / 2,
        "accuracy": _div(tp + tn, tp + tn + fp + fn),
        "f1": _div(2 * tp, 2 * tp + fp + fn),
        "fpr": _div(fp, fp + tn),
        "fnr": _div(fn, fn + tp),
    }


def auc(truth: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); NaN with one class."""
    from scipy import stats  # slow to import; the CLI loads this module only for review-bench

    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = stats.rankdata(score)
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def metrics(truth: np.ndarray, pred: np.ndarray, score: np.ndarray) -> dict[str, float]:
    out = {k: float(v) for k, v in _rates(truth, pred).items()}
    out["auc"] = auc(truth, score)
    return out


def bootstrap(
    truth: np.ndarray, pred: np.ndarray, score: np.ndarray, resamples: int = 1000, seed: int = 0
) -> dict[str, tuple[float | None, float | None]]:
    """Percentile 95% CI of every metric over `resamples` resamples of the papers."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(truth), size=(resamples, len(truth)))
    draws = _rates(truth[idx], pred[idx])
    draws["auc"] = np.array([auc(truth[i], score[i]) for i in idx])
    out = {}
    for k, v in draws.items():
        v = v[~np.isnan(v)]
        out[k] = (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if len(v) else (None, None)
    return out


def _nan_none(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def correlations(overall: np.ndarray, human: np.ndarray) -> dict[str, float | None]:
    """Pearson and Spearman r of Overall with the mean human score (None if either is constant)."""
    from scipy import stats

    ok = ~np.isnan(human)
    x, y = overall[ok].astype(float), human[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"pearson": None, "spearman": None}
    return {"pearson": _nan_none(stats.pearsonr(x, y)[0]), "spearman": _nan_none(stats.spearmanr(x, y)[0])}


class BenchReport(BaseModel):
    data: str
    model: str
    reviewers: int
    n: int = Field(description="papers with a prediction")
    n_accept: int
    failed: int = Field(description="papers whose review failed (excluded)")
    stopped: str | None = Field(default=None, description="why the run ended early, if it did")
    confusion: dict[str, int]
    metrics: dict[str, Estimate]
    pearson: float | None
    spearman: float | None
    mean_overall: float | None
    resamples: int
    seed: int
    wall_s: float = 0.0
    as_pdf: bool = Field(default=False, description="each text was typeset as a PDF and read back")
    text_metrics: dict[str, Estimate] | None = Field(
        default=None, description="with as_pdf: the same papers reviewed from their plain text, for comparison")
    cost: dict | None = Field(default=None, description="ledger summary when an LLM was used")
    predictions: list[Prediction] = Field(default_factory=list)


def evaluate(preds: list[Prediction], resamples: int = 1000, seed: int = 0) -> dict:
    """Point metrics, bootstrap CIs, correlations and the confusion matrix of the predictions."""
    good = [p for p in preds if p.overall is not None]
    if not good:
        raise UserError("no paper could be reviewed, so there is nothing to score; see the errors above")
    truth = np.array([p.accept for p in good])
    pred = np.array([bool(p.predicted) for p in good])
    score = np.array([float(p.overall) for p in good])  # type: ignore[arg-type]
    human = np.array([p.human_mean for p in good])
    point = metrics(truth, pred, score)
    cis = bootstrap(truth, pred, score, resamples, seed)
    return dict(
        n=len(good), n_accept=int(truth.sum()), failed=len(preds) - len(good),
        confusion=confusion(truth, pred),
        metrics={k: Estimate(value=_nan_none(point[k]), low=cis[k][0], high=cis[k][1]) for k in METRICS},
        **correlations(score, human), mean_overall=float(score.mean()), resamples=resamples, seed=seed,
    )


# ---------------------------------------------------------------- display


def render(report: BenchReport):
    """A rich renderable: the metrics beside the published reference, then the details."""
    from rich.console import Group
    from rich.table import Table

    def f(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    reviews = f"{report.reviewers} review(s) + meta" if report.reviewers else "as archived"
    table = Table(title=f"Review bench: {report.n} papers ({report.n_accept} accepted), "
                        f"{report.model}, {reviews}, accept iff Overall >= {ACCEPT_AT}")
    table.add_column("Metric")
    table.add_column("Ours (PDF)" if report.as_pdf else "Ours", justify="right")
    table.add_column("95% CI", justify="right")
    text = report.text_metrics
    if text is not None:
        table.add_column("Plain text", justify="right")
    for ref in REFERENCE:
        table.add_column(ref, justify="right")
    for k in METRICS:
        e = report.metrics[k]
        ci = "n/a" if e.low is None else f"[{e.low:.2f}, {e.high:.2f}]"
        plain = [f(text[k].value)] if text is not None else []
        table.add_row(LABELS[k], f(e.value), ci, *plain, *(f(REFERENCE[r].get(k)) if k in REFERENCE[r] else "-"
                                                          for r in REFERENCE))
    c = report.confusion
    lines = [
        *(["PDF: each text typeset in the ICLR-like layout, compiled with LaTeX and read back from the PDF; "
           "'Plain text' reviews the same papers from their text."] if report.as_pdf else []),
        "Reference: AI Scientist paper (GPT-4o, 5 reviews + meta, ICLR 2022); humans: NeurIPS 2021 "
        "consistency experiment.",
        f"Correlation of Overall with the mean human score: Pearson {f(report.pearson)}, "
        f"Spearman {f(report.spearman)}; mean Overall {f(report.mean_overall)}",
        f"Confusion (positive = Accept): TP {c['tp']}  FP {c['fp']}  TN {c['tn']}  FN {c['fn']}; "
        f"CIs: {report.resamples} bootstrap resamples, seed {report.seed}",
    ]
    if report.failed:
        lines.append(f"{report.failed} paper(s) failed to review and are excluded")
    if report.stopped:
        lines.append(f"Stopped early: {report.stopped}")
    if report.cost is not None:
        lines.append(f"Cost ${report.cost.get('cost_usd', 0):.4f}: {report.cost.get('calls', 0)} calls, "
                     f"{report.cost.get('prompt_tokens', 0)} prompt + "
                     f"{report.cost.get('completion_tokens', 0)} completion tokens")
    lines.append(f"Wall time {report.wall_s:.1f} s; data {report.data}")
    return Group(table, *lines)


MIN_RATED = 10
"""Rated papers an archive needs before its reviewer is measured against the researcher."""


def archive_bench(archive: Archive, *, resamples: int = 1000, seed: int = 0) -> BenchReport:
    """The archive's own automated reviews against the researcher's verdicts: each rated paper's
    meta-review Overall against the researcher's score, Accept iff >= 6 on either side, with the
    same metrics and bootstrap CIs as the ICLR bench. Whether the reviewer's ranking of this
    archive can be trusted for this researcher."""
    rated = [r for r in archive.list() if r.human_score is not None and r.overall is not None]
    if len(rated) < MIN_RATED:
        raise UserError(f"{archive.root}: {len(rated)} rated paper(s); rate at least {MIN_RATED} with "
                        "`ai-scientist archive rate ID SCORE` before measuring the reviewer against you")
    preds = [Prediction(id=r.id, accept=r.human_score >= ACCEPT_AT, human_mean=r.human_score,  # type: ignore[operator]
                        overall=round(r.overall), predicted=r.overall >= ACCEPT_AT) for r in rated]  # type: ignore[operator, arg-type]
    return BenchReport(data=f"{archive.root} (your verdicts)", model="the archive's automated reviews", reviewers=0,
                       predictions=preds, **evaluate(preds, resamples, seed))


def bench(
    brain: Brain, data: Path, *, limit: int | None = None, reviewers: int = 1, seed: int = 0,
    workers: int = 1, resamples: int = 1000, on_start: Callable[[int], None] = lambda n: None,
    on_done: Callable[[Prediction], None] = lambda p: None, cost: Callable[[], dict | None] = lambda: None,
    pdf: bool = False,
) -> BenchReport:
    """Load, sample, review and score: the whole benchmark, without any display. With `pdf`,
    each paper is reviewed from a PDF of its text, and then from the text itself."""
    papers = sample(load(data), limit, seed)
    on_start(len(papers))
    t0 = time.perf_counter()
    preds, stopped = run_reviews(brain, papers, reviewers, workers, on_done, pdf=pdf)
    wall = time.perf_counter() - t0
    text_metrics = None
    if pdf:
        read = {p.id for p in preds if p.overall is not None}
        text_preds, _ = run_reviews(brain, [p for p in papers if p.id in read], reviewers, workers)
        text_metrics = evaluate(text_preds, resamples, seed)["metrics"] if read else None
    return BenchReport(
        data=str(data), model=brain.info.label, reviewers=reviewers, stopped=stopped, wall_s=wall,
        cost=cost(), predictions=preds, as_pdf=pdf, text_metrics=text_metrics, **evaluate(preds, resamples, seed),
    )
