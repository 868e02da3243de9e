"""The research graph.

    START → ideate → novelty → baseline ─Send per idea→ experiments → plot → writeup → review
                                  │                                          (→ improve) → archive
                                  └────────────── (no novel idea) ──────────→ finish ← (every idea)
    finish → ideate (next generation, reading the archive's scores) or END

Per-idea stages are separate nodes chained with `Send`, so the SQLite checkpoint records
each finished stage: a resumed run redoes at most the stage that was cut off.
"""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path
from typing import Literal

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from agent.pipeline.deps import Deps
from agent.pipeline.nodes import (
    archive,
    baseline,
    experiments,
    ideate,
    improve,
    novelty,
    plot,
    review,
    writeup,
)
from agent.pipeline.stage import FINISH, idea_stage
from agent.pipeline.state import IdeaTask, RunState

CHECKPOINTS = "checkpoints.sqlite"
IDEA_STAGES = {
    "experiments": experiments.run_experiments,
    "plot": plot.plot,
    "writeup": writeup.writeup,
    "review": review.review,
    "improve": improve.improve,
    "archive": archive.archive,
}
# Where each stage may send its idea next: the `route` below picks one, and the graph is
# built (and drawn) from this table. Any stage may also end its idea (FINISH).
NEXT = {
    "experiments": ("plot", FINISH),
    "plot": ("writeup", FINISH),
    "writeup": ("review", FINISH),
    "review": ("improve", "archive", FINISH),
    "improve": ("archive", FINISH),
    "archive": (FINISH,),
}


def route(deps: Deps, stage: str) -> str:
    """The one routing decision of the idea stages: where an idea goes once `stage` is done."""
    if stage == "review":
        return "improve" if deps.settings.improve else "archive"
    return NEXT[stage][0]


def fan_out(state: RunState) -> list[Send] | Literal["finish"]:
    """One `experiments` task per novel idea; straight to finish when there is none."""
    if not state.get("novel"):
        return FINISH
    return [
        Send("experiments", IdeaTask(run_id=state["run_id"], generation=state["generation"], idea=idea, timings={}))
        for idea in state["novel"]
    ]


def finish(state: RunState) -> dict:
    return {}


def next_generation(deps: Deps, state: RunState) -> Literal["ideate", "__end__"]:
    return "ideate" if state.get("generation", 1) < deps.settings.generations else END


def build(deps: Deps) -> StateGraph:
    g = StateGraph(RunState)
    g.add_node("ideate", partial(ideate.ideate, deps))
    g.add_node("novelty", partial(novelty.novelty, deps))
    g.add_node("baseline", partial(baseline.baseline, deps))
    for name, fn in IDEA_STAGES.items():
        g.add_node(name, idea_stage(deps, name, fn, partial(route, deps)), destinations=NEXT[name])
    g.add_node(FINISH, finish, defer=True)  # waits for every idea of the generation
    g.add_edge(START, "ideate")
    g.add_edge("ideate", "novelty")
    g.add_edge("novelty", "baseline")
    g.add_conditional_edges("baseline", fan_out, ["experiments", FINISH])
    g.add_conditional_edges(FINISH, partial(next_generation, deps), ["ideate", END])
    return g


def compile_graph(deps: Deps, run_dir: Path):
    """The graph with its SQLite checkpointer in `run_dir` (the caller closes `.conn`)."""
    conn = sqlite3.connect(run_dir / CHECKPOINTS, check_same_thread=False)
    saver = SqliteSaver(conn)
    return build(deps).compile(checkpointer=saver), conn
