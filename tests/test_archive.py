"""The knowledge archive: atomic folders, the SQLite index, concurrency, rebuild, migration, HTML.

Helpers at the top (`make_entry`, `minimal_pdf`, `tiny_png`) are shared with
test_archive_cli.py and test_browser.py.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import re
import sqlite3
import struct
import subprocess
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from agent.archive import index as ix
from agent.archive.store import Archive, PaperEntry, default_archive_root
from agent.archive.web.diff import classify, diff_stat
from agent.errors import UserError
from agent.models import Outcome

# ---------------------------------------------------------------- shared helpers

REVIEW = {
    "summary": "The paper varies the noise schedule of a 2-D DDPM.",
    "strengths": ["Clear hypothesis", "Five seeds per setting"],
    "weaknesses": ["Only one dataset"],
    "originality": 2,
    "quality": 3,
    "clarity": 3,
    "significance": 2,
    "questions": ["Does the effect hold for larger models?"],
    "limitations": ["Smoke scale only"],
    "ethical_concerns": False,
    "soundness": 3,
    "presentation": 4,
    "contribution": 2,
    "overall": 5,
    "confidence": 4,
    "decision": "Reject",
}
DIFF = (
    "diff --git a/experiment.py b/experiment.py\n"
    "--- a/experiment.py\n+++ b/experiment.py\n"
    "@@ -1,3 +1,3 @@\n import torch\n-BETA_SCHEDULE = 'linear'\n+BETA_SCHEDULE = 'cosine'\n x = 1\n"
)


def minimal_pdf(text: str = "Hello archive") -> bytes:
    """A small but valid one-page PDF (correct xref offsets), written by hand."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def tiny_png(width: int = 4, height: int = 3, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A valid RGB PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_paper_dir(path: Path, pdf: bytes | None = None, figures: dict[str, bytes] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "paper.pdf").write_bytes(pdf if pdf is not None else minimal_pdf())
    (path / "paper.tex").write_text("\\documentclass{article}\\begin{document}Hi\\end{document}\n")
    (path / "scratch.aux").write_text("not archived")
    for name, data in (figures if figures is not None else {"loss.png": tiny_png()}).items():
        (path / name).write_bytes(data)
    return path


def make_entry(
    tmp: Path,
    idea_name: str = "cosine_schedule",
    *,
    run_id: str = "run-a",
    template: str = "2d_diffusion",
    overall: float = 5,
    decision: str = "Reject",
    title: str | None = None,
    paper_dir: Path | None = None,
    faithful: bool = True,
    brain: str = "offline",
    model: str = "offline",
) -> PaperEntry:
    """A complete entry with real (small) files, as the pipeline would hand it over."""
    paper = paper_dir or make_paper_dir(tmp / f"paper-{run_id}-{idea_name}")
    bundle = tmp / f"{run_id}-{idea_name}.bundle"
    bundle.write_bytes(b"# v2 git bundle\n")
    title = title or f"Does {idea_name.replace('_', ' ')} help?"
    meta_review = {**copy.deepcopy(REVIEW), "overall": int(overall), "decision": decision}
    return PaperEntry(
        run_id=run_id,
        template=template,
        scale="smoke",
        idea={
            "name": idea_name,
            "title": title,
            "hypothesis": f"Changing {idea_name} lowers the KL divergence.",
            "experiment": "Sweep it over 3 seeds.",
            "interestingness": 6,
            "feasibility": 8,
            "novelty": 5,
            "knobs": ["beta_schedule"],
        },
        title=title,
        review={
            "meta": meta_review,
            "reviews": [copy.deepcopy(REVIEW), meta_review],
            "faithfulness": {"checked": 12, "unmatched": []},
        },
        overall=overall,
        decision=decision,
        brain=brain,
        model=model,
        cost={
            "cost_usd": 0.0125,
            "calls": 3,
            "prompt_tokens": 900,
            "completion_tokens": 300,
            "by_stage": {
                "writeup": {"calls": 3, "prompt_tokens": 900, "completion_tokens": 300, "cost_usd": 0.0125}
            },
        },
        timings={"experiment": 42.0, "writeup": 7.5},
        faithful=faithful,
        paper_dir=paper,
        results={"run_0": {"circle": {"means": {"kl": 0.31}}}, "analysis": {"effect": -0.04}},
        notes="# Notes\nrun_1: cosine schedule.\n",
        code_diff=DIFF,
        bundle_path=bundle,
        meta={"figures": [{"file": "loss.png", "caption": "Training loss"}], "versions": {"torch": "2.13.0"}},
    )


def folders(root: Path) -> list[Path]:
    return [d for d in root.iterdir() if d.is_dir() and d.name != "assets"]


# ---------------------------------------------------------------- writing


def test_add_writes_a_complete_folder_and_an_index_row(tmp_path: Path) -> None:
    arch = Archive(tmp_path / "archive")
    paper_id = arch.add(make_entry(tmp_path, overall=6))

    folder = arch.folder(paper_id)
    expected = {
        "paper.pdf",
        "paper.tex",
        "loss.png",
        "idea.json",
        "results.json",
        "review.json",
        "notes.md",
        "cost.json",
        "meta.json",
        "code.diff",
        "workdir.bundle",
        "index.html",
    }
    assert {p.name for p in folder.iterdir()} == expected  # scratch.aux is not archived
    meta = json.loads((folder / "meta.json").read_text())
    assert (meta["brain"], meta["model"], meta["template"], meta["scale"]) == (
        "offline",
        "offline",
        "2d_diffusion",
        "smoke",
    )
    assert meta["faithful"] is True and meta["timings"] == {"experiment": 42.0, "writeup": 7.5}
    assert meta["versions"]["torch"] == "2.13.0" and "python" in meta["versions"]
    assert meta["figures"][0]["caption"] == "Training loss"
    assert (folder / "paper.pdf").read_bytes().startswith(b"%PDF")
    assert json.loads((folder / "review.json").read_text())["meta"]["overall"] == 6

    row = arch.get(paper_id)
    assert (row.template, row.idea_name, row.overall, row.decision) == (
        "2d_diffusion",
        "cosine_schedule",
        6,
        "Reject",
    )
    assert (row.soundness, row.presentation, row.confidence) == (3, 4, 4)
    assert row.cost_usd == 0.0125 and row.faithful is True and row.total_s == 49.5
    assert row.knobs == ["beta_schedule"] and row.brain == "offline"
    assert paper_id.split("-")[2:4] == ["2d_diffusion", "cosine_schedule"]
    assert not list((tmp_path / "archive").glob(".tmp-*")), "temporary folders must not be left behind"
    assert paper_id in (tmp_path / "archive" / "index.html").read_text()


def test_add_is_idempotent_on_run_and_idea(tmp_path: Path) -> None:
    arch = Archive(tmp_path / "archive")
    first = arch.add(make_entry(tmp_path))
    again = arch.add(make_entry(tmp_path))  # a resumed run archiving the same idea
    other_run = arch.add(make_entry(tmp_path, run_id="run-b"))

    assert again == first and other_run != first
    assert len(arch.list()) == 2 and len(folders(arch.root)) == 2


def test_folder_renamed_but_never_indexed_is_reused(tmp_path: Path) -> None:
    """A crash between the rename and the index insert: the retry indexes the same folder."""
    arch = Archive(tmp_path / "archive")
    paper_id = arch.add(make_entry(tmp_path))
    with sqlite3.connect(arch.index_path) as db:
        db.execute("DELETE FROM papers")

    assert arch.add(make_entry(tmp_path)) == paper_id
    assert [r.id for r in arch.list()] == [paper_id] and len(folders(arch.root)) == 1


def _append_many(root: str, worker: int, count: int) -> None:
    """Runs in a child process: archive `count` papers, rendering after each."""
    tmp = Path(root).parent / f"w{worker}"
    tmp.mkdir()
    arch = Archive(Path(root))
    for i in range(count):
        arch.add(
            make_entry(tmp, f"idea_w{worker}_{i}", run_id=f"run-{worker}", overall=(worker + i) % 10 + 1)
        )


def _append_same(root: str, worker: int, barrier: Any) -> None:
    tmp = Path(root).parent / f"s{worker}"
    tmp.mkdir()
    entry = make_entry(tmp, "same_idea", run_id="run-shared")
    barrier.wait()
    Archive(Path(root)).add(entry)


def _run_processes(target: Callable[..., None], args_list: list[tuple]) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_concurrent_appends_from_several_processes(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    _run_processes(_append_many, [(str(root), w, 5) for w in range(4)])

    arch = Archive(root)
    rows = arch.list()
    assert len(rows) == 20 and len({r.id for r in rows}) == 20
    assert sorted(d.name for d in folders(root)) == sorted(r.id for r in rows)
    for r in rows:  # every folder is whole and matches its row
        meta = json.loads((root / r.id / "meta.json").read_text())
        assert (meta["run_id"], meta["idea_name"]) == (r.run_id, r.idea_name)
        assert (root / r.id / "paper.pdf").read_bytes() == minimal_pdf()
    assert not list(root.glob(".tmp-*"))
    with sqlite3.connect(root / "index.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    lines = (root / "outcomes.jsonl").read_text().splitlines()
    assert len(lines) == 20 and all(json.loads(line)["status"] == "archived" for line in lines)
    # The last render ran after the last insert, so the page lists every paper.
    assert (root / "index.html").read_text().count("<tr data-id=") == 20


def test_concurrent_adds_of_the_same_idea_keep_one_paper(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    Archive(root).list()  # create the index first so the racers only race on the paper
    barrier = multiprocessing.get_context("spawn").Barrier(3)
    _run_processes(_append_same, [(str(root), w, barrier) for w in range(3)])

    rows = Archive(root).list()
    assert len(rows) == 1
    assert [d.name for d in folders(root)] == [rows[0].id]


# ---------------------------------------------------------------- reading


def test_list_sorts_filters_and_feeds_ideation(tmp_path: Path) -> None:
    arch = Archive(tmp_path / "archive")
    t0 = datetime(2025, 3, 1, 22, 0, tzinfo=UTC)
    arch.add(make_entry(tmp_path, "old_good", overall=8, decision="Accept"), created_at=t0, render=False)
    arch.add(make_entry(tmp_path, "new_bad", overall=3), created_at=t0 + timedelta(hours=1), render=False)
    arch.add(
        make_entry(tmp_path, "grok_mid", template="grokking", overall=5), created_at=t0 + timedelta(hours=2)
    )

    assert [r.idea_name for r in arch.list()] == ["old_good", "grok_mid", "new_bad"]
    assert [r.idea_name for r in arch.list(sort="date")] == ["grok_mid", "new_bad", "old_good"]
    assert [r.idea_name for r in arch.list(template="2d_diffusion")] == ["old_good", "new_bad"]
    assert arch.list()[0].created_at == "2025-03-01T22:00:00Z"

    past = arch.past_ideas("2d_diffusion")
    assert {p.name: (p.score, p.decision) for p in past} == {
        "old_good": (8, "Accept"),
        "new_bad": (3, "Reject"),
    }
    assert past[0].hypothesis.startswith("Changing") and past[0].knobs == ["beta_schedule"]

    with pytest.raises(UserError, match="no paper"):
        arch.get("20990101-nope")
    assert arch.get(arch.list()[0].id[:-3]).idea_name == "old_good"  # unique prefix


def test_default_root_prefers_flag_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI_SCIENTIST_ARCHIVE", raising=False)
    assert default_archive_root() == Path("archive")
    monkeypatch.setenv("AI_SCIENTIST_ARCHIVE", str(tmp_path / "env"))
    assert default_archive_root() == tmp_path / "env"
    assert default_archive_root(tmp_path / "flag") == tmp_path / "flag"


# ---------------------------------------------------------------- rebuild and damage


def test_rebuild_index_after_deleting_it(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    arch = Archive(root)
    for n, name in enumerate(["a_idea", "b_idea", "c_idea"]):
        arch.add(make_entry(tmp_path, name, overall=n + 4))
    arch.record_outcome(Outcome(run_id="run-a", template="2d_diffusion", idea_name="d_idea", title="Will not run", stage="experiment", status="failed", reason="run_1 timed out"))
    before = [r.model_dump() for r in arch.list()]
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (root / name).unlink(missing_ok=True)

    fresh = Archive(root)
    report = fresh.rebuild_index()
    assert sorted(report.indexed) == sorted(r["id"] for r in before) and report.damaged == []
    assert [r.model_dump() for r in fresh.list()] == before
    failed = [o for o in fresh.outcomes() if o.status == "failed"]
    assert [(o.idea_name, o.stage, o.reason) for o in failed] == [("d_idea", "experiment", "run_1 timed out")]
    assert report.outcomes == 4


def test_damaged_folders_are_reported_not_crashed_on(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    arch = Archive(root)
    ids = [arch.add(make_entry(tmp_path, f"idea_{i}")) for i in range(4)]
    (root / ids[0] / "meta.json").write_text("{ this is not json")
    (root / ids[1] / "meta.json").unlink()
    meta = json.loads((root / ids[2] / "meta.json").read_text())
    (root / ids[2] / "meta.json").write_text(json.dumps({**meta, "id": "someone-else"}))
    (root / ".tmp-interrupted-write").mkdir()

    report = Archive(root).rebuild_index()
    reasons = {d.name: d.reason for d in report.damaged}
    assert set(reasons) == set(ids[:3])
    assert (
        "unreadable" in reasons[ids[0]] and "missing" in reasons[ids[1]] and "someone-else" in reasons[ids[2]]
    )
    assert report.indexed == [ids[3]] and report.stale_temp == [".tmp-interrupted-write"]
    index_html = (root / "index.html").read_text()
    assert ids[3] in index_html and ids[0] not in index_html


def test_garbled_index_file_says_how_to_recover(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    arch = Archive(root)
    paper_id = arch.add(make_entry(tmp_path))
    for name in ("index.sqlite-wal", "index.sqlite-shm"):
        (root / name).unlink(missing_ok=True)
    (root / "index.sqlite").write_bytes(os.urandom(8192))

    with pytest.raises(UserError, match="rebuild-index"):
        Archive(root).list()
    report = Archive(root).rebuild_index()
    assert report.moved_aside and (root / report.moved_aside).is_file()
    assert [r.id for r in Archive(root).list()] == [paper_id]


# ---------------------------------------------------------------- schema migration

V1_SCHEMA = """
CREATE TABLE papers (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, template TEXT NOT NULL, idea_name TEXT NOT NULL,
    title TEXT NOT NULL, overall REAL, decision TEXT, brain TEXT, model TEXT, cost_usd REAL,
    timings TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL, UNIQUE (run_id, idea_name)
);
PRAGMA user_version = 1;
"""


def test_a_version_1_index_is_migrated_in_place(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    with sqlite3.connect(root / "index.sqlite") as db:  # frozen copy of the first release's schema
        db.executescript(V1_SCHEMA)
        db.execute(
            "INSERT INTO papers VALUES ('20240101-000000-nanogpt-old-0000', 'run-0', 'nanogpt', 'old', "
            "'An old paper', 6.5, 'Accept', 'llm', 'gpt-4o', 0.5, '{\"writeup\": 3.0}', '2024-01-01T00:00:00Z')"
        )

    arch = Archive(root)
    (row,) = arch.list()
    assert (row.title, row.overall, row.timings, row.soundness, row.faithful) == (
        "An old paper",
        6.5,
        {"writeup": 3.0},
        None,
        None,
    )
    arch.record_outcome(Outcome(run_id="run-0", template="nanogpt", idea_name="old", title="An old paper", stage="archive", status="archived"))  # v2 table exists
    assert arch.outcomes()[0].paper_id == row.id
    with sqlite3.connect(root / "index.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == ix.SCHEMA_VERSION == 3  # v3: verdicts


def test_an_index_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    with sqlite3.connect(root / "index.sqlite") as db:
        db.execute(f"PRAGMA user_version = {ix.SCHEMA_VERSION + 1}")
    with pytest.raises(UserError, match="newer"):
        Archive(root).list()


# ---------------------------------------------------------------- pages


HOSTILE = '<script>alert("x")</script><img src=x onerror="alert(1)">'


def test_llm_written_text_is_escaped_on_every_page(tmp_path: Path) -> None:
    arch = Archive(tmp_path / "archive")
    entry = make_entry(tmp_path, title=f"Title {HOSTILE}", run_id="run-evil")
    entry.review["meta"]["summary"] = HOSTILE
    entry.review["reviews"][0]["weaknesses"] = [HOSTILE]
    entry.idea["hypothesis"] = HOSTILE
    entry.notes = HOSTILE
    entry.code_diff = DIFF + f"+{HOSTILE}\n"
    paper_id = arch.add(entry)
    arch.record_outcome(Outcome(run_id="run-evil", template="2d_diffusion", idea_name="bad_one", title=HOSTILE, stage="writeup", status="failed", reason=HOSTILE))

    for page in (
        arch.root / "index.html",
        arch.root / "last-night.html",
        arch.folder(paper_id) / "index.html",
    ):
        text = page.read_text()
        assert "<script>alert" not in text and "<img src=x" not in text, page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text, page


class _ActiveContent(HTMLParser):
    """What a strict CSP (script-src/style-src 'self', object-src 'none') would block."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag in ("object", "embed", "style") or (tag == "script" and not named.get("src")):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.found.append(f"{tag} {name}=")
            if (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"{tag} {name}=javascript:")


def test_pages_run_under_a_strict_csp(tmp_path: Path) -> None:
    arch = Archive(tmp_path / "archive")
    entry = make_entry(tmp_path, title=f"Title {HOSTILE}", run_id="run-evil")
    entry.notes = HOSTILE
    paper_id = arch.add(entry)
    arch.record_outcome(Outcome(run_id="run-evil", template="2d_diffusion", idea_name="bad_one", title=HOSTILE, stage="writeup", status="failed", reason=HOSTILE))
    empty = Archive(tmp_path / "empty")
    empty.render_html()

    for page in (
        arch.root / "index.html",
        arch.root / "last-night.html",
        arch.folder(paper_id) / "index.html",
        empty.root / "index.html",
        empty.root / "last-night.html",
    ):
        parser = _ActiveContent()
        parser.feed(page.read_text())
        assert parser.found == [], page
        assert re.findall(r'<script src="([^"]+)"', page.read_text()) in (["assets/archive.js"], ["../assets/archive.js"])


def test_deeply_nested_json_is_cut_not_fatal(tmp_path: Path) -> None:
    arch = Archive(tmp_path / "archive")
    deep: Any = "bottom"
    for _ in range(150):  # 300 levels: as deep as the archive itself writes with indent
        deep = {"k": [deep]}
    entry = make_entry(tmp_path)
    entry.results["analysis"] = deep
    folder = arch.folder(arch.add(entry))
    page = (folder / "index.html").read_text()
    assert "nested deeper than" in page and "bottom" in page  # the raw results.json still holds it all
    (folder / "review.json").write_text("[" * 100_000 + "]" * 100_000)  # past the JSON parser's own stack
    arch.render_html(all_pages=True)
    assert "No review recorded." in (folder / "index.html").read_text()


def test_paper_page_shows_every_part(tmp_path: Path) -> None:
    arch = Archive(tmp_path / "archive")
    page = (arch.folder(arch.add(make_entry(tmp_path))) / "index.html").read_text()
    assert 'src="paper.pdf"' in page and '<img src="loss.png"' in page and "Training loss" in page
    for field in (
        "summary",
        "strengths",
        "weaknesses",
        "originality",
        "questions",
        "limitations",
        "ethical_concerns",
        "soundness",
        "overall",
        "confidence",
        "decision",
    ):
        assert f'data-field="{field}"' in page
    assert page.count("Reviewer ") == 2 and 'id="faithfulness"' in page
    assert "offline brain (no LLM)" in page and "$0.0125" in page
    assert "Changing cosine_schedule lowers" in page and "BETA_SCHEDULE = &#x27;cosine&#x27;" in page
    assert 'class="num add">+1<' in page


def test_last_night_shows_latest_run_and_where_ideas_stopped(tmp_path: Path) -> None:
    arch = Archive(tmp_path / "archive")
    arch.add(make_entry(tmp_path, "older_paper", run_id="run-1"), created_at=datetime(2025, 1, 1, tzinfo=UTC))
    arch.record_outcome(Outcome(run_id="run-1", template="2d_diffusion", idea_name="older_fail", title="x", stage="novelty", status="skipped", reason="not novel"))
    arch.add(make_entry(tmp_path, "tonight_paper", run_id="run-2"))
    arch.record_outcome(Outcome(run_id="run-2", template="2d_diffusion", idea_name="broken_idea", title="Broken", stage="experiment", status="failed", reason="run_2 crashed after 3 fixes: CUDA out of memory"))
    arch.record_outcome(Outcome(run_id="run-2", template="2d_diffusion", idea_name="latex_idea", title="Latex", stage="writeup", status="failed", reason="pdflatex: undefined control"))

    assert arch.latest_run() == "run-2"
    page = (arch.root / "last-night.html").read_text()
    assert "tonight_paper" in page and "older_paper" not in page and "older_fail" not in page
    assert "CUDA out of memory" in page and "pdflatex: undefined control" in page
    assert '<td class="stage">experiment</td>' in page and '<td class="stage">writeup</td>' in page


def test_diff_stat_counts_per_file() -> None:
    diff = DIFF + (
        "diff --git a/plot.py b/plot.py\n--- a/plot.py\n+++ b/plot.py\n"
        "@@ -1,2 +1,3 @@\n--- a comment line that starts with dashes\n+x = 2\n+y = 3\n ok\n"
        "\\ No newline at end of file\n"
    )
    assert [(s.path, s.added, s.removed) for s in diff_stat(diff)] == [
        ("experiment.py", 1, 1),
        ("plot.py", 2, 1),
    ]


def test_diff_kinds_follow_the_hunk_counts() -> None:
    tricky = DIFF + (
        "diff --git a/a.py b/b.py\nsimilarity index 100%\nrename from a.py\nrename to b.py\n"
        "diff --git a/plot.py b/plot.py\n--- a/plot.py\n+++ b/plot.py\n"
        "@@ -1,2 +1,2 @@\n--- dashes\n+x = '\f'\u2028\n ok\n"
    )
    kinds = list(classify(tricky))
    assert [k for k, _ in kinds][-7:] == ["file", "file", "file", "hunk", "del", "add", "ctx"]
    assert kinds[-2] == ("add", "+x = '\f'\u2028")  # split at newlines only, as unidiff reads it
    assert [(s.path, s.added, s.removed) for s in diff_stat(tricky)] == [
        ("experiment.py", 1, 1), ("b.py", 0, 0), ("plot.py", 1, 1)
    ]
    cut = tricky[: tricky.index(" ok")]  # a hunk cut short: unidiff refuses it, the lines still show
    assert diff_stat(cut) == [] and list(classify(cut))[-1] == ("add", "+x = '\f'\u2028")


def test_pdf_written_by_hand_is_valid(tmp_path: Path) -> None:
    """Guards the helper the other tests rely on (poppler's pdfinfo must accept it)."""
    (tmp_path / "x.pdf").write_bytes(minimal_pdf())
    info = subprocess.run(["pdfinfo", str(tmp_path / "x.pdf")], capture_output=True, text=True, check=False)
    assert info.returncode == 0 and info.stderr == "" and re.search(r"Pages:\s+1\n", info.stdout)
    text = subprocess.run(
        ["pdftotext", str(tmp_path / "x.pdf"), "-"], capture_output=True, text=True, check=True
    )
    assert "Hello archive" in text.stdout


def search_view(hostile: str = "") -> dict:
    """A search.json as the archive stage writes it (agent.pipeline.search.archive_view)."""
    diff = ("diff --git a/experiment.py b/experiment.py\n--- a/experiment.py\n+++ b/experiment.py\n"
            "@@ -1 +1 @@\n-INIT = \"spread\"\n+INIT = \"random\"\n")
    node = {"kind": "draft", "stage": "research", "args": {}, "settings": {}, "seeds": [0, 1, 2], "commit": "abc",
            "screened": False, "halving": None, "wall_s": 3.0, "bug": "", "buggy": False, "diff": "", "log_tail": ""}
    nodes = [
        {**node, "id": 0, "parent": None, "kind": "root", "stage": "root", "description": "The unchanged template",
         "metric": 1.6, "change_pct": 0.0},
        {**node, "id": 1, "parent": 0, "description": "Draft: init=random", "metric": 1.5, "change_pct": -6.25,
         "settings": {"init": "random"}, "diff": diff, "log_tail": f"step 100 loss 0.5 {hostile}"},
        {**node, "id": 2, "parent": 1, "kind": "debug", "description": f"Debug {hostile}", "metric": None,
         "change_pct": None, "buggy": True, "bug": f"exit code 1 {hostile}", "log_tail": "Traceback: boom"},
        {**node, "id": 3, "parent": 1, "kind": "replicate", "stage": "confirm", "seeds": [3, 4, 5],
         "description": "Confirmation of n1", "metric": 1.55, "change_pct": None},
    ]
    return {"metric": "test_nll", "direction": "minimize", "budget": 6, "seeds": [0, 1, 2], "fresh_seeds": [3, 4, 5],
            "selected": 1, "confirmed": {"selected": 3}, "path": [0, 1], "nodes": nodes}


def test_the_search_tree_is_shown_escaped_and_under_the_csp(tmp_path: Path) -> None:
    arch = Archive(tmp_path / "archive")
    entry = make_entry(tmp_path)
    entry.search = search_view(HOSTILE)
    paper_id = arch.add(entry)
    page = (arch.folder(paper_id) / "index.html").read_text()
    assert json.loads((arch.folder(paper_id) / "search.json").read_text())["selected"] == 1
    assert page.count('<button type="button" class="node') == 4
    assert "node none buggy" in page and "node good2 path" in page  # -6.25 %: the good way, on the path
    assert '<article class="node-detail" id="node-1">' in page, "the selected node's details show first"
    assert '<article class="node-detail" id="node-2" hidden>' in page
    assert '<span class="add">+INIT = &quot;random&quot;</span>' in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    parser = _ActiveContent()
    parser.feed(page)
    assert parser.found == []
