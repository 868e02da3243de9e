"""Progress: nodes emit small events; the CLI folds them into a status board that is shown
live (rich) and saved to `experiments/<run_id>/status.json` for `ai-scientist status`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from rich.table import Table

STATUS_FILE = "status.json"


def emit(idea: str, stage: str, **fields: Any) -> None:
    """Send a progress event to the stream, if the caller runs inside a graph."""
    from langgraph.config import get_stream_writer

    try:
        writer = get_stream_writer()
    except RuntimeError:  # called outside a graph run (tests, tools): nothing listens
        return
    writer({"idea": idea, "stage": stage, "time": time.time(), **fields})


class StatusBoard:
    """Latest state of each idea, persisted atomically after every event."""

    def __init__(self, run_dir: Path, run_id: str, template: str):
        self.path = run_dir / STATUS_FILE
        self._lock = threading.Lock()
        old = read_status(run_dir) or {}
        self.data: dict[str, Any] = {
            "run_id": run_id,
            "template": template,
            "started": old.get("started", time.time()),
            "ideas": old.get("ideas", {}),
            "state": "running",
            "pid": os.getpid(),
        }

    def update(self, event: dict[str, Any]) -> None:
        with self._lock:
            row = self.data["ideas"].setdefault(event["idea"], {"since": event["time"]})
            if row.get("stage") != event["stage"]:
                row["stage_since"] = event["time"]
            row.update({k: v for k, v in event.items() if k not in ("idea", "time")})
            row["updated"] = event["time"]
            self._save()

    def finish(self, state: str) -> None:
        with self._lock:
            self.data["state"] = state
            self.data["ended"] = time.time()
            self._save()

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)

    def table(self) -> Table:
        return render(self.data)


def read_status(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / STATUS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def search_cell(search: Any) -> str:
    """An idea's tree search in a few words: its stage, nodes done, buggy ones, best so far."""
    if not isinstance(search, dict):
        return ""
    best = search.get("best")
    best_text = f", best {best:.4g} (n{search.get('best_node')})" if isinstance(best, int | float) else ""
    return (f"{search.get('stage', '?')}: {search.get('nodes', 0)}/{search.get('budget', '?')} nodes, "
            f"{search.get('buggy', 0)} buggy{best_text}")


def render(data: dict[str, Any], now: float | None = None) -> Table:
    """One row per idea: stage, run, elapsed, cost, its search (--search tree), and the latest message."""
    now = now or time.time()
    end = data.get("ended") or now
    table = Table(title=f"run {data['run_id']} · {data['template']} · {data.get('state', '?')} · "
                  f"{_dur(end - data['started'])}", expand=False)
    searching = any("search" in row for row in data["ideas"].values())
    for col in ("idea", "stage", "run", "elapsed", "cost $", *(["search"] if searching else []), "note"):
        table.add_column(col, overflow="fold")
    for name, row in data["ideas"].items():
        table.add_row(
            name,
            row.get("stage", ""),
            str(row.get("run", "")),
            _dur((row.get("updated", now) if row.get("stage") in ("done", "failed") else now) - row.get("since", now)),
            f"{row.get('cost_usd', 0.0):.3f}",
            *([search_cell(row.get("search"))] if searching else []),
            str(row.get("note", ""))[:60],
        )
    return table


def _dur(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
