"""`ai-scientist archive ...` against a real archive folder."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_archive import make_entry
from typer.testing import CliRunner

from agent.archive.store import Archive
from agent.archive.web.server import HOST, serve_in_thread
from agent.commands.archive_cmd import app

runner = CliRunner()
HOUR = timedelta(hours=1)


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    arch = Archive(tmp_path / "archive")
    t0 = datetime(2025, 5, 1, 23, 0, tzinfo=UTC)
    arch.add(make_entry(tmp_path, "low_idea", overall=3), render=False, created_at=t0)
    arch.add(
        make_entry(tmp_path, "high_idea", overall=8, decision="Accept"), render=False, created_at=t0 + HOUR
    )
    arch.add(make_entry(tmp_path, "grok_idea", template="grokking", overall=5), created_at=t0 + 2 * HOUR)
    return arch


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_list_json_sorted_and_filtered(archive: Archive) -> None:
    rows = json.loads(invoke("--archive", str(archive.root), "list", "--json"))
    assert [r["idea_name"] for r in rows] == ["high_idea", "grok_idea", "low_idea"]
    rows = json.loads(invoke("list", "--json", "--template", "grokking", "--archive", str(archive.root)))
    assert [r["idea_name"] for r in rows] == ["grok_idea"]
    table = invoke("--archive", str(archive.root), "list", "--sort", "date")
    ids = [r.id for r in archive.list(sort="date")]
    assert [r.idea_name for r in archive.list(sort="date")] == ["grok_idea", "high_idea", "low_idea"]
    assert [table.index(i) for i in ids] == sorted(table.index(i) for i in ids)  # ids print whole, in order


def test_archive_location_from_environment(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_SCIENTIST_ARCHIVE", str(archive.root))
    assert len(json.loads(invoke("list", "--json"))) == 3


def test_show_prints_scores_review_paths_and_diff_stat(archive: Archive) -> None:
    paper_id = archive.list()[0].id
    out = invoke("--archive", str(archive.root), "show", paper_id)
    assert "overall 8.0/10, Accept" in out and "soundness 3.0" in out
    assert "Clear hypothesis" in out and "Only one dataset" in out  # strengths, weaknesses
    assert str(archive.folder(paper_id) / "paper.pdf") in out
    assert "experiment.py  +1 -1" in out and "1 file(s) changed" in out


def test_export_copies_the_folder(archive: Archive, tmp_path: Path) -> None:
    paper_id = archive.list()[0].id
    out = invoke("--archive", str(archive.root), "export", paper_id, "--to", str(tmp_path / "out"))
    target = tmp_path / "out" / paper_id
    assert out.strip() == str(target)
    assert (target / "paper.pdf").read_bytes() == (archive.folder(paper_id) / "paper.pdf").read_bytes()
    assert (target / "workdir.bundle").is_file() and (target / "meta.json").is_file()


def test_rebuild_index_reports_damage(archive: Archive) -> None:
    broken = archive.list()[-1].id
    (archive.folder(broken) / "meta.json").write_text("garbled")
    archive.index_path.unlink()
    result = runner.invoke(app, ["--archive", str(archive.root), "rebuild-index"])
    assert result.exit_code == 0
    assert (
        "indexed 2 paper(s)" in result.output
        and f"skipped {broken}: meta.json is unreadable" in result.output
    )


def test_unknown_id_is_one_line_and_exit_2(archive: Archive) -> None:
    """Through the real console entry point: a UserError, not a traceback."""
    cmd = [sys.executable, "-m", "agent.cli", "archive", "--archive", str(archive.root), "show", "no-such-id"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: no paper 'no-such-id' in {archive.root}; see `ai-scientist archive list`"
    ]


def test_missing_archive_folder_is_a_user_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--archive", str(tmp_path / "nowhere"), "list"])
    assert result.exit_code != 0 and "no archive at" in str(result.exception)


def test_server_listens_on_loopback_only_and_hides_dotfiles(archive: Archive) -> None:
    server, thread = serve_in_thread(archive.root)
    try:
        host, port = server.server_address[:2]
        assert host == HOST == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as r:
            assert r.status == 200 and b"high_idea" in r.read()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/.render.lock", timeout=10)
        assert err.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
