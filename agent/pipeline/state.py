"""The graph's typed state. Nodes return only the keys they change; `outcomes` accumulates.

Per-idea stages receive a small `IdeaTask` payload through `Send`, not the whole state.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class Outcome(TypedDict):
    """How one idea ended: archived as a paper, or stopped at a stage, and why."""

    idea: str
    title: str
    status: str  # archived | failed | skipped
    stage: str
    reason: str
    paper_id: str | None
    score: float | None


class RunState(TypedDict, total=False):
    run_id: str
    generation: int
    ideas: list[dict[str, Any]]  # Idea dumps of the current generation
    novel: list[dict[str, Any]]  # the ideas that passed the novelty check
    outcomes: Annotated[list[Outcome], operator.add]


class IdeaTask(TypedDict, total=False):
    """The payload handed from stage to stage for one idea."""

    run_id: str
    generation: int
    idea: dict[str, Any]
    workdir: str
    timings: dict[str, float]
