"""Start or resume one run: set up its folder, dependencies and graph, stream progress,
and return how each idea ended."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

from agent.archive.store import Archive
from agent.brains import make_brain
from agent.brains.llm.ledger import Ledger
from agent.config import RunSettings
from agent.errors import ToolMissing
from agent.models import Outcome
from agent.pipeline.deps import Deps
from agent.pipeline.graph import compile_graph
from agent.pipeline.progress import StatusBoard
from agent.pipeline.runs import SETTINGS_FILE, find_run, new_run_id
from agent.sandbox.bwrap import require_bwrap
from agent.sandbox.executors import LocalExecutor, make_executor
from agent.template.contract import load_template


def check_tools(settings: RunSettings) -> None:
    """Fail before any money is spent if the paper could never be built."""
    if shutil.which("latexmk") is None or shutil.which("pdflatex") is None:
        raise ToolMissing("LaTeX is not installed: run `make setup` (or apt-get install latexmk "
                          "texlive-latex-recommended texlive-fonts-recommended texlive-bibtex-extra)")
    if not settings.unsafe_no_sandbox:
        require_bwrap()


def start(settings: RunSettings, console: Console) -> tuple[str, list[Outcome]]:
    # Absolute paths, so `resume` works from any folder.
    settings = settings.model_copy(update={"experiments": settings.experiments.resolve(),
                                           "archive": settings.archive.resolve()})
    run_id = new_run_id(load_template(settings.template).name)
    run_dir = settings.experiments / run_id
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(mode=0o700)  # private: what sandboxed code leaves there is nobody else's to run
    (run_dir / SETTINGS_FILE).write_text(settings.model_dump_json(indent=1))
    console.print(f"run {run_id} in {run_dir}: if it stops, `ai-scientist resume {run_id}` continues it; "
                  f"`ai-scientist status {run_id}` shows progress", highlight=False)
    return run_id, execute(settings, run_id, console, fresh=True)


def resume(experiments: Path, run_id: str, overrides: dict, console: Console) -> tuple[RunSettings, list[Outcome]]:
    run_dir = find_run(experiments, run_id)
    saved = json.loads((run_dir / SETTINGS_FILE).read_text())
    settings = RunSettings(**{**saved, **{k: v for k, v in overrides.items() if v is not None}})
    (run_dir / SETTINGS_FILE).write_text(settings.model_dump_json(indent=1))
    return settings, execute(settings, run_id, console, fresh=False)


def execute(settings: RunSettings, run_id: str, console: Console, fresh: bool) -> list[Outcome]:
    check_tools(settings)
    template = load_template(settings.template)
    run_dir = settings.experiments / run_id
    audit = run_dir / "sandbox.jsonl"  # the audit trail: one line per sandboxed command
    ledger = Ledger(run_dir / "usage.jsonl")
    brain = make_brain(settings.model, settings.base_url, budget_usd=settings.budget_usd, seed=settings.seed,
                       ledger=ledger, cache_dir=run_dir / "llm_cache",
                       cache_mode=settings.llm_cache, timeout_s=settings.llm_timeout_s, price_in=settings.price_in,
                       price_out=settings.price_out, review_model=settings.review_model, vision=settings.vision,
                       stage_deadline_s=settings.llm_stage_deadline_s)
    deps = Deps(settings=settings, template=template, brain=brain, ledger=ledger,
                executor=make_executor(settings.executor, settings.ray_address,
                                       unsafe_no_sandbox=settings.unsafe_no_sandbox, audit_log=audit),
                local=LocalExecutor(settings.unsafe_no_sandbox, audit),
                archive=Archive(settings.archive), run_dir=run_dir)
    graph, conn = compile_graph(deps, run_dir)
    # --parallel is enforced by the stages' semaphore (agent.nodes.stage), not LangGraph's
    # max_concurrency: that also counts the stream's own worker and deadlocks at 1.
    config = {"configurable": {"thread_id": run_id}, "recursion_limit": 500}
    board = StatusBoard(run_dir, run_id, template.name)
    inputs = {"run_id": run_id, "outcomes": []} if fresh else None
    try:
        if not fresh and not graph.get_state(config).next:
            console.print(f"run {run_id} has already finished")
        else:
            _stream(graph, inputs, config, board, console)
        board.finish("finished")
        return [Outcome.model_validate(o) for o in graph.get_state(config).values.get("outcomes", [])]
    except BaseException:
        board.finish("stopped")
        raise
    finally:
        conn.close()


def _stream(graph, inputs, config, board: StatusBoard, console: Console) -> None:
    """Run the graph, folding custom progress events into the board and the display."""
    events = graph.stream(inputs, config, stream_mode="custom", durability="sync")
    if console.is_terminal:
        with Live(board.table(), console=console, refresh_per_second=2) as live:
            for event in events:
                board.update(event)
                live.update(board.table())
        return
    last: dict[str, str] = {}
    for event in events:  # no terminal (CI, a pipe): one line per stage change
        board.update(event)
        line = f"{event['stage']}: {event.get('note', '')}"
        if last.get(event["idea"]) != line:
            last[event["idea"]] = line
            console.print(f"[{time.strftime('%H:%M:%S')}] {event['idea']}: {line}", highlight=False)
