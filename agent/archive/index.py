"""The archive's SQLite index: connection settings, schema migrations, and typed rows.

The index is a cache of the paper folders: each folder's `meta.json` is the truth, and
`Archive.rebuild_index` can recreate the index from the folders at any time. It still
carries a schema version (`PRAGMA user_version`) and a migration path, so an archive
written by an older release is upgraded in place instead of being thrown away.

To change the schema: append a function to `MIGRATIONS` that takes the database from the
previous version to the next, bump nothing else (SCHEMA_VERSION follows the list), and add
its columns to `IndexRow` / `PAPER_COLUMNS`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.errors import UserError
from agent.models import Outcome

BUSY_TIMEOUT_MS = 60_000
"""How long a writer waits for another process's transaction; concurrent runs queue here."""

SCORE_FIELDS = (
    "soundness",
    "presentation",
    "contribution",
    "originality",
    "quality",
    "clarity",
    "significance",
    "confidence",
)


# ---------------------------------------------------------------- migrations


def _v1_papers(db: sqlite3.Connection) -> None:
    """The first layout: one row per paper, keyed by id and by (run_id, idea_name)."""
    db.execute(
        """CREATE TABLE papers (
            id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            template TEXT NOT NULL,
            idea_name TEXT NOT NULL,
            title TEXT NOT NULL,
            overall REAL,
            decision TEXT,
            brain TEXT,
            model TEXT,
            cost_usd REAL,
            timings TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            UNIQUE (run_id, idea_name)
        )"""
    )


def _v2_scores_outcomes(db: sqlite3.Connection) -> None:
    """Per-dimension review scores, faithfulness, idea text, and every idea's end state."""
    for col in SCORE_FIELDS:
        db.execute(f"ALTER TABLE papers ADD COLUMN {col} REAL")
    for col, decl in (
        ("faithful", "INTEGER"),
        ("scale", "TEXT NOT NULL DEFAULT ''"),
        ("hypothesis", "TEXT NOT NULL DEFAULT ''"),
        ("knobs", "TEXT NOT NULL DEFAULT '[]'"),
        ("total_s", "REAL"),
    ):
        db.execute(f"ALTER TABLE papers ADD COLUMN {col} {decl}")
    db.execute("CREATE INDEX papers_template ON papers (template)")
    db.execute("CREATE INDEX papers_overall ON papers (overall)")
    db.execute("CREATE INDEX papers_created ON papers (created_at)")
    db.execute(
        """CREATE TABLE outcomes (
            run_id TEXT NOT NULL,
            template TEXT NOT NULL,
            idea_name TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            stage TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            paper_id TEXT,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (run_id, idea_name)
        )"""
    )
    db.execute("CREATE INDEX outcomes_recorded ON outcomes (recorded_at)")


def _v3_verdicts(db: sqlite3.Connection) -> None:
    """The researcher's own verdicts: every rating kept, the latest one counts."""
    db.execute(
        """CREATE TABLE verdicts (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            paper_id TEXT NOT NULL,
            score INTEGER NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            mark TEXT,
            rated_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX verdicts_paper ON verdicts (paper_id)")
    db.execute("ALTER TABLE papers ADD COLUMN continues TEXT")  # the paper an idea continued
    db.execute("CREATE VIEW latest_verdicts AS SELECT * FROM verdicts "
               "WHERE seq IN (SELECT MAX(seq) FROM verdicts GROUP BY paper_id)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1_papers, _v2_scores_outcomes, _v3_verdicts]
"""MIGRATIONS[i] takes the schema from version i to version i + 1 (0 = empty file)."""
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN IMMEDIATE ourselves), WAL journal.

    WAL lets readers (list, render) run while another process appends; busy_timeout makes
    concurrent writers wait their turn instead of failing with "database is locked".
    """
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Switching to WAL needs a brief exclusive lock and may report BUSY without waiting.
    for attempt in range(50):
        try:
            db.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == 49:
                raise
            time.sleep(0.05)
    db.execute("PRAGMA synchronous = FULL")
    return db


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION in one transaction; returns the version found."""
    if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return SCHEMA_VERSION  # the common case: no write lock taken
    db.execute("BEGIN IMMEDIATE")  # re-read under the lock: another process may have migrated
    try:
        found = db.execute("PRAGMA user_version").fetchone()[0]
        if found > SCHEMA_VERSION:
            raise UserError(
                f"the archive index has schema version {found}, newer than this release knows "
                f"({SCHEMA_VERSION}); upgrade ai-scientist, or run `ai-scientist archive rebuild-index`"
            )
        for version in range(found, SCHEMA_VERSION):
            MIGRATIONS[version](db)
        if found != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
        return found
    except BaseException:
        db.execute("ROLLBACK")
        raise


# ---------------------------------------------------------------- rows


class IndexRow(BaseModel):
    """One paper as the index knows it (everything the list, ranking and ideation need)."""

    id: str
    run_id: str
    template: str
    idea_name: str
    title: str
    hypothesis: str = ""
    knobs: list[str] = Field(default_factory=list)
    overall: float | None = None
    decision: str | None = None
    soundness: float | None = None
    presentation: float | None = None
    contribution: float | None = None
    originality: float | None = None
    quality: float | None = None
    clarity: float | None = None
    significance: float | None = None
    confidence: float | None = None
    brain: str = ""
    model: str = ""
    scale: str = ""
    cost_usd: float | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    total_s: float | None = None
    faithful: bool | None = None
    created_at: str = Field(description="ISO 8601, UTC, e.g. 2025-01-02T03:04:05Z")
    continues: str | None = Field(default=None, description="id of the paper this idea continued")
    human_score: float | None = Field(default=None, description="the researcher's latest Overall score, 1-10")
    human_note: str = ""
    mark: str | None = Field(default=None, description="follow-up | discard, the researcher's latest")

    @property
    def date(self) -> str:
        return self.created_at[:10]


class Verdict(BaseModel):
    """One rating of a paper by the researcher, on the reviewers' 1-10 Overall scale."""

    paper_id: str
    score: int = Field(ge=1, le=10)
    note: str = Field(default="", max_length=4000)
    mark: Literal["follow-up", "discard"] | None = None
    rated_at: str = ""


VERDICT_FIELDS = ("human_score", "human_note", "mark")
PAPER_COLUMNS = tuple(f for f in IndexRow.model_fields if f not in VERDICT_FIELDS)
# What a read of the papers selects: each paper with its latest verdict, if any.
PAPER_SELECT = (
    f"SELECT {', '.join(f'papers.{c}' for c in PAPER_COLUMNS)}, v.score AS human_score, "
    "COALESCE(v.note, '') AS human_note, v.mark AS mark FROM papers LEFT JOIN latest_verdicts v ON v.paper_id = papers.id"
)
_JSON_COLUMNS = ("knobs", "timings")


def row_to_sql(row: IndexRow) -> dict[str, Any]:
    values = row.model_dump()
    for col in _JSON_COLUMNS:
        values[col] = json.dumps(values[col])
    if values["faithful"] is not None:
        values["faithful"] = int(values["faithful"])
    return values


def row_from_sql(rec: sqlite3.Row) -> IndexRow:
    values = dict(rec)
    for col in _JSON_COLUMNS:
        values[col] = json.loads(values[col] or ("[]" if col == "knobs" else "{}"))
    if values["faithful"] is not None:
        values["faithful"] = bool(values["faithful"])
    return IndexRow.model_validate(values)


def insert_verdict(db: sqlite3.Connection, verdict: Verdict) -> None:
    db.execute("INSERT INTO verdicts (paper_id, score, note, mark, rated_at) VALUES (?, ?, ?, ?, ?)",
               (verdict.paper_id, verdict.score, verdict.note, verdict.mark, verdict.rated_at))


def insert_paper(db: sqlite3.Connection, row: IndexRow) -> str:
    """Insert unless (run_id, idea_name) or id is already indexed; returns the indexed id."""
    values = {k: v for k, v in row_to_sql(row).items() if k in PAPER_COLUMNS}
    cols = ", ".join(PAPER_COLUMNS)
    marks = ", ".join(f":{c}" for c in PAPER_COLUMNS)
    db.execute(f"INSERT OR IGNORE INTO papers ({cols}) VALUES ({marks})", values)
    found = db.execute(
        "SELECT id FROM papers WHERE run_id = ? AND idea_name = ?", (row.run_id, row.idea_name)
    ).fetchone()
    return found[0] if found else row.id


def upsert_outcome(db: sqlite3.Connection, outcome: Outcome) -> None:
    """The latest report for (run_id, idea_name) wins: a resumed run may fail then succeed.
    (An archived idea's score is its paper's, in `papers`; it is not stored twice.)"""
    cols = tuple(f for f in Outcome.model_fields if f != "score")
    names = ", ".join(cols)
    marks = ", ".join(f":{c}" for c in cols)
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in ("run_id", "idea_name"))
    db.execute(
        f"INSERT INTO outcomes ({names}) VALUES ({marks}) "
        f"ON CONFLICT (run_id, idea_name) DO UPDATE SET {updates}",
        outcome.model_dump(include=set(cols)),
    )
