"""Unified-diff helpers on unidiff: a `git diff --stat`-like summary, and line kinds for colouring.

unidiff reads each hunk by the line counts in its header, so a removed line that itself
starts with `--- ` is never mistaken for the next file's header. A diff it refuses (cut
short, edited by hand) still shows: its lines are then coloured by their first character
alone, and it has no summary.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel
from unidiff import LINE_TYPE_ADDED, LINE_TYPE_REMOVED, PatchSet, UnidiffParseError

LineKind = Literal["file", "hunk", "add", "del", "ctx"]
_HEADERS = ("diff ", "--- ", "+++ ", "index ", "new file", "deleted file")


class FileStat(BaseModel):
    path: str
    added: int = 0
    removed: int = 0


def _patch(diff: str) -> PatchSet | None:
    try:
        return PatchSet(diff)
    except UnidiffParseError:
        return None


def classify(diff: str) -> Iterator[tuple[LineKind, str]]:
    """Each line of a unified diff (split at `\\n`, as unidiff splits it) with its kind."""
    patch = _patch(diff)
    kinds: dict[int, LineKind] = {}  # diff line number (from 1) -> kind, for lines inside hunks
    for file in patch or []:
        for hunk in file:
            for line in hunk:
                kinds[line.diff_line_no] = {LINE_TYPE_ADDED: "add", LINE_TYPE_REMOVED: "del"}.get(
                    line.line_type, "ctx"
                )
    for number, line in enumerate(io.StringIO(diff), 1):
        line = line.rstrip("\r\n")
        if number in kinds:
            yield kinds[number], line
        elif line.startswith(_HEADERS):
            yield "file", line
        elif line.startswith("@@"):
            yield "hunk", line
        elif patch is None and line[:1] in ("+", "-"):  # refused by unidiff: the first character decides
            yield ("add" if line[0] == "+" else "del"), line
        else:
            yield "ctx", line


def diff_stat(diff: str) -> list[FileStat]:
    """Lines added and removed per file (git or plain `diff -u` output); binary files and
    renames are listed with 0 and 0."""
    return [FileStat(path=f.path, added=f.added, removed=f.removed) for f in _patch(diff) or []]
