"""Token and cost accounting: one JSONL line per LLM call, summed by stage and by idea.

The ledger lives in `experiments/<run_id>/usage.jsonl`, so a resumed run knows what it has
already spent. Lines hold counts and prices only: never prompts, answers or keys.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel


class Call(BaseModel):
    stage: str
    idea: str = ""
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int = 0
    """Prompt tokens the endpoint served from its prefix cache (part of prompt_tokens)."""
    cost_usd: float
    cached: bool = False
    ok: bool = True
    error: str = ""


class Ledger:
    """Thread-safe record of calls; `path=None` keeps it in memory only."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self._lock = threading.Lock()
        self.calls: list[Call] = []
        if path is not None and path.is_file():
            self.calls = [Call.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]

    def add(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as f:
                    f.write(call.model_dump_json() + "\n")

    @property
    def total_usd(self) -> float:
        return sum(c.cost_usd for c in self.calls)

    def summary(self, idea: str | None = None) -> dict:
        """Totals and a per-stage breakdown, for `cost.json` (one idea, or the whole run)."""
        calls = [c for c in self.calls if idea is None or c.idea == idea]
        by_stage: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for c in calls:
            s = by_stage[c.stage]
            s["calls"] += 1
            s["prompt_tokens"] += c.prompt_tokens
            s["completion_tokens"] += c.completion_tokens
            s["cached_prompt_tokens"] += c.cached_prompt_tokens
            s["cost_usd"] += c.cost_usd
        return {
            "calls": len(calls),
            "prompt_tokens": sum(c.prompt_tokens for c in calls),
            "completion_tokens": sum(c.completion_tokens for c in calls),
            "cached_prompt_tokens": sum(c.cached_prompt_tokens for c in calls),
            "cost_usd": round(sum(c.cost_usd for c in calls), 6),
            "failed_calls": sum(not c.ok for c in calls),
            "by_stage": {k: dict(v) for k, v in by_stage.items()},
        }

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(self.summary(), indent=2))
