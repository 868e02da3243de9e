"""The price table: USD per 1M input and output tokens, by model name or name prefix.

The built-in table is `agent/data/prices.json`. A user file (`AI_SCIENTIST_PRICES=path`, or
the `path` argument) has the same shape and its entries win. A model matches its exact name,
else the longest key its name starts with (so `gpt-4o-mini-2024-07-18` is `gpt-4o-mini`),
also after dropping a `provider/` prefix. Unknown models cost 0, with one warning each.
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
    def load(cls, path: Path | None = None) -> PriceTable:
        """The built-in table, overlaid by `path` or else the file named by $AI_SCIENTIST_PRICES."""
        models = _read(BUILTIN)
        override = path or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
        if override is not None:
            models.update(_read(override))
        return cls(models)

    def lookup(self, model: str) -> Price | None:
        for name in (model, model.rsplit("/", 1)[-1]):
            if name in self.models:
                return self.models[name]
            prefixes = [k for k in self.models if name.startswith(k)]
            if prefixes:
                return self.models[max(prefixes, key=len)]
        return None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
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
        return (prompt_tokens * price.input + completion_tokens * price.output) / 1e6
