"""Record/replay cache of LLM calls, so a run can be replayed offline exactly.

A call is keyed by a hash of what it asks (model, messages, schema name, temperature) plus
how many times this process has already asked exactly that: an ensemble of three identical
review requests records three answers and replays them in order. Entries are JSON files
`<dir>/<key[:2]>/<key>.json` holding the request and the answer text, never headers or keys.

Modes: `off` (no cache), `record` (always call, store the answer), `replay` (never call;
a miss is an error), `auto` (use a hit, else call and store).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import Counter
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel

from agent.errors import ConfigError


class CacheMode(StrEnum):
    off = "off"
    record = "record"
    replay = "replay"
    auto = "auto"


class CacheMiss(ConfigError):
    """Replay mode found no recorded answer for a request."""


class CachedAnswer(BaseModel):
    key: str
    stage: str
    model: str
    request: dict
    content: str
    prompt_tokens: int
    completion_tokens: int


def request_hash(model: str, messages: list[dict[str, str]], schema: str | None, temperature: float) -> str:
    blob = json.dumps(
        {"model": model, "messages": messages, "schema": schema, "temperature": temperature},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class CallCache:
    """A folder of recorded answers; thread-safe; `root=None` or mode `off` caches nothing."""

    def __init__(self, root: Path | None, mode: str | CacheMode = CacheMode.auto):
        try:
            self.mode = CacheMode(mode)
        except ValueError:
            raise ConfigError(f"unknown LLM cache mode {mode!r}: use one of off, record, replay, auto") from None
        if self.mode is not CacheMode.off and root is None:
            if self.mode is CacheMode.replay:
                raise ConfigError("LLM cache mode 'replay' needs a cache folder")
            self.mode = CacheMode.off
        self.root = root
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def reads(self) -> bool:
        return self.mode in (CacheMode.replay, CacheMode.auto)

    @property
    def writes(self) -> bool:
        return self.mode in (CacheMode.record, CacheMode.auto)

    def key(self, base: str) -> str:
        """The key of the next occurrence of the request whose hash is `base`."""
        with self._lock:
            n = self._seen[base]
            self._seen[base] += 1
        return base if n == 0 else hashlib.sha256(f"{base}#{n}".encode()).hexdigest()

    def _file(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, stage: str) -> CachedAnswer | None:
        """The recorded answer, None on a miss (or when not reading); replay raises on a miss."""
        if not self.reads:
            return None
        f = self._file(key)
        if f.is_file():
            return CachedAnswer.model_validate_json(f.read_text())
        if self.mode is CacheMode.replay:
            raise CacheMiss(
                f"LLM replay: no recorded answer for stage {stage!r} (key {key[:12]}) in {self.root}; "
                "the prompts changed since recording, or record first with cache mode 'auto' or 'record'"
            )
        return None

    def forget(self, key: str) -> None:
        """Drop an answer that failed validation, so a resumed run asks again. Only in `auto`:
        `record` keeps everything so that a replay reproduces the failure exactly."""
        if self.mode is CacheMode.auto:
            self._file(key).unlink(missing_ok=True)

    def put(self, answer: CachedAnswer) -> None:
        """Store atomically (temp file + rename), so concurrent runs never read half a file."""
        if not self.writes:
            return
        f = self._file(answer.key)
        f.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=f.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            out.write(answer.model_dump_json(indent=1))
        os.replace(tmp, f)
