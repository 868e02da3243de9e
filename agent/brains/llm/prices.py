"""The price table: USD per 1M input and output tokens, by model name or name prefix.

The built-in table is `agent/data/prices.json`. A user file (`AI_SCIENTIST_PRICES=path`, or
the `path` argument) has the same shape and its entries win. A model matches its exact name,
else the longest key its name starts with (so `gpt-4o-mini-2024-07-18` is `gpt-4o-mini`),
also after dropping a `provider/` prefix. Unknown models cost 0, with one warning each; a
budget cannot be enforced on them, so `require_price` refuses one (`--price-in/--price-out`
give a price on the command line). `cached_input` prices prompt tokens the provider served
from its prefix cache (the input price when absent).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from agent.errors import ConfigError

log = logging.getLogger(__name__)
BUILTIN = Path(__file__).resolve().parent / "prices.json"
ENV_VAR = "AI_SCIENTIST_PRICES"


class Price(BaseModel):
    input: float = Field(ge=0, description="USD per 1M prompt tokens")
    output: float = Field(ge=0, description="USD per 1M completion tokens")
    cached_input: float | None = Field(default=None, ge=0, description="USD per 1M cached prompt tokens")
    context: int | None = Field(default=None, gt=0, description="The model's context window, in tokens")


class PriceFile(BaseModel):
    models: dict[str, Price]


def _read(path: Path) -> dict[str, Price]:
    try:
        return PriceFile.model_validate_json(path.read_text()).models
    except FileNotFoundError:
        raise ConfigError(f"price table {path} does not exist: fix {ENV_VAR} or the --prices path") from None
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(map(str, err["loc"]))
        raise ConfigError(
            f'price table {path}: {where}: {err["msg"]} (expected {{"models": {{"NAME": {{"input": USD, "output": USD}}}}}})'
        ) from None


class PriceTable:
    """Looks up prices; warns once per unknown model."""

    def __init__(self, models: dict[str, Price]):
        self.models = models
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | None = None, given: dict[str, Price] | None = None) -> PriceTable:
        """The built-in table, overlaid by `path` or else the file named by $AI_SCIENTIST_PRICES,
        then by `given` (prices from the command line)."""
        models = _read(BUILTIN)
        override = path or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
        if override is not None:
            models.update(_read(override))
        models.update(given or {})
        return cls(models)

    def lookup(self, model: str) -> Price | None:
        for name in (model, model.rsplit("/", 1)[-1]):
            if name in self.models:
                return self.models[name]
            prefixes = [k for k in self.models if name.startswith(k)]
            if prefixes:
                return self.models[max(prefixes, key=len)]
        return None

    def context(self, model: str) -> int:
        """The model's context window: from the table, else 128k for a priced (hosted) model,
        else 32k, which local servers commonly configure."""
        price = self.lookup(model)
        if price is not None and price.context:
            return price.context
        return 128_000 if price is not None else 32_768

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        price = self.lookup(model)
        if price is None:
            with self._lock:
                if model not in self._warned:
                    self._warned.add(model)
                    log.warning(
                        "no price for model %r: its calls are counted in tokens but cost 0 "
                        "(add it to a price file named by %s)",
                        model,
                        ENV_VAR,
                    )
            return 0.0
        cached = min(cached_tokens, prompt_tokens)
        cached_price = price.input if price.cached_input is None else price.cached_input
        return ((prompt_tokens - cached) * price.input + cached * cached_price + completion_tokens * price.output) / 1e6


def given_price(model: str, price_in: float | None, price_out: float | None) -> dict[str, Price]:
    """The price the command line gives for `model` (both halves, or neither)."""
    if price_in is None and price_out is None:
        return {}
    if price_in is None or price_out is None:
        raise ConfigError("give both --price-in and --price-out (USD per 1M prompt and completion tokens)")
    return {model: Price(input=price_in, output=price_out)}


def require_price(table: PriceTable, model: str, budget_usd: float | None) -> None:
    """A budget needs a price: without one every call would cost $0 and the cap would limit nothing."""
    if budget_usd is not None and table.lookup(model) is None:
        raise ConfigError(
            f"--budget-usd cannot be enforced: model {model!r} has no known price; give one with --price-in "
            f"and --price-out (USD per 1M tokens) or in a price file named by {ENV_VAR}"
        )
