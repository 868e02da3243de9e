"""The per-idea stage wrapper: progress events, timings, and turning failures into outcomes.

A stage that fails stops only its own idea: the reason is recorded (archive outcomes table,
`errors.log`) and the other ideas go on. Errors the user must fix (a rejected API key, a
spent budget) stop the whole run instead, keeping every checkpoint for `resume`.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from langgraph.types import Command, Send

from agent.errors import StageFailed, UserError
from agent.nodes.deps import Deps
from agent.progress import emit
from agent.state import IdeaTask, Outcome

FINISH = "finish"
# A stage returns the next node's name (and the task to hand it), or an Outcome to finish.
StageResult = tuple[str, IdeaTask] | Outcome
StageFn = Callable[[Deps, IdeaTask], StageResult]


def idea_stage(deps: Deps, name: str, fn: StageFn) -> Callable[[IdeaTask], Command]:
    """Wrap `fn` as a graph node that routes its idea onward with `Send`."""

    def node(task: IdeaTask) -> Command:
        idea = task["idea"]
        with deps.slots:
            emit(idea["name"], name, note=idea["title"])
            started = time.time()
            result = _guarded(deps, name, fn, task)
        if isinstance(result, tuple):
            nxt, out = result
            out = {**out, "timings": {**out.get("timings", {}), name: round(time.time() - started, 2)}}
            return Command(goto=Send(nxt, out))
        deps.archive.record_outcome(
            task["run_id"], deps.template.name, idea["name"], idea["title"],
            result["stage"], result["status"], result["reason"],
        )
        emit(idea["name"], "done" if result["status"] == "archived" else "failed",
             note=result["reason"][:200], score=result["score"])
        return Command(update={"outcomes": [result]}, goto=FINISH)

    node.__name__ = name
    return node


def _guarded(deps: Deps, name: str, fn: StageFn, task: IdeaTask) -> StageResult:
    # An LLM brain tags every call of this stage with the idea, for per-paper costs.
    scope = getattr(deps.brain, "idea_scope", None)
    try:
        with scope(task["idea"]["name"]) if scope else nullcontext():
            return fn(deps, task)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any bug in one idea must not end the night
        reason = e.reason if isinstance(e, StageFailed) else f"{type(e).__name__}: {e}"
        _log_error(deps, task["idea"]["name"], name, traceback.format_exc())
        return failed(task, name, reason)


def failed(task: IdeaTask, stage: str, reason: str, status: str = "failed") -> Outcome:
    idea = task["idea"]
    return Outcome(idea=idea["name"], title=idea["title"], status=status, stage=stage,
                   reason=reason, paper_id=None, score=None)


def _log_error(deps: Deps, idea: str, stage: str, tb: str) -> None:
    with (deps.run_dir / "errors.log").open("a") as f:
        f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} idea={idea} stage={stage}\n{tb}\n")


def cost_so_far(deps: Deps, idea: str) -> Any:
    return deps.brain.ledger.summary(idea)["cost_usd"]
