"""The two brains behind one interface, and `make_brain` that picks one from the settings.

    make_brain()                                   -> OfflineBrain (no key, no network)
    make_brain("gpt-4o-mini", budget_usd=5)        -> LLMBrain over the OpenAI API
    make_brain("llama3.1", "http://localhost:11434/v1")   -> LLMBrain over Ollama (no key needed)
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.brains.base import Brain
from agent.brains.llm.ledger import Ledger

OFFLINE_NAMES = ("", "offline")


def make_brain(
    model: str | None = None,
    base_url: str | None = None,
    *,
    budget_usd: float | None = None,
    ledger: Ledger | None = None,
    cache_dir: Path | None = None,
    cache_mode: str = "auto",
    timeout_s: float = 120.0,
    prices_path: Path | None = None,
    seed: int = 0,
) -> Brain:
    """The offline brain when no model is configured (flag, then $AI_SCIENTIST_MODEL), else
    an LLM brain for any OpenAI-compatible endpoint (flag, then $AI_SCIENTIST_BASE_URL).

    `ledger` is the caller's record of every LLM call and its cost (the runner's, per run);
    brains keep none of their own. Raises ConfigError when an LLM model has neither an API key
    nor a base URL.
    """
    model = (model if model is not None else os.environ.get("AI_SCIENTIST_MODEL", "")).strip()
    if model.lower() in OFFLINE_NAMES:
        from agent.brains.offline.brain import OfflineBrain

        return OfflineBrain(seed=seed)

    from agent.brains.llm.brain import LLMBrain
    from agent.brains.llm.cache import CallCache
    from agent.brains.llm.client import LLMClient, resolve_api_key

    base_url = base_url or os.environ.get("AI_SCIENTIST_BASE_URL") or None
    client = LLMClient(
        model,
        base_url=base_url,
        api_key=resolve_api_key(base_url),
        ledger=ledger if ledger is not None else Ledger(),
        prices_path=prices_path,
        budget_usd=budget_usd,
        cache=CallCache(cache_dir, cache_mode),
        timeout_s=timeout_s,
    )
    return LLMBrain(client)
