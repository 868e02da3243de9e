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


def check_prices(model: str, budget_usd: float | None, *, price_in: float | None = None,
                 price_out: float | None = None, review_model: str | None = None) -> None:
    """Refuse a budget that could not limit anything (a model with no known price), before a
    run starts; make_brain refuses it too, for callers that build a brain directly."""
    if budget_usd is None or model.strip().lower() in OFFLINE_NAMES:
        return
    from agent.brains.llm.prices import PriceTable, given_price, require_price

    table = PriceTable.load(None, given_price(model, price_in, price_out))
    for name in (model, review_model):
        if name:
            require_price(table, name, budget_usd)


def make_brain(
    model: str | None = None,
    base_url: str | None = None,
    *,
    budget_usd: float | None = None,
    ledger: Ledger | None = None,
    cache_dir: Path | None = None,
    cache_mode: str = "auto",
    timeout_s: float = 60.0,
    prices_path: Path | None = None,
    seed: int = 0,
    price_in: float | None = None,
    price_out: float | None = None,
    review_model: str | None = None,
    vision: str = "auto",
    stage_deadline_s: float | None = None,
) -> Brain:
    """The offline brain when no model is configured (flag, then $AI_SCIENTIST_MODEL), else
    an LLM brain for any OpenAI-compatible endpoint (flag, then $AI_SCIENTIST_BASE_URL).

    `ledger` is the caller's record of every LLM call and its cost (the runner's, per run);
    brains keep none of their own. `price_in`/`price_out` price `model` (USD per 1M tokens);
    `review_model` lets another model of the same endpoint review. Raises ConfigError when an
    LLM model has neither an API key nor a base URL, or when `budget_usd` is set for a model
    with no known price (the budget could not limit anything).
    """
    model = (model if model is not None else os.environ.get("AI_SCIENTIST_MODEL", "")).strip()
    if model.lower() in OFFLINE_NAMES:
        from agent.brains.offline.brain import OfflineBrain

        return OfflineBrain(seed=seed)

    if vision not in ("on", "off", "auto"):
        from agent.errors import ConfigError

        raise ConfigError(f"--vision must be on, off or auto, not {vision!r}")
    from agent.brains.llm.brain import LLMBrain
    from agent.brains.llm.cache import CallCache
    from agent.brains.llm.client import LLMClient, resolve_api_key
    from agent.brains.llm.prices import PriceTable, given_price

    base_url = base_url or os.environ.get("AI_SCIENTIST_BASE_URL") or None
    prices = PriceTable.load(prices_path, given_price(model, price_in, price_out))
    shared = dict(base_url=base_url, api_key=resolve_api_key(base_url), ledger=ledger if ledger is not None else Ledger(),
                  prices=prices, budget_usd=budget_usd, cache=CallCache(cache_dir, cache_mode), timeout_s=timeout_s)
    client = LLMClient(model, **shared)
    # The reviewer shares the ledger, so one budget covers both models.
    reviewer = LLMClient(review_model.strip(), **shared) if review_model and review_model.strip() != model else None
    return LLMBrain(client, reviewer=reviewer, vision=vision, stage_deadline_s=stage_deadline_s)
