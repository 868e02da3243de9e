"""One idea's folders, and the only code that knows their layout.

    experiments/<run_id>/
    ├── <idea>/              the work tree: the template's files, run_N/, figures/, paper/. The
    │                        only folder this idea's sandboxes see, so hostile once one has run:
    │                        it is read and written only through agent.sandbox.files.
    ├── <idea>.nodes/nK/     --search tree: one work tree per search node, made from its parent's
    │                        commit, where that node alone runs (hostile like the one above)
    └── <idea>.state/        ours alone; no sandbox ever binds it
        ├── git/             the idea's git dir, one commit per attempt (see gitrepo)
        ├── runs.json        every finished run, so a resumed idea goes on where it stopped
        ├── notes.md         the lab notebook (the brain's entry per run)
        ├── memory.json      the coder's conversation across runs (agent.models.Conversation)
        ├── search.json      --search tree: the search tree, saved after every node
        ├── search_tree.png  its figure, drawn by our own code (agent.paper.tree_figure)
        ├── literature.json  what the novelty stage found
        ├── results.json     every run's numbers and the analysis: all a paper may quote
        ├── figures.json, sections.json, citations.json, faithfulness.json, review.json
        └── logs/            LaTeX's logs

Every stage reads what the one before it wrote through the typed methods here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from agent import literature
from agent.archive.files import atomic_write_text
from agent.gitrepo import IdeaRepo
from agent.models import (
    Citation,
    Conversation,
    FigureImage,
    FigureNote,
    Idea,
    LiteratureHit,
    PaperContext,
    Results,
    ReviewRecord,
    RunRecord,
    SearchTree,
)
from agent.paper.faithfulness import FaithfulnessReport
from agent.sandbox import files
from agent.template.contract import Template

PAPER = "paper"
FIGURES = "figures"
LABELS = "labels.json"
IMAGE_LIMIT = 4 * 2**20  # a figure larger than this is not sent to a model
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEARCH_FIGURE = "search_tree.png"
# Copies of the template leave out what a run or an editor left there.
_NOT_COPIED = shutil.ignore_patterns("__pycache__", "*.pyc", "run_*", ".git")
_RUNS = TypeAdapter(list[RunRecord])
_FIGURES = TypeAdapter(list[FigureNote])
_CITATIONS = TypeAdapter(list[Citation])
_HITS = TypeAdapter(list[LiteratureHit])


class IdeaWorkdir:
    """The work tree, the state folder and the git history of one idea in one run."""

    def __init__(self, run_dir: Path, idea: str):
        self.name = idea
        self.tree = Path(run_dir) / idea
        self.state = Path(run_dir) / f"{idea}.state"
        self.repo = IdeaRepo(self.state / "git", self.tree)

    # ------------------------------------------------------------ the work tree

    @property
    def paper_dir(self) -> Path:
        return self.tree / PAPER

    @property
    def log_dir(self) -> Path:
        return self.state / "logs"

    def create(self, template: Template, continues: Path | None = None) -> None:
        """Copy the template into the tree and commit it, unless that was done already. With
        `continues` (an archived paper's workdir.bundle) the tree starts from that paper's final
        code instead, with its history, and the template tag where the template was."""
        if self.repo.exists:
            return
        if self.tree.exists():  # a half-made tree from a crash before the first commit
            files.remove(self.tree.parent, self.tree.name)
        self.state.mkdir(parents=True, exist_ok=True)
        if continues is None:
            shutil.copytree(template.path, self.tree, ignore=_NOT_COPIED, symlinks=False)
            self.repo.init(f"template {template.name}")
            return
        self.tree.mkdir()
        self.repo.clone_bundle(continues)
        files.scan(self.tree)  # what a bundle checks out is a run's tree too: no link survives
        for rel in files.list_dirs(self.tree):  # its outputs stay in the archive; the code carries on
            if rel.startswith("run_") or rel in (FIGURES, PAPER):
                files.remove(self.tree, rel)
        self.repo.commit(f"continue paper {continues.parent.name}", always=True)

    def commit(self, message: str, *, always: bool = False) -> str | None:
        return self.repo.commit(message, always=always)

    def read(self, rel: str) -> str:
        """A text file of the tree (code, a log); refuses links, special files, huge files."""
        return files.read_text(self.tree, rel)

    def write(self, rel: str, text: str) -> None:
        files.write_text(self.tree, rel, text)

    def figure_files(self) -> list[str]:
        return files.list_files(self.tree, FIGURES, (".png",)) if files.kind(self.tree, FIGURES) == "dir" else []

    def figure_images(self, notes: list[FigureNote]) -> list[FigureImage]:
        """Each figure's PNG as a model may see it: a regular file of at most IMAGE_LIMIT bytes
        that starts as a PNG does (what a sandbox wrote is otherwise not sent anywhere)."""
        out = []
        for note in notes:
            try:
                png = files.read_bytes(self.tree / FIGURES, note.file, limit=IMAGE_LIMIT)
            except (OSError, ValueError, files.UnsafeFile):
                continue
            if png.startswith(PNG_MAGIC):
                out.append(FigureImage(name=note.file, png=png, caption=note.caption))
        return out

    def fresh_dir(self, rel: str) -> Path:
        """An empty folder `rel` of the tree (whatever was there is removed), for the next run."""
        files.remove(self.tree, rel)
        files.make_dirs(self.tree, rel)
        return self.tree / rel

    def restore(self, rel: str) -> None:
        """Put one file back as the template had it."""
        files.write_bytes(self.tree, rel, self.repo.show("template", rel))

    def node_dir(self, node: int) -> Path:
        """The work tree of search node `node` (hostile once it has run)."""
        return self.tree.with_name(f"{self.name}.nodes") / f"n{node}"

    # ------------------------------------------------------------ the state folder

    def _path(self, name: str) -> Path:
        self.state.mkdir(parents=True, exist_ok=True)
        return self.state / name

    def _save(self, name: str, data: Any) -> None:
        atomic_write_text(self._path(name), json.dumps(data, indent=1, default=str))

    def _load(self, name: str) -> Any:
        path = self.state / name
        return json.loads(path.read_text()) if path.is_file() else None

    def runs(self) -> list[RunRecord]:
        return _RUNS.validate_python(self._load("runs.json") or [])

    def save_runs(self, runs: list[RunRecord]) -> None:
        self._save("runs.json", _RUNS.dump_python(runs, mode="json"))

    def search(self) -> SearchTree | None:
        """The search tree (--search tree), or None before it starts and with --search linear."""
        data = self._load("search.json")
        return SearchTree.model_validate(data) if data is not None else None

    def save_search(self, tree: SearchTree) -> None:
        self._save("search.json", tree.model_dump(mode="json"))

    @property
    def search_figure(self) -> Path:
        return self.state / SEARCH_FIGURE

    def notes(self) -> str:
        path = self.state / "notes.md"
        return path.read_text() if path.is_file() else ""

    def note(self, text: str) -> None:
        """Append an entry to the lab notebook."""
        with self._path("notes.md").open("a") as f:
            f.write(text.rstrip() + "\n\n")

    def memory(self) -> Conversation:
        return Conversation.model_validate(self._load("memory.json") or {})

    def save_memory(self, memory: Conversation) -> None:
        self._save("memory.json", memory.model_dump(mode="json"))

    def literature(self) -> list[LiteratureHit]:
        return _HITS.validate_python(self._load("literature.json") or [])

    def save_literature(self, hits: list[LiteratureHit]) -> None:
        self._save("literature.json", _HITS.dump_python(hits, mode="json"))

    def results(self) -> Results:
        return Results.model_validate(self._load("results.json"))

    def results_dict(self) -> dict[str, Any]:
        """results.json as written, for the faithfulness check and the archive."""
        return self._load("results.json")

    def save_results(self, results: Results) -> None:
        self._save("results.json", results.model_dump(mode="json"))

    def figures(self) -> list[FigureNote]:
        return _FIGURES.validate_python(self._load("figures.json") or [])

    def save_figures(self, notes: list[FigureNote]) -> None:
        self._save("figures.json", _FIGURES.dump_python(notes, mode="json"))

    def citations(self) -> list[Citation]:
        return _CITATIONS.validate_python(self._load("citations.json") or [])

    def save_citations(self, citations: list[Citation]) -> None:
        self._save("citations.json", _CITATIONS.dump_python(citations, mode="json"))

    def sections(self) -> dict[str, str]:
        return self._load("sections.json") or {}

    def save_sections(self, parts: dict[str, str]) -> None:
        self._save("sections.json", parts)

    def faithfulness(self) -> FaithfulnessReport:
        return FaithfulnessReport.model_validate(self._load("faithfulness.json"))

    def save_faithfulness(self, report: FaithfulnessReport) -> None:
        self._save("faithfulness.json", report.model_dump(mode="json"))

    def paper_context(self, idea: Idea, template: Template, scale: str, author_line: str) -> PaperContext:
        """What the plot, writeup and review stages know about the idea."""
        results = self.results()
        return PaperContext(
            idea=idea, template=template, scale=scale, baseline=results.baseline, runs=self.runs(),
            analysis=results.analysis, figures=self.figures(), notes=self.notes(), literature=self.literature(),
            bib_keys=literature.bib_keys(template.path / "latex" / "references.bib"), author_line=author_line,
            search=results.search,
        )

    def review(self) -> ReviewRecord:
        return ReviewRecord.model_validate(self._load("review.json"))

    def save_review(self, record: ReviewRecord) -> None:
        self._save("review.json", record.model_dump(mode="json", exclude_none=True))
