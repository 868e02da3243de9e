"""Unified-diff helpers: a `git diff --stat`-like summary, and line kinds for colouring."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel

LineKind = Literal["file", "hunk", "add", "del", "ctx"]
_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


class FileStat(BaseModel):
    path: str
    added: int = 0
    removed: int = 0


def _path_of(header: str) -> str:
    """`+++ b/experiment.py` -> `experiment.py` (`/dev/null` for a deleted file)."""
    path = header[4:].split("\t", 1)[0].strip()
    return path[2:] if path[:2] in ("a/", "b/") else path


def classify(diff: str) -> Iterator[tuple[LineKind, str]]:
    """Each line of a unified diff with its kind.

    Hunk headers give the line counts, so a removed line that itself starts with `--- `
    is never mistaken for the next file's header.
    """
    old_left = new_left = 0  # lines still expected in the current hunk
    for line in diff.splitlines():
        if old_left > 0 or new_left > 0:
            if line.startswith("+"):
                new_left -= 1
                yield "add", line
            elif line.startswith("-"):
                old_left -= 1
                yield "del", line
            else:
                if not line.startswith("\\"):  # "\ No newline at end of file" counts for neither side
                    old_left, new_left = old_left - 1, new_left - 1
                yield "ctx", line
        elif m := _HUNK.match(line):
            old_left, new_left = int(m.group(1) or 1), int(m.group(2) or 1)
            yield "hunk", line
        elif line.startswith(("diff ", "--- ", "+++ ", "index ", "new file", "deleted file")):
            yield "file", line
        else:
            yield "ctx", line


def diff_stat(diff: str) -> list[FileStat]:
    """Lines added and removed per file (git or plain `diff -u` output)."""
    stats: list[FileStat] = []
    old_path = ""
    for kind, line in classify(diff):
        if kind == "file" and line.startswith("--- "):
            old_path = _path_of(line)
        elif kind == "file" and line.startswith("+++ "):
            new_path = _path_of(line)
            stats.append(FileStat(path=old_path if new_path == "/dev/null" else new_path))
        elif kind == "add" and stats:
            stats[-1].added += 1
        elif kind == "del" and stats:
            stats[-1].removed += 1
    return stats
