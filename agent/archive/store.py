"""The knowledge archive: one folder per finished paper, a SQLite index, a static browser.

    archive/
    ├── index.sqlite          the index (a cache of the folders; see rebuild_index)
    ├── outcomes.jsonl        every idea's end state, append-only (so the index can be rebuilt)
    ├── index.html            the browser: papers ranked by score, with filters
    ├── last-night.html       the latest run: its papers and where each failed idea stopped
    ├── assets/               style.css, archive.js
    └── <id>/                 paper.pdf, paper.tex, figures, idea.json, results.json,
                              review.json, notes.md, cost.json, meta.json, code.diff,
                              workdir.bundle, index.html (the paper's page),
                              human_review.json (the researcher's verdicts, if any)

A paper is written under a temporary name inside the archive, fsync'd, renamed into place,
and only then indexed, in one transaction. Any number of processes may append at once:
SQLite (WAL, busy timeout) serialises the index writes and the rename makes each folder
appear whole. `add` is idempotent on (run_id, idea name), so a resumed run never archives
a paper twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.archive import index as ix
from agent.archive.files import append_line, atomic_write_text, copy_synced, file_lock, fsync_dir, write_synced
from agent.archive.index import IndexRow
from agent.errors import UserError
from agent.models import ArchivedIdea, Outcome
from agent.sandbox import files

log = logging.getLogger(__name__)

ENV_VAR = "AI_SCIENTIST_ARCHIVE"
INDEX_FILE = "index.sqlite"
OUTCOMES_FILE = "outcomes.jsonl"
HUMAN_REVIEW_FILE = "human_review.json"
FOLDER_FORMAT = 1
"""Version of the folder layout written into meta.json (independent of the index schema)."""
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif")
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
RESERVED = ("assets",)
"""Names inside the archive root that are not paper folders."""


def default_archive_root(cli: Path | str | None = None) -> Path:
    """`--archive DIR`, else $AI_SCIENTIST_ARCHIVE, else ./archive."""
    if cli:
        return Path(cli)
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env) if env else Path("archive")


def utc_stamp(when: datetime | None = None) -> str:
    """ISO 8601 UTC with microseconds: outcomes of one run, seconds apart or not, keep their order."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------- boundary models


class PaperEntry(BaseModel):
    """Everything the pipeline hands over for one finished paper."""

    run_id: str
    template: str
    scale: str
    idea: dict[str, Any] = Field(description="agent.brain.Idea.model_dump()")
    title: str
    review: dict[str, Any] = Field(description='{"meta": Review, "reviews": [Review], "faithfulness": {...}}')
    overall: float
    decision: str
    brain: str = Field(description="offline | llm")
    model: str
    cost: dict[str, Any] = Field(description="Ledger.summary(idea); has cost_usd")
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per stage")
    faithful: bool
    paper_dir: Path = Field(description="holds paper.pdf, paper.tex, figures; copied into the entry")
    results: dict[str, Any] = Field(default_factory=dict, description="all runs' final_info + analysis")
    notes: str = ""
    code_diff: str = ""
    bundle_path: Path | None = None
    meta: dict[str, Any] = Field(
        default_factory=dict,
        description="merged into meta.json; `figures`: [{file, caption}] gives figure captions",
    )
    log_files: list[Path] = Field(default_factory=list, description="copied into logs/")
    search: dict[str, Any] | None = Field(
        default=None, description="search.json: the tree of a --search tree run, as its page shows it")

    @property
    def idea_name(self) -> str:
        name = self.idea.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("PaperEntry.idea has no `name`; pass Idea.model_dump()")
        return name


class PaperMeta(BaseModel):
    """`meta.json`: who wrote the paper and how, plus what the index needs to be rebuilt."""

    model_config = ConfigDict(extra="allow")

    format: int = FOLDER_FORMAT
    id: str
    run_id: str
    template: str
    scale: str
    idea_name: str
    title: str
    brain: str
    model: str
    overall: float | None = None
    decision: str | None = None
    scores: dict[str, float | None] = Field(default_factory=dict)
    cost_usd: float | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    faithful: bool | None = None
    created_at: str
    versions: dict[str, str] = Field(default_factory=dict)


class DamagedFolder(BaseModel):
    name: str
    reason: str


class RebuildReport(BaseModel):
    """What `rebuild_index` found: indexed papers, and folders it could not read."""

    indexed: list[str] = Field(default_factory=list)
    damaged: list[DamagedFolder] = Field(default_factory=list)
    stale_temp: list[str] = Field(default_factory=list, description="leftovers of interrupted writes")
    outcomes: int = 0
    bad_outcome_lines: int = 0
    moved_aside: str | None = Field(default=None, description="where an unreadable index was moved")


# ---------------------------------------------------------------- ids and folder contents


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    return slug[:limit] or "x"


def entry_key(run_id: str, idea_name: str) -> str:
    """Short stable hash of (run_id, idea): the id suffix that makes `add` idempotent."""
    return hashlib.sha1(f"{run_id}\0{idea_name}".encode()).hexdigest()[:8]


def new_paper_id(template: str, idea_name: str, run_id: str, now: datetime | None = None) -> str:
    """`YYYYMMDD-HHMMSS-<template>-<idea>-<key>`: sorts by time, safe on every filesystem."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{_slug(template)}-{_slug(idea_name)}-{entry_key(run_id, idea_name)}"


def _versions() -> dict[str, str]:
    try:
        ours = importlib.metadata.version("ai-scientist")
    except importlib.metadata.PackageNotFoundError:
        ours = "unknown"
    return {"ai_scientist": ours, "python": platform.python_version(), "sqlite": sqlite3.sqlite_version}


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"


def _scores(review: dict[str, Any]) -> dict[str, float | None]:
    meta = review.get("meta") or {}
    out: dict[str, float | None] = {}
    for name in ix.SCORE_FIELDS:
        value = meta.get(name)
        out[name] = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    return out


def _build_meta(entry: PaperEntry, paper_id: str, created_at: str) -> PaperMeta:
    extra = dict(entry.meta)
    versions = {**_versions(), **{k: str(v) for k, v in (extra.pop("versions", None) or {}).items()}}
    core = PaperMeta(
        id=paper_id,
        run_id=entry.run_id,
        template=entry.template,
        scale=entry.scale,
        idea_name=entry.idea_name,
        title=entry.title,
        brain=entry.brain,
        model=entry.model,
        overall=entry.overall,
        decision=entry.decision,
        scores=_scores(entry.review),
        cost_usd=entry.cost.get("cost_usd"),
        timings=entry.timings,
        faithful=entry.faithful,
        created_at=created_at,
        versions=versions,
    )
    # Core fields win over same-named extras: the index is rebuilt from them.
    return PaperMeta.model_validate({**extra, **core.model_dump()})


def _write_folder(entry: PaperEntry, folder: Path, meta: PaperMeta) -> None:
    """Fill a (temporary) paper folder; every file is fsync'd. The paper folder and the logs
    come from a work tree that sandboxed code wrote, so they are copied through
    agent.sandbox.files, only by name and type: the PDF, the sources, and figures that really
    are PNG, JPEG or GIF (never SVG or HTML, which a browser would run)."""
    src = entry.paper_dir
    if files.kind(src.parent, src.name) != "dir":
        raise FileNotFoundError(f"paper_dir {src} does not exist; the writeup stage must produce it first")
    for name in files.list_files(src):
        wanted = name in ("paper.pdf", "paper.tex", "references.bib") or name.lower().endswith(FIGURE_SUFFIXES)
        if not wanted:
            continue
        data = files.read_bytes(src, name)
        if name.lower().endswith(FIGURE_SUFFIXES) and not data.startswith(_IMAGE_MAGIC):
            log.warning("archive: %s is not the image its name says; not archived", name)
            continue
        write_synced(folder / name, data)
    write_synced(folder / "idea.json", _json(entry.idea))
    write_synced(folder / "results.json", _json(entry.results))
    write_synced(folder / "review.json", _json(entry.review))
    write_synced(folder / "notes.md", entry.notes)
    write_synced(folder / "cost.json", _json(entry.cost))
    write_synced(folder / "code.diff", entry.code_diff)
    if entry.search is not None:
        write_synced(folder / "search.json", _json(entry.search))
    if entry.bundle_path is not None and entry.bundle_path.is_file():
        copy_synced(entry.bundle_path, folder / "workdir.bundle")
    if entry.log_files:
        (folder / "logs").mkdir()
        for f in entry.log_files:
            with contextlib.suppress(OSError, files.UnsafeFile):
                write_synced(folder / "logs" / f.name, files.read_bytes(f.parent, f.name, limit=files.TEXT_LIMIT))
        fsync_dir(folder / "logs")
    write_synced(folder / "meta.json", meta.model_dump_json(indent=2) + "\n")


def read_meta(folder: Path) -> PaperMeta:
    """meta.json of a paper folder; raises ValueError with a readable reason if damaged."""
    path = folder / "meta.json"
    if not path.is_file():
        raise ValueError("meta.json is missing")
    try:
        meta = PaperMeta.model_validate_json(path.read_bytes())
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise ValueError(f"meta.json is unreadable: {where}: {first['msg']}") from None
    if meta.id != folder.name:
        raise ValueError(f"meta.json says id {meta.id!r}, but the folder is named {folder.name!r}")
    return meta


def row_from_folder(folder: Path) -> IndexRow:
    """The index row of a paper folder, from meta.json (and idea.json for the idea text)."""
    meta = read_meta(folder)
    idea: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads((folder / "idea.json").read_text())
        idea = loaded if isinstance(loaded, dict) else {}
    knobs = idea.get("knobs")
    return IndexRow(
        id=meta.id,
        run_id=meta.run_id,
        template=meta.template,
        idea_name=meta.idea_name,
        title=meta.title,
        hypothesis=str(idea.get("hypothesis", "")),
        knobs=[str(k) for k in knobs] if isinstance(knobs, list) else [],
        continues=idea.get("continues") if isinstance(idea.get("continues"), str) else None,
        overall=meta.overall,
        decision=meta.decision,
        **{k: v for k, v in meta.scores.items() if k in ix.SCORE_FIELDS},
        brain=meta.brain,
        model=meta.model,
        scale=meta.scale,
        cost_usd=meta.cost_usd,
        timings=meta.timings,
        total_s=round(sum(meta.timings.values()), 3) if meta.timings else None,
        faithful=meta.faithful,
        created_at=meta.created_at,
    )


def archived_outcome(entry: PaperEntry, paper_id: str, when: datetime | None = None) -> Outcome:
    """The outcome of an idea that became paper `paper_id`: the one wording of it."""
    return Outcome(
        run_id=entry.run_id,
        template=entry.template,
        idea_name=entry.idea_name,
        title=entry.title,
        stage="archive",
        status="archived",
        reason=f"{entry.decision}, overall {entry.overall:g}",
        paper_id=paper_id,
        score=entry.overall,
        recorded_at=utc_stamp(when),
    )


# ---------------------------------------------------------------- the archive


class Archive:
    """An archive folder. Cheap to construct; the index is opened (and migrated) on first use."""

    def __init__(self, root: Path | str | None = None):
        self.root = default_archive_root(root)
        self.index_path = self.root / INDEX_FILE
        self._migrated = False

    # ------------------------------------------------------------ index access

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.root.mkdir(parents=True, exist_ok=True)
        db: sqlite3.Connection | None = None
        try:
            db = ix.connect(self.index_path)
            if not self._migrated:
                ix.migrate(db)
                self._migrated = True
            yield db
        except sqlite3.DatabaseError as e:
            # Plain DatabaseError means a damaged file (not "locked", not a constraint bug).
            if type(e) is not sqlite3.DatabaseError:
                raise
            raise UserError(
                f"the archive index {self.index_path} is damaged ({e}); "
                f"run `ai-scientist archive --archive {self.root} rebuild-index`"
            ) from e
        finally:
            if db is not None:
                db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front (no upgrade deadlock)."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def folder(self, paper_id: str) -> Path:
        return self.root / paper_id

    # ------------------------------------------------------------ writing

    def add(self, entry: PaperEntry, *, render: bool = True, created_at: datetime | None = None) -> str:
        """Archive one paper and return its id. Idempotent on (run_id, idea name).

        `render=False` skips refreshing index.html (for bulk loads; call render_html after).
        `created_at` (UTC) backdates an import; the default is now.
        """
        idea_name = entry.idea_name
        existing = self._indexed_id(entry.run_id, idea_name)
        if existing is None:
            orphan = self._find_folder(entry.run_id, idea_name)
            paper_id = orphan.name if orphan else self._write_new(entry, created_at)
            with self._write() as db:
                kept = ix.insert_paper(db, row_from_folder(self.folder(paper_id)))
                outcome = archived_outcome(entry, kept, created_at)
                ix.upsert_outcome(db, outcome)
            if kept != paper_id:  # another process archived the same idea first
                shutil.rmtree(self.folder(paper_id), ignore_errors=True)
            append_line(self.root / OUTCOMES_FILE, outcome.model_dump_json())
            existing = kept
        if render:
            self._render_quietly()
        return existing

    def _indexed_id(self, run_id: str, idea_name: str) -> str | None:
        """The id already indexed for this idea, if its folder still exists."""
        with self._db() as db:
            found = db.execute(
                "SELECT id FROM papers WHERE run_id = ? AND idea_name = ?", (run_id, idea_name)
            ).fetchone()
        if found is None:
            return None
        if self.folder(found[0]).is_dir():
            return found[0]
        with self._write() as db:  # the folder was deleted by hand: forget it, archive afresh
            db.execute("DELETE FROM papers WHERE id = ?", (found[0],))
        return None

    def _find_folder(self, run_id: str, idea_name: str) -> Path | None:
        """A folder written for this idea but never indexed (a crash between rename and insert)."""
        for d in sorted(self.root.glob(f"*-{entry_key(run_id, idea_name)}")):
            with contextlib.suppress(ValueError, OSError):
                meta = read_meta(d)
                if meta.run_id == run_id and meta.idea_name == idea_name:
                    return d
        return None

    def _write_new(self, entry: PaperEntry, created_at: datetime | None) -> str:
        """Build the folder under a temporary name and rename it into place; returns the id."""
        from agent.archive.web.render import render_paper_page

        now = (created_at or datetime.now(UTC)).astimezone(UTC)
        paper_id = new_paper_id(entry.template, entry.idea_name, entry.run_id, now)
        meta = _build_meta(entry, paper_id, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        tmp = self.root / f".tmp-{paper_id}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            _write_folder(entry, tmp, meta)
            # The page is built from the files just written, so it matches them exactly.
            write_synced(tmp / "index.html", render_paper_page(tmp))
            fsync_dir(tmp)
            try:
                os.rename(tmp, self.folder(paper_id))
            except OSError:
                if not self.folder(paper_id).is_dir():
                    raise
                # Same id already in place: the same idea archived concurrently this second.
            fsync_dir(self.root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return paper_id

    def record_outcome(self, outcome: Outcome, *, render: bool = True) -> None:
        """Record how one idea ended that did not become a paper (`add` records the papers'):
        stopped at `outcome.stage` because `outcome.reason`."""
        outcome = outcome.model_copy(update={"status": outcome.status.lower(), "recorded_at": utc_stamp()})
        with self._write() as db:
            found = db.execute(
                "SELECT id FROM papers WHERE run_id = ? AND idea_name = ?", (outcome.run_id, outcome.idea_name)
            ).fetchone()
            outcome.paper_id = found[0] if found else None
            ix.upsert_outcome(db, outcome)
        append_line(self.root / OUTCOMES_FILE, outcome.model_dump_json())
        if render:
            self._render_quietly()

    # ------------------------------------------------------------ reading

    def list(
        self,
        template: str | None = None,
        sort: Literal["score", "human", "date"] = "score",
        limit: int | None = None,
    ) -> list[IndexRow]:
        """Papers, best first by the automated review (`score`) or by the researcher's own score
        (`human`), unscored last; or newest first (`date`). Each with its latest verdict."""
        orders = {
            "score": "overall IS NULL, overall DESC, created_at DESC, id DESC",
            "human": "human_score IS NULL, human_score DESC, overall IS NULL, overall DESC, created_at DESC, id DESC",
            "date": "created_at DESC, id DESC",
        }
        if sort not in orders:
            raise UserError(f"unknown sort {sort!r}; use score, human or date")
        where, params = ("WHERE template = ?", [template]) if template else ("", [])
        sql = f"{ix.PAPER_SELECT} {where} ORDER BY {orders[sort]}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._db() as db:
            return [ix.row_from_sql(r) for r in db.execute(sql, params)]

    def get(self, paper_id: str) -> IndexRow:
        """One paper by id (or by a unique prefix of it)."""
        with self._db() as db:
            rows = db.execute(f"{ix.PAPER_SELECT} WHERE id = ?", (paper_id,)).fetchall()
            if not rows and paper_id:
                escaped = paper_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                rows = db.execute(
                    f"{ix.PAPER_SELECT} WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (escaped + "%",)
                ).fetchall()
        if len(rows) == 1:
            return ix.row_from_sql(rows[0])
        if len(rows) > 1:
            raise UserError(f"{paper_id!r} matches several papers; give more of the id")
        raise UserError(f"no paper {paper_id!r} in {self.root}; see `ai-scientist archive list`")

    def past_ideas(self, template: str | None = None) -> list[ArchivedIdea]:
        """Archived ideas with their scores, for ideation to avoid repeats and learn from."""
        return [
            ArchivedIdea(
                template=r.template,
                name=r.idea_name,
                title=r.title,
                hypothesis=r.hypothesis,
                knobs=r.knobs,
                score=r.overall,
                decision=r.decision,
                paper_id=r.id,
                human_score=r.human_score,
                note=r.human_note,
                mark=r.mark,
                continues=r.continues,
            )
            for r in self.list(template=template, sort="date")
        ]

    # ------------------------------------------------------------ the researcher's verdicts

    def follow_ups(self, template: str) -> list[ArchivedIdea]:
        """Papers of `template` the researcher marked follow-up that no later paper continues yet."""
        past = self.past_ideas(template)
        continued = {p.continues for p in past if p.continues}
        return [p for p in past if p.mark == "follow-up" and p.paper_id not in continued]

    def rate(self, paper_id: str, score: int, note: str = "", mark: str | None = None) -> ix.Verdict:
        """Record the researcher's verdict on a paper: in the index and in the paper's folder
        (`human_review.json`, so `rebuild_index` restores it). The latest verdict counts."""
        row = self.get(paper_id)
        try:
            verdict = ix.Verdict(paper_id=row.id, score=score, note=note, mark=mark, rated_at=utc_stamp())
        except ValidationError as e:
            first = e.errors()[0]
            raise UserError(f"bad verdict: {first['loc'][0]}: {first['msg']}") from None
        folder = self.folder(row.id)
        with file_lock(self.root / ".verdicts.lock"):
            history = [*self.verdicts_on_disk(folder), verdict]
            atomic_write_text(folder / HUMAN_REVIEW_FILE, _json(
                {"latest": verdict.model_dump(), "history": [v.model_dump() for v in history]}))
            with self._write() as db:
                ix.insert_verdict(db, verdict)
        self._render_quietly(pages=(row.id,))
        return verdict

    @staticmethod
    def verdicts_on_disk(folder: Path) -> list[ix.Verdict]:
        """The verdicts kept in a paper folder (none if the file is missing or damaged)."""
        path = folder / HUMAN_REVIEW_FILE
        try:
            history = json.loads(path.read_text())["history"] if path.is_file() else []
            return [ix.Verdict.model_validate(v) for v in history]
        except (ValueError, KeyError, TypeError):
            log.warning("archive: %s is damaged; its verdicts are skipped", path)
            return []

    def outcomes(self, run_id: str | None = None) -> list[Outcome]:
        """Idea end states, newest first (one run's, or all)."""
        where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
        with self._db() as db:
            recs = db.execute(f"SELECT * FROM outcomes {where} ORDER BY recorded_at DESC, idea_name", params)
            return [Outcome.model_validate(dict(r)) for r in recs]

    def latest_run(self) -> str | None:
        """The run that reported last: by outcome (every paper has one), else by paper date."""
        with self._db() as db:
            found = db.execute("SELECT run_id FROM outcomes ORDER BY recorded_at DESC LIMIT 1").fetchone()
            found = (
                found or db.execute("SELECT run_id FROM papers ORDER BY created_at DESC LIMIT 1").fetchone()
            )
        return found[0] if found else None

    def export(self, paper_id: str, dest: Path) -> Path:
        """Copy a paper's folder to `dest/<id>`; returns the new folder."""
        row = self.get(paper_id)
        target = dest / row.id
        if target.exists():
            raise UserError(f"{target} already exists; remove it or export somewhere else")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.folder(row.id), target)
        return target

    # ------------------------------------------------------------ maintenance

    def paper_folders(self) -> Iterator[Path]:
        for d in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if d.is_dir() and not d.name.startswith(".") and d.name not in RESERVED:
                yield d

    def rebuild_index(self) -> RebuildReport:
        """Recreate the index from the folders and outcomes.jsonl; damaged folders are reported."""
        report = RebuildReport()
        self.root.mkdir(parents=True, exist_ok=True)
        report.moved_aside = self._set_aside_if_unreadable()
        report.stale_temp = sorted(d.name for d in self.root.glob(".tmp-*") if d.is_dir())
        rows: list[IndexRow] = []
        for d in self.paper_folders():
            try:
                rows.append(row_from_folder(d))
            except (ValueError, OSError) as e:
                report.damaged.append(DamagedFolder(name=d.name, reason=str(e)))
        outcomes, report.bad_outcome_lines = self._read_outcome_log()
        with self._write() as db:
            db.execute("DELETE FROM papers")
            db.execute("DELETE FROM outcomes")
            db.execute("DELETE FROM verdicts")
            for row in rows:
                kept = ix.insert_paper(db, row)
                if kept == row.id:
                    report.indexed.append(row.id)
                else:
                    report.damaged.append(
                        DamagedFolder(name=row.id, reason=f"duplicate of {kept} (same run and idea)")
                    )
            for row in rows:
                for verdict in self.verdicts_on_disk(self.folder(row.id)):
                    ix.insert_verdict(db, verdict.model_copy(update={"paper_id": row.id}))
            for outcome in outcomes:  # log order: the latest report per idea wins
                ix.upsert_outcome(db, outcome)
            for row in rows:  # papers whose outcome line was lost still count as archived
                db.execute(
                    "INSERT OR IGNORE INTO outcomes (run_id, template, idea_name, title, stage, status,"
                    " reason, paper_id, recorded_at) VALUES (?, ?, ?, ?, 'archive', 'archived', '', ?, ?)",
                    (
                        row.run_id,
                        row.template,
                        row.idea_name,
                        row.title,
                        row.id,
                        f"{row.created_at[:19]}.000000Z",
                    ),
                )
            report.outcomes = db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]
        self.render_html(all_pages=True)
        return report

    def _set_aside_if_unreadable(self) -> str | None:
        """Move a damaged index file (and its WAL) out of the way; returns where it went."""
        if not self.index_path.exists():
            return None
        try:
            with self._db() as db:
                db.execute("PRAGMA quick_check").fetchone()
                db.execute("SELECT COUNT(*) FROM papers").fetchone()
            return None
        except (UserError, sqlite3.DatabaseError):
            pass
        aside = self.root / f"{INDEX_FILE}.damaged-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        os.replace(self.index_path, aside)
        # A stale WAL must never be replayed into the fresh index.
        for suffix in ("-wal", "-shm"):
            Path(f"{self.index_path}{suffix}").unlink(missing_ok=True)
        self._migrated = False
        return aside.name

    def _read_outcome_log(self) -> tuple[list[Outcome], int]:
        path = self.root / OUTCOMES_FILE
        if not path.is_file():
            return [], 0
        outcomes, bad = [], 0
        for line in path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                outcomes.append(Outcome.model_validate_json(line))
            except ValidationError:
                bad += 1
        return outcomes, bad

    # ------------------------------------------------------------ the browser

    def render_html(self, *, all_pages: bool = False, pages: tuple[str, ...] = ()) -> Path:
        """Write index.html, last-night.html, any missing paper page and the pages of `pages`
        (paper ids); returns index.html.

        Renders are serialised by a lock and read the index inside it, so the last render
        always includes every paper indexed before it started.
        """
        from agent.archive.web import render

        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / ".render.lock"):
            rows = self.list(sort="score")
            latest = self.latest_run()
            render.write_assets(self.root)
            for row in rows:
                page = self.folder(row.id) / "index.html"
                if all_pages or row.id in pages or not page.exists():
                    try:
                        render.write_page(page, render.render_paper_page(page.parent))
                    except (OSError, ValueError) as e:
                        log.warning("archive: could not render the page of %s: %s", row.id, e)
            render.write_page(
                self.root / "last-night.html",
                render.render_last_night(
                    latest, [r for r in rows if r.run_id == latest], self.outcomes(latest)
                ),
            )
            index = self.root / "index.html"
            render.write_page(index, render.render_index(rows))
        return index

    def _render_quietly(self, pages: tuple[str, ...] = ()) -> None:
        """Refresh the browser after a write; a rendering problem must not lose the paper."""
        try:
            self.render_html(pages=pages)
        except (OSError, ValueError) as e:
            log.warning(
                "archive: index.html not refreshed (%s); run `ai-scientist archive --archive %s render`",
                e,
                self.root,
            )
