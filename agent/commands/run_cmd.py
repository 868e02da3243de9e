"""`ai-scientist run`, `resume` and `status`. The pipeline (LangGraph, torch-free but heavy)
is imported inside the commands, so other commands start fast."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from agent.archive.store import Archive
from agent.brains import check_prices
from agent.config import experiments_root, load_settings
from agent.errors import ConfigError
from agent.models import Outcome
from agent.pipeline.progress import read_status, render
from agent.pipeline.runs import find_run, latest_run
from agent.template.contract import list_templates, load_template

console = Console()


def run(
    template: str = typer.Option(..., "--template", "-t", help="Template name, comma-separated names, or 'all'"),
    num_ideas: int | None = typer.Option(None, "--num-ideas", "-n", help="Ideas per generation (default 2)"),
    model: str | None = typer.Option(None, help="'offline' (default) or a model name of the endpoint"),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint URL"),
    scale: str | None = typer.Option(None, help="smoke (CPU, minutes) or full (GPU scale)"),
    parallel: int | None = typer.Option(None, help="Ideas worked on at once"),
    budget_usd: float | None = typer.Option(None, "--budget-usd", help="Hard cap on LLM spend"),
    archive: Path | None = typer.Option(None, help="Archive folder (default ./archive)"),
    executor: str | None = typer.Option(None, help="local or ray"),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster address"),
    max_runs: int | None = typer.Option(None, "--max-runs", help="Runs per idea with --search linear (default 5)"),
    max_fixes: int | None = typer.Option(None, "--max-fixes", help="Fix attempts per failed run (default 4)"),
    reviewers: int | None = typer.Option(None, help="Reviews in the ensemble (default 5)"),
    review_reflections: int | None = typer.Option(None, "--review-reflections",
                                                  help="Reflection rounds of the meta-review (default 3)"),
    review_model: str | None = typer.Option(None, "--review-model", help="The reviewers' model (default: --model)"),
    idea_reflections: int | None = typer.Option(None, "--idea-reflections",
                                                help="Reflection rounds per idea (default 3, early stop)"),
    novelty_rounds: int | None = typer.Option(None, "--novelty-rounds", help="Search rounds of the novelty check (default 10)"),
    citation_rounds: int | None = typer.Option(None, "--citation-rounds", help="Citation rounds of the writeup (default 20)"),
    vision: str | None = typer.Option(None, help="Show figures to the model: on, off or auto (default: probe once)"),
    price_in: float | None = typer.Option(None, "--price-in", help="USD per 1M prompt tokens of --model"),
    price_out: float | None = typer.Option(None, "--price-out", help="USD per 1M completion tokens of --model"),
    llm_timeout_s: float | None = typer.Option(None, "--llm-timeout", help="Per-call timeout in seconds (default 60)"),
    llm_stage_deadline_s: float | None = typer.Option(None, "--llm-stage-deadline",
                                                      help="Seconds all LLM calls of one step may take (default 1800)"),
    search: str | None = typer.Option(None, "--search", help="tree (default: best-first, confirmed on fresh "
                                      "seeds) or linear (up to --max-runs runs in a line)"),
    search_budget: int | None = typer.Option(None, "--search-budget",
                                             help="Runs per idea with --search tree, confirmation included (default 8)"),
    parallel_runs: int | None = typer.Option(None, "--parallel-runs", help="Runs of one idea's search at once"),
    search_minutes: float | None = typer.Option(None, "--search-minutes",
                                                help="Wall-clock cap on one idea's exploration (confirmation still runs)"),
    improve: bool | None = typer.Option(None, "--improve/--no-improve", help="Revise from the review"),
    generations: int | None = typer.Option(None, help="Ideate->archive loops (default 1)"),
    literature: str | None = typer.Option(None, help="auto, online or offline"),
    unsafe_no_sandbox: bool = typer.Option(False, "--unsafe-no-sandbox",
                                           help="DANGER: run LLM-written code without bubblewrap"),
    config: Path | None = typer.Option(None, help="Settings file (default ./ai-scientist.toml)"),
) -> None:
    """Run the research pipeline on one or more templates."""
    names = list_templates() if template == "all" else [t.strip() for t in template.split(",") if t.strip()]
    if not names:
        raise ConfigError("no templates to run")
    flags = dict(num_ideas=num_ideas, model=model, base_url=base_url, scale=scale, parallel=parallel,
                 budget_usd=budget_usd, archive=archive, executor=executor, ray_address=ray_address,
                 max_runs=max_runs, max_fixes=max_fixes, reviewers=reviewers, improve=improve,
                 generations=generations, literature=literature, unsafe_no_sandbox=unsafe_no_sandbox or None,
                 review_reflections=review_reflections, review_model=review_model, idea_reflections=idea_reflections,
                 novelty_rounds=novelty_rounds, citation_rounds=citation_rounds, vision=vision, price_in=price_in,
                 price_out=price_out, llm_timeout_s=llm_timeout_s, llm_stage_deadline_s=llm_stage_deadline_s,
                 search=search, search_budget=search_budget, parallel_runs=parallel_runs,
                 search_minutes=search_minutes)
    # Every template's settings are checked before the first run starts (and before the graph
    # loads), so a typo in the second name is not found after a night on the first.
    runs = []
    for name in names:
        settings = load_settings({**flags, "template": name}, config)
        check_prices(settings.model, settings.budget_usd, price_in=settings.price_in, price_out=settings.price_out,
                     review_model=settings.review_model)
        runs.append((load_template(settings.template).name, settings))
    from agent.pipeline import runner

    for name, settings in runs:
        started = time.time()
        search = (f"tree search, {settings.search_budget} runs per idea" if settings.search == "tree"
                  else f"linear, up to {settings.max_runs} runs per idea")
        console.print(f"[bold]ai-scientist[/] {name}: {settings.num_ideas} ideas, scale {settings.scale}, "
                      f"brain {'offline' if settings.offline else settings.model}, {search}")
        run_id, outcomes = runner.start(settings, console)
        report(run_id, outcomes, Archive(settings.archive), time.time() - started)


def resume(
    run_id: str = typer.Argument(..., help="The run to continue (see `ai-scientist status`)"),
    budget_usd: float | None = typer.Option(None, "--budget-usd", help="A new (higher) spend cap"),
    parallel: int | None = typer.Option(None, help="Ideas worked on at once"),
    experiments: Path | None = typer.Option(None, help="Folder holding the runs (default ./experiments)"),
) -> None:
    """Continue a run after a crash, Ctrl-C, kill -9 or a spent budget."""
    experiments = experiments_root(experiments)
    find_run(experiments, run_id)  # a mistyped id is refused before the graph loads
    from agent.pipeline import runner

    started = time.time()
    settings, outcomes = runner.resume(experiments, run_id, {"budget_usd": budget_usd, "parallel": parallel}, console)
    report(run_id, outcomes, Archive(settings.archive), time.time() - started)


def status(
    run_id: str | None = typer.Argument(None, help="Run id (default: the latest run)"),
    experiments: Path | None = typer.Option(None, help="Folder holding the runs (default ./experiments)"),
) -> None:
    """Show a run's progress (works from another terminal while it runs)."""
    experiments = experiments_root(experiments)
    run_id = run_id or latest_run(experiments)
    if run_id is None:
        raise ConfigError(f"no runs in {experiments}/ yet: start one with `ai-scientist run --template NAME`")
    data = read_status(find_run(experiments, run_id))
    if data is None:
        console.print(f"run {run_id} has not reported progress yet")
        return
    console.print(render(data))


def report(run_id: str, outcomes: list[Outcome], archive: Archive, seconds: float) -> None:
    """The morning summary: each idea's end, with the PDF path and score of each paper."""
    papers = [o for o in outcomes if o.archived]
    console.print(f"\nrun {run_id}: {len(papers)} paper(s) in {seconds / 60:.1f} min")
    for o in outcomes:
        if o.archived and o.paper_id:
            pdf = archive.root / o.paper_id / "paper.pdf"
            console.print(f"  [green]✓[/] {o.idea_name}: score {o.score:g}/10 — {pdf}", highlight=False)
        else:
            console.print(f"  [yellow]✗[/] {o.idea_name}: {o.status} at {o.stage}: {o.reason[:150]}",
                          highlight=False)
    console.print(f"browse: {archive.root / 'index.html'}  (or `ai-scientist archive serve`)")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(resume)
    app.command()(status)
