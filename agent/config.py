"""Run settings: flags override environment variables, which override `ai-scientist.toml`.

Settings are saved (without secrets) in `experiments/<run_id>/settings.json`, so `resume`
continues with exactly what the run started with, except what the user overrides then.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from agent.errors import ConfigError

CONFIG_FILE = "ai-scientist.toml"
# Environment variables that set a field, besides AI_SCIENTIST_<FIELD>.
ENV_ALIASES = {"model": "AI_SCIENTIST_MODEL", "base_url": "AI_SCIENTIST_BASE_URL", "archive": "AI_SCIENTIST_ARCHIVE"}


class RunSettings(BaseModel):
    """Everything one `ai-scientist run` needs. API keys are never a field: they stay in the environment."""

    template: str = Field(description="Template name or folder")
    num_ideas: int = Field(default=2, ge=1, le=50, description="Ideas per generation")
    generations: int = Field(default=1, ge=1, le=20, description="Ideate -> archive loops; later ones read the archive")
    model: str = Field(default="offline", description="'offline', or any model name of the endpoint")
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint; None means OpenAI")
    scale: Literal["smoke", "full"] = "smoke"
    parallel: int = Field(default=1, ge=1, le=64, description="Ideas worked on at once")
    budget_usd: float | None = Field(default=None, gt=0, description="Hard cap on LLM spend for the run")
    archive: Path = Field(default=Path("archive"), description="Knowledge archive folder")
    experiments: Path = Field(default=Path("experiments"), description="Where run folders go")
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    max_runs: int = Field(default=5, ge=1, le=20, description="Runs per idea with --search linear (besides the baseline)")
    max_fixes: int = Field(default=4, ge=0, le=10, description="Fix attempts per failed run")
    reviewers: int = Field(default=5, ge=1, le=10, description="Reviews in the ensemble (sampled at temperature > 0)")
    review_reflections: int = Field(default=3, ge=0, le=10, description="Reflection rounds of the meta-review")
    review_model: str | None = Field(default=None, description="The reviewers' model (default: the writer's)")
    idea_reflections: int = Field(default=3, ge=0, le=10, description="Reflection rounds per idea's conversation")
    novelty_rounds: int = Field(default=10, ge=1, le=30, description="Search rounds of the novelty check")
    citation_rounds: int = Field(default=20, ge=0, le=50, description="Citation search rounds of the writeup")
    vision: Literal["on", "off", "auto"] = Field(
        default="auto", description="Show figures to the model: auto = when the endpoint takes images (probed once)"
    )
    price_in: float | None = Field(default=None, ge=0, description="USD per 1M prompt tokens of --model")
    price_out: float | None = Field(default=None, ge=0, description="USD per 1M completion tokens of --model")
    llm_timeout_s: float = Field(default=60.0, gt=0, le=3600, description="Per-call timeout of the LLM endpoint")
    llm_stage_deadline_s: float = Field(
        default=1800.0, gt=0, description="Deadline of all LLM calls of one brain step (a section, a review, ...)"
    )
    search: Literal["tree", "linear"] = Field(
        default="tree", description="tree: best-first search over code states, confirmed on fresh seeds; "
        "linear: up to --max-runs runs in a line (no confirmation)")
    # 8: about the compute of --max-runs 5, since screening runs use one seed in three
    search_budget: int = Field(default=8, ge=3, le=500,
                               description="Runs per idea with --search tree, the two confirmation runs included")
    parallel_runs: int = Field(default=1, ge=1, le=64, description="Runs of one idea's search at once")
    search_minutes: float | None = Field(
        default=None, gt=0, description="Wall-clock cap on one idea's exploration; confirmation still runs")
    search_debug_prob: float = Field(default=0.5, ge=0, le=1, description="Chance that a buggy node is debugged")
    search_debug_depth: int = Field(default=3, ge=0, le=10, description="Debug attempts in a row, at most")
    improve: bool = Field(default=False, description="Revise the paper from its review, then review again")
    literature: Literal["auto", "online", "offline"] = Field(
        default="auto", description="Literature search: auto = online for an LLM brain, offline for the offline brain"
    )
    unsafe_no_sandbox: bool = Field(default=False, description="Run LLM-written code WITHOUT bubblewrap")
    llm_cache: Literal["off", "record", "replay", "auto"] = "auto"
    seed: int = 0

    @property
    def offline(self) -> bool:
        return self.model in ("", "offline")

    @property
    def literature_offline(self) -> bool:
        return self.literature == "offline" or (self.literature == "auto" and self.offline)


def load_settings(flags: dict, config_file: Path | None = None) -> RunSettings:
    """Merge the TOML file, the environment and the flags (None-valued flags are unset)."""
    merged: dict = {}
    path = config_file or Path(CONFIG_FILE)
    if path.is_file():
        try:
            merged.update(tomllib.loads(path.read_text()).get("run", {}))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: {e}") from None
    for name in RunSettings.model_fields:
        env = os.environ.get(ENV_ALIASES.get(name, f"AI_SCIENTIST_{name.upper()}"))
        if env:
            merged[name] = env
    merged.update({k: v for k, v in flags.items() if v is not None})
    try:
        return RunSettings(**merged)
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(f"setting {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def experiments_root(flag: Path | None = None) -> Path:
    """Where runs live, for commands that take no RunSettings (resume, status)."""
    return flag or Path(os.environ.get("AI_SCIENTIST_EXPERIMENTS") or "experiments")
