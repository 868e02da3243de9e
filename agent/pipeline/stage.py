"""The per-idea stage wrapper: progress events, timings, and turning failures into outcomes.

A stage that fails stops only its own idea: the reason is recorded (archive outcomes table,
`errors.log`) and the other ideas go on. Errors the user must fix (a rejected API key, a
spent budget) stop the whole run instead, keeping every checkpoint for `resume`.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import TypeVar

from langgraph.types import Command, Send

from agent.errors import StageFailed, UserError
from agent.pipeline.deps import Deps
from agent.pipeline.progress import emit
from agent.pipeline.state import IdeaTask, Outcome

FINISH = "finish"
# A stage returns the next node's name (and the task to hand it), or an Outcome to finish.
StageResult = tuple[str, IdeaTask] | Outcome
StageFn = Callable[[Deps, IdeaTask], StageResult]
T = TypeVar("T")


def idea_stage(deps: Deps, name: str, fn: StageFn) -> Callable[[IdeaTask], Command]:
    """Wrap `fn` as a graph node that routes its idea onward with `Send`."""

    def node(task: IdeaTask) -> Command:
        started = time.time()
        result = guarded(deps, name, fn, task)
        if isinstance(result, tuple):
            nxt, out = result
            out = {**out, "timings": {**out.get("timings", {}), name: round(time.time() - started, 2)}}
            return Command(goto=Send(nxt, out))
        return Command(update={"outcomes": [finish_idea(deps, task, result)]}, goto=FINISH)

    node.__name__ = name
    return node


def guarded(deps: Deps, name: str, fn: Callable[[Deps, IdeaTask], T], task: IdeaTask) -> T | Outcome:
    """Run one stage of one idea in a --parallel slot; a failure becomes a failed Outcome."""
    idea = task["idea"]
    with deps.slots:
        emit(idea["name"], name, note=idea["title"])
        try:
            return fn(deps, task)
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - any bug in one idea must not end the night
            reason = e.reason if isinstance(e, StageFailed) else f"{type(e).__name__}: {e}"
            _log_error(deps, idea["name"], name, traceback.format_exc())
            return failed(task, name, reason)


def finish_idea(deps: Deps, task: IdeaTask, outcome: Outcome) -> Outcome:
    """Record how an idea ended (archive outcomes, progress) and hand the outcome back."""
    idea = task["idea"]
    deps.archive.record_outcome(task["run_id"], deps.template.name, idea["name"], idea["title"],
                                outcome["stage"], outcome["status"], outcome["reason"])
    emit(idea["name"], "done" if outcome["status"] == "archived" else "failed",
         note=outcome["reason"][:200], score=outcome["score"])
    return outcome


def failed(task: IdeaTask, stage: str, reason: str, status: str = "failed") -> Outcome:
    idea = task["idea"]
    return Outcome(idea=idea["name"], title=idea["title"], status=status, stage=stage,
                   reason=reason, paper_id=None, score=None)


def _log_error(deps: Deps, idea: str, stage: str, tb: str) -> None:
    with (deps.run_dir / "errors.log").open("a") as f:
        f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} idea={idea} stage={stage}\n{tb}\n")
