"""The per-idea stage wrapper: progress events, timings, and turning failures into outcomes.

A stage takes an idea's `IdeaTask` and returns it (done: the graph's routing sends it on) or
an `Outcome` (the idea ended). A stage that fails stops only its own idea: the reason is
recorded (archive outcomes, `errors.log`) and the other ideas go on. Errors the user must fix
(a rejected API key, a spent budget) stop the whole run instead, keeping every checkpoint for
`resume`.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import TypeVar

from langgraph.types import Command, Send

from agent.errors import StageFailed, UserError
from agent.models import Outcome
from agent.pipeline.deps import Deps
from agent.pipeline.progress import emit
from agent.pipeline.state import IdeaTask

FINISH = "finish"
StageResult = IdeaTask | Outcome
StageFn = Callable[[Deps, IdeaTask], StageResult]
Route = Callable[[str], str]
T = TypeVar("T")


def idea_stage(deps: Deps, name: str, fn: StageFn, route: Route) -> Callable[[IdeaTask], Command]:
    """Wrap `fn` as a graph node that hands its idea to `route(name)` with `Send`, or finishes it."""

    def node(task: IdeaTask) -> Command:
        started = time.time()
        result = guarded(deps, name, fn, task)
        if isinstance(result, Outcome):
            return Command(update={"outcomes": [finish_idea(deps, result).model_dump()]}, goto=FINISH)
        out = {**result, "timings": {**result.get("timings", {}), name: round(time.time() - started, 2)}}
        return Command(goto=Send(route(name), out))

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
            return failed(deps, task, name, reason)


def finish_idea(deps: Deps, outcome: Outcome) -> Outcome:
    """Record how an idea ended (an archived paper's outcome was recorded by the archive with
    it), show it, and hand it back."""
    if not outcome.archived:
        deps.archive.record_outcome(outcome)
    emit(outcome.idea_name, "done" if outcome.archived else "failed", note=outcome.reason[:200],
         score=outcome.score)
    return outcome


def failed(deps: Deps, task: IdeaTask, stage: str, reason: str, status: str = "failed") -> Outcome:
    idea = task["idea"]
    return Outcome(run_id=task["run_id"], template=deps.template.name, idea_name=idea["name"],
                   title=idea["title"], status=status, stage=stage, reason=reason)


def _log_error(deps: Deps, idea: str, stage: str, tb: str) -> None:
    with (deps.run_dir / "errors.log").open("a") as f:
        f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} idea={idea} stage={stage}\n{tb}\n")
