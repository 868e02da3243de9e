"""Calibration examples for a reviewer: short excerpts of two accepted and two rejected ICLR
2022 submissions with their mean human score (`calibration.json`, sources noted there). The
LLM reviewer's prompt shows them; review-bench never scores them, since the reviewer has seen
them."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from pydantic import BaseModel

DATA = Path(__file__).resolve().parent / "calibration.json"


class Example(BaseModel):
    id: str
    title: str
    decision: str
    mean_score: float
    scores: list[float]
    abstract: str
    introduction: str
    conclusion: str

    @property
    def accepted(self) -> bool:
        return self.decision.startswith("Accept")


@functools.cache
def examples() -> tuple[Example, ...]:
    return tuple(Example.model_validate(p) for p in json.loads(DATA.read_text())["papers"])


def ids() -> set[str]:
    """The review-bench paper ids of the examples."""
    return {e.id for e in examples()}
