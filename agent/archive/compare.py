"""Two archived papers side by side: their ideas, their scores (the automated review's and the
researcher's), their primary results per dataset, and the diff between their code.

The code diff comes from the papers' own `workdir.bundle`s, fetched into a scratch repository
with hardened git (agent.gitrepo), so it is the real difference between the two final states,
run outputs, figures and paper sources left out.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import git
from pydantic import BaseModel

from agent.archive.index import IndexRow
from agent.archive.store import Archive
from agent.gitrepo import IdeaRepo

_LEFT_OUT = (":(exclude)run_*", ":(exclude)figures", ":(exclude)paper")


class DatasetResult(BaseModel):
    baseline: float | None = None
    best_label: str = ""
    best: float | None = None


class Side(BaseModel):
    """One paper of a comparison."""

    row: IndexRow
    hypothesis: str = ""
    primary_metric: str = ""
    direction: str = ""
    results: dict[str, DatasetResult] = {}


class Comparison(BaseModel):
    a: Side
    b: Side
    code_diff: str
    diff_note: str = ""

    @property
    def datasets(self) -> list[str]:
        return sorted(set(self.a.results) | set(self.b.results))


def _side(archive: Archive, row: IndexRow) -> Side:
    folder = archive.folder(row.id)
    try:
        results = json.loads((folder / "results.json").read_text())
        analysis: dict[str, Any] = results.get("analysis") or {}
    except (OSError, ValueError, AttributeError):
        analysis = {}
    primary = str(analysis.get("primary_metric", ""))
    per_ds: dict[str, DatasetResult] = {}
    for ds, block in (analysis.get("baseline") or {}).items():
        best = (analysis.get("best") or {}).get(ds) or {}
        per_ds[ds] = DatasetResult(baseline=(block.get(primary) or {}).get("mean"), best_label=str(best.get("label", "")),
                                   best=best.get("mean"))
    return Side(row=row, hypothesis=row.hypothesis, primary_metric=primary,
                direction=str(analysis.get("direction", "")), results=per_ds)


def code_between(folder_a: Path, folder_b: Path) -> tuple[str, str]:
    """(diff from paper a's final code to paper b's, a note when there is none to show)."""
    bundles = [folder_a / "workdir.bundle", folder_b / "workdir.bundle"]
    missing = [b.parent.name for b in bundles if not b.is_file()]
    if missing:
        return "", f"no workdir.bundle in {', '.join(missing)}"
    with tempfile.TemporaryDirectory(prefix="ai-scientist-compare-") as tmp:
        empty = Path(tmp) / "tree"
        empty.mkdir()
        repo = IdeaRepo(Path(tmp) / "git", empty)
        try:
            repo.run("init", "--quiet", "--template=")
            for name, bundle in zip(("a", "b"), bundles, strict=True):
                repo.fetch_bundle(bundle, f"+HEAD:refs/compare/{name}")
            diff = str(repo.run("diff", "--no-ext-diff", "--no-textconv", "--no-color", "refs/compare/a",
                                "refs/compare/b", "--", ".", *_LEFT_OUT))
        except git.GitCommandError as e:
            return "", f"the bundles could not be read ({str(e.stderr).strip().splitlines()[-1:] or e.status})"
    return diff, "" if diff.strip() else "the two papers' code is the same"


def compare(archive: Archive, id_a: str, id_b: str) -> Comparison:
    """Compare two papers by id (or unique prefix)."""
    a, b = archive.get(id_a), archive.get(id_b)
    diff, note = code_between(archive.folder(a.id), archive.folder(b.id))
    return Comparison(a=_side(archive, a), b=_side(archive, b), code_diff=diff, diff_note=note)
