"""Fixtures of the adversarial sandbox suite; the helpers live in tests/sandbox/hostile.py."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox.hostile import CANARY, Site

BASE = Path("/var/tmp")


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A fresh site under /var/tmp: like a real project, it lies outside /tmp (which the sandbox
    replaces with its own), so a write that gets through would land on the real disk."""
    tmp_path = Path(
        tempfile.mkdtemp(prefix="ai-scientist-sandbox-test-", dir=BASE if BASE.is_dir() else None)
    )
    home = tmp_path / "home"
    project = tmp_path / "project"
    workdir = project / "experiments" / "run_this" / "idea_1"
    outside = project / "experiments" / "run_this" / "outside"
    secret_files = {
        home / ".ssh" / "id_rsa": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{CANARY}\n",
        home / ".config" / "ai-scientist" / "credentials": f"api_key = {CANARY}\n",
        project / ".env": f"OPENAI_API_KEY={CANARY}\n",
        project / "archive" / "0001" / "review.json": f'{{"note": "{CANARY}"}}\n',
        project / "experiments" / "run_other" / "idea_9" / "notes.md": f"other run {CANARY}\n",
        outside / "keep.txt": f"neighbour {CANARY}\n",
    }
    for path, text in secret_files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    config = project / "ai-scientist.toml"
    config.write_text("[sandbox]\ntimeout_s = 2\n")
    workdir.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    yield Site(tmp_path, home, project, workdir, outside, list(secret_files), config)
    shutil.rmtree(tmp_path, ignore_errors=True)
