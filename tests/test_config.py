"""Settings precedence: flags over environment over ai-scientist.toml; bad values exit 2."""

from pathlib import Path

import pytest

from agent.config import load_settings
from agent.errors import ConfigError


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "ai-scientist.toml"
    cfg.write_text('[run]\nnum_ideas = 4\nparallel = 3\nmodel = "from-file"\n')
    monkeypatch.setenv("AI_SCIENTIST_MODEL", "from-env")
    s = load_settings({"template": "t", "parallel": 1}, cfg)
    assert (s.num_ideas, s.parallel, s.model) == (4, 1, "from-env")
    assert not s.offline and not s.literature_offline


def test_offline_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AI_SCIENTIST_MODEL", raising=False)
    s = load_settings({"template": "t"}, tmp_path / "none.toml")
    assert s.offline and s.literature_offline


def test_bad_value_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="parallel"):
        load_settings({"template": "t", "parallel": 0}, tmp_path / "none.toml")
