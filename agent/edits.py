"""Strict SEARCH/REPLACE edits: an edit applies only if its SEARCH text occurs exactly once, in a
file the stage lets a brain edit.

A brain may edit only the files named in `editable` (for experiments: `experiment.py`,
`plot.py` and what `template.toml` lists; for LaTeX repairs: `paper.tex`): never a dot-file,
anything under `.git`, or a path through a symlink. Files are read and written through
agent.sandbox.files, since the folder is one that sandboxed code has run in.

A refused edit raises `EditRefused` with a message meant for the brain: it says which file and
why, so the next attempt can quote the code correctly.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path, PurePosixPath

from agent.models import Edit
from agent.sandbox import files


class EditRefused(ValueError):
    """An edit whose SEARCH text is missing or ambiguous, or whose file may not be edited."""


def _target(edit: Edit, editable: Collection[str]) -> str:
    rel = str(PurePosixPath(edit.path.strip().removeprefix("./")))
    parts = PurePosixPath(rel).parts
    if rel in editable and not any(p.startswith(".") for p in parts):
        return rel
    if not parts or rel.startswith("/") or ".." in parts:
        why = "its path is outside the work folder"
    elif any(p.startswith(".") for p in parts):
        why = "dot-files and git metadata are never edited"
    else:
        why = "it is not one of the editable files"
    raise EditRefused(f"{edit.path}: {why}; edits may only change {', '.join(sorted(editable))}")


def _read(root: Path, rel: str) -> str:
    try:
        return files.read_text(root, rel)
    except FileNotFoundError:
        raise EditRefused(f"{rel}: no such file") from None
    except files.UnsafeFile as e:
        raise EditRefused(f"{rel}: cannot be edited ({e.reason})") from None


def _applied(text: str, edit: Edit) -> str:
    count = text.count(edit.search) if edit.search else 0
    if count == 0:
        raise EditRefused(f"{edit.path}: SEARCH text not found; copy it exactly from the current file")
    if count > 1:
        raise EditRefused(f"{edit.path}: SEARCH text occurs {count} times; include more context to make it unique")
    return text.replace(edit.search, edit.replace, 1)


def apply_edits(root: Path, edits: list[Edit], editable: Collection[str]) -> None:
    """Apply `edits` in order, all or none: each is checked against the text as the earlier ones
    left it, and nothing is written unless every one applies."""
    texts: dict[str, str] = {}
    for edit in edits:
        rel = _target(edit, editable)
        if rel not in texts:
            texts[rel] = _read(root, rel)
        texts[rel] = _applied(texts[rel], edit)
    for rel, text in texts.items():
        try:
            files.write_text(root, rel, text)
        except files.UnsafeFile as e:
            raise EditRefused(f"{rel}: cannot be edited ({e.reason})") from None
