"""Strict SEARCH/REPLACE edits: an edit applies only if its SEARCH text occurs exactly once.

A refused edit raises `EditRefused` with a message meant for the brain: it says which file
and why, so the next attempt can quote the code correctly.
"""

from __future__ import annotations

from pathlib import Path

from agent.models import Edit


class EditRefused(ValueError):
    """An edit whose SEARCH text is missing, ambiguous, or whose path leaves the workdir."""


def apply_edit(root: Path, edit: Edit) -> None:
    """Apply one edit to a file under `root`, or raise `EditRefused` and change nothing."""
    target = (root / edit.path).resolve()
    if not target.is_relative_to(root.resolve()):
        raise EditRefused(f"{edit.path}: path is outside the work folder")
    if not target.is_file():
        raise EditRefused(f"{edit.path}: no such file")
    text = target.read_text()
    count = text.count(edit.search) if edit.search else 0
    if count == 0:
        raise EditRefused(f"{edit.path}: SEARCH text not found; copy it exactly from the current file")
    if count > 1:
        raise EditRefused(f"{edit.path}: SEARCH text occurs {count} times; include more context to make it unique")
    target.write_text(text.replace(edit.search, edit.replace, 1))


def apply_edits(root: Path, edits: list[Edit]) -> None:
    """Apply edits in order; on the first refusal, restore every file touched and re-raise."""
    originals: dict[Path, str] = {}
    try:
        for edit in edits:
            target = (root / edit.path).resolve()
            if target.is_file() and target not in originals:
                originals[target] = target.read_text()
            apply_edit(root, edit)
    except EditRefused:
        for path, text in originals.items():
            path.write_text(text)
        raise
