"""The graph's typed state. Nodes return only the keys they change; `outcomes` accumulates
(as plain dicts of `agent.models.Outcome`, which the checkpointer stores as JSON).

Per-idea stages receive a small `IdeaTask` payload through `Send`, not the whole state.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class RunState(TypedDict, total=False):
    run_id: str
    generation: int
    ideas: list[dict[str, Any]]  # Idea dumps of the current generation
    novel: list[dict[str, Any]]  # the ideas that passed the novelty check
    outcomes: Annotated[list[dict[str, Any]], operator.add]  # agent.models.Outcome dumps, one per idea


class IdeaTask(TypedDict, total=False):
    """The payload handed from stage to stage for one idea."""

    run_id: str
    generation: int
    idea: dict[str, Any]
    workdir: str
    timings: dict[str, float]
