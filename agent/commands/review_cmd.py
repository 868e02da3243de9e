"""`ai-scientist review PATH` and `ai-scientist review-bench --data DIR`."""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from agent.brains import make_brain
from agent.brains.base import Brain
from agent.brains.llm.ledger import Ledger
from agent.errors import UserError
from agent.review.ensemble import ReviewOutcome, review_paper
from agent.review.paper_text import read_paper

if TYPE_CHECKING:
    from agent.review import bench as review_bench

console = Console()
err_console = Console(stderr=True)

MODEL_HELP = "'offline' (default) or a model name of the endpoint"
SCORES = (
    ("Overall (1-10)", "overall"), ("Confidence (1-5)", "confidence"), ("Originality (1-4)", "originality"),
    ("Quality", "quality"), ("Clarity", "clarity"), ("Significance", "significance"), ("Soundness", "soundness"),
    ("Presentation", "presentation"), ("Contribution", "contribution"), ("Decision", "decision"),
)


def _brain(model: str | None, base_url: str | None, budget_usd: float | None, ledger: Ledger, **llm: object) -> Brain:
    return make_brain(model, base_url, budget_usd=budget_usd, ledger=ledger, **llm)  # type: ignore[arg-type]


def _cost(ledger: Ledger) -> dict | None:
    return ledger.summary() if ledger.calls else None


def review(
    path: Path = typer.Argument(..., help="The paper: .pdf, .tex, .txt or .md"),
    model: str | None = typer.Option(None, help=MODEL_HELP),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint URL"),
    reviewers: int | None = typer.Option(None, help="Reviews in the ensemble, before the meta-review (default: 5 "
                                         "for an LLM; 1 for the offline brain, which is deterministic)"),
    review_reflections: int = typer.Option(3, "--review-reflections", help="Reflection rounds of the meta-review"),
    budget_usd: float | None = typer.Option(None, "--budget-usd", help="Hard cap on LLM spend"),
    price_in: float | None = typer.Option(None, "--price-in", help="USD per 1M prompt tokens of --model"),
    price_out: float | None = typer.Option(None, "--price-out", help="USD per 1M completion tokens of --model"),
    llm_timeout_s: float = typer.Option(60.0, "--llm-timeout", help="Per-call timeout of the endpoint, seconds"),
    vision: str = typer.Option("auto", help="Show a PDF's figures to the model: on, off, or auto (probe once)"),
    as_json: bool = typer.Option(False, "--json", help="Print the reviews and meta-review as JSON"),
) -> None:
    """Review a paper in the NeurIPS form: an ensemble of reviews and a meta-review."""
    paper = read_paper(path)
    with tempfile.TemporaryDirectory(prefix="ai-scientist-review-") as tmp:
        ledger = Ledger(Path(tmp) / "usage.jsonl")
        brain = _brain(model, base_url, budget_usd, ledger, price_in=price_in, price_out=price_out,
                       timeout_s=llm_timeout_s, vision=vision)
        reviewers = reviewers or (5 if brain.info.reviews_vary else 1)
        with err_console.status(f"{reviewers} review(s) + meta-review by the {brain.info.label}"):
            outcome = review_paper(brain, paper, reviewers, reflections=review_reflections)
        cost = _cost(ledger)
    if as_json:
        data = {**outcome.model_dump(), "brain": brain.info.label, "scope": brain.info.review_scope or None,
                "sections": [s.heading for s in paper.sections], "figures": len(paper.figures), "cost": cost}
        print(json.dumps(data, indent=2))
        return
    console.print(render_outcome(outcome, brain.info.label, brain.info.review_scope))
    if cost:
        console.print(f"Cost ${cost['cost_usd']:.4f}: {cost['calls']} calls, "
                      f"{cost['prompt_tokens']} prompt + {cost['completion_tokens']} completion tokens")


def render_outcome(outcome: ReviewOutcome, label: str, scope: str = "") -> Group:
    """The line saying what the reviewer judges (when it judges less than the whole form), the
    meta-review in full, then each reviewer's scores."""
    m = outcome.meta
    summary = m.summary.removeprefix(scope).lstrip("\n") if scope else m.summary
    colour = "green" if m.decision == "Accept" else "red"
    scores = Table(box=None)
    scores.add_column("Score")
    reviews = [m, *outcome.reviews]
    for name in ["Meta", *(f"R{i + 1}" for i in range(len(outcome.reviews)))]:
        scores.add_column(name, justify="right")
    for row_name, field in SCORES:  # not `label`, which names the brain
        scores.add_row(row_name, *(f"{getattr(r, field):g}" if field != "decision" else r.decision for r in reviews))
    body = [
        f"[bold {colour}]{m.decision}[/], Overall {m.overall:g}/10 (mean of {len(outcome.reviews)}), "
        f"confidence {m.confidence:g}/5 ({label})",
        *([f"[yellow]Note: {escape(m.text_cut)}[/]"] if m.text_cut else []),
        "", escape(summary), "",
        _bullets("Strengths", m.strengths), _bullets("Weaknesses", m.weaknesses),
        _bullets("Questions", m.questions), _bullets("Limitations", m.limitations),
        f"Ethical concerns: {'yes' if m.ethical_concerns else 'none'}", "", scores,
    ]
    panel = Panel(Group(*body), title="Meta-review")
    return Group(f"[bold]{escape(scope)}[/]", panel) if scope else Group(panel)


def _bullets(title: str, items: list[str]) -> str:
    return f"[bold]{title}[/]\n" + ("\n".join(f"  - {escape(x)}" for x in items) if items else "  (none)") + "\n"


def review_bench_cmd(
    data: Path | None = typer.Option(None, help="Folder with ratings.tsv and papers/ "
                                     "(default: ../shared/review_bench/iclr2022 beside the repository)"),
    model: str | None = typer.Option(None, help=MODEL_HELP),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint URL"),
    limit: int | None = typer.Option(None, help="Review a stratified, seeded sample of N papers"),
    reviewers: int | None = typer.Option(
        None, help="Reviews per paper before the meta-review (default: 1 for the offline brain, "
                   "which is deterministic so more would repeat it; 5 for an LLM, as published)"),
    seed: int = typer.Option(0, help="Seed of the sample and the bootstrap"),
    parallel: int | None = typer.Option(None, help="Papers reviewed at once (default: 8 for an LLM, "
                                        "1 for the offline brain, which is CPU-bound)"),
    resamples: int = typer.Option(1000, help="Bootstrap resamples for the 95% CIs"),
    budget_usd: float | None = typer.Option(None, "--budget-usd", help="Hard cap on LLM spend"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    as_pdf: bool = typer.Option(False, "--as-pdf", help="Typeset each text as an ICLR-like PDF (LaTeX), review "
                                "what is read back from it, and report the plain-text figures beside"),
    archive: bool = typer.Option(False, "--archive", help="Measure the archive's own reviews against your "
                                 "verdicts (`archive rate`; $AI_SCIENTIST_ARCHIVE, else ./archive) instead"),
) -> None:
    """Measure the reviewer against human accept/reject decisions, with bootstrap CIs."""
    from agent.review import bench as review_bench  # numpy and scipy: loaded only for this command
    if archive:
        from agent.archive.store import Archive, default_archive_root

        if data is not None or as_pdf:
            raise UserError("--archive measures the archive's reviews against your verdicts; it takes no --data or --as-pdf")
        root = default_archive_root()
        if not root.is_dir():
            raise UserError(f"no archive at {root}; set AI_SCIENTIST_ARCHIVE or run from the folder that holds it")
        report = review_bench.archive_bench(Archive(root), resamples=resamples, seed=seed)
    else:
        report = _iclr_bench(review_bench, data, model, base_url, limit, reviewers, seed, parallel, resamples,
                             budget_usd, as_pdf)
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        console.print(review_bench.render(report))


def _iclr_bench(review_bench, data: Path | None, model: str | None, base_url: str | None, limit: int | None,  # noqa: ANN001
                reviewers: int | None, seed: int, parallel: int | None, resamples: int, budget_usd: float | None,
                as_pdf: bool) -> review_bench.BenchReport:
    data = data or review_bench.default_data_dir()
    if not data.exists():
        raise UserError(f"{data}: no such folder; pass --data DIR (the layout of ../shared/review_bench/)")
    with tempfile.TemporaryDirectory(prefix="ai-scientist-bench-") as tmp:
        ledger = Ledger(Path(tmp) / "usage.jsonl")
        brain = _brain(model, base_url, budget_usd, ledger)
        llm = brain.info.concurrent  # a brain that waits on the network: a bigger ensemble, in parallel
        k = reviewers if reviewers is not None else (5 if llm else 1)
        workers = parallel or (8 if llm else 1)
        return _bench_with_progress(brain, data, limit, k, seed, workers, resamples, ledger, as_pdf)


def _bench_with_progress(brain: Brain, data: Path, limit: int | None, reviewers: int, seed: int,
                         workers: int, resamples: int, ledger: Ledger, as_pdf: bool) -> review_bench.BenchReport:
    from agent.review import bench as review_bench

    progress = Progress(
        TextColumn("[bold]reviewing[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=True,
    )
    state = {"task": None, "accepted": 0, "failed": 0}
    lock = threading.Lock()  # reviews finish on worker threads

    def on_start(n: int) -> None:
        state["task"] = progress.add_task("reviewing", total=n, info="")

    def on_done(p: review_bench.Prediction) -> None:
        with lock:
            state["accepted"] += bool(p.predicted)
            state["failed"] += p.error is not None
            info = f"predicted accept {state['accepted']}"
            if state["failed"]:
                info += f", failed {state['failed']}"
            progress.update(state["task"], advance=1, info=info)

    with progress:
        return review_bench.bench(
            brain, data, limit=limit, reviewers=reviewers, seed=seed, workers=workers, resamples=resamples,
            on_start=on_start, on_done=on_done, cost=lambda: _cost(ledger), pdf=as_pdf,
        )


def register(app: typer.Typer) -> None:
    """Add `review` and `review-bench` to the top-level app."""
    app.command("review")(review)
    app.command("review-bench")(review_bench_cmd)
