"""Archive: copy the paper and everything behind it into the knowledge archive."""

from __future__ import annotations

import platform

from agent.archive.store import PaperEntry, archived_outcome
from agent.models import Idea
from agent.pipeline import search
from agent.pipeline.deps import Deps
from agent.pipeline.stage import StageResult
from agent.pipeline.state import IdeaTask
from agent.pipeline.workdir import SEARCH_FIGURE
from agent.sandbox import files


def archive(deps: Deps, task: IdeaTask) -> StageResult:
    idea = Idea.model_validate(task["idea"])
    wd = deps.workdir(idea.name)
    review = wd.review()
    tree = wd.search()
    figures = [f.model_dump() for f in wd.figures()]
    if tree is not None:
        figures.append({"file": SEARCH_FIGURE, "caption": "The search tree (drawn from search.json)"})
    meta = review.meta
    entry = PaperEntry(
        run_id=task["run_id"],
        template=deps.template.name,
        scale=deps.settings.scale,
        idea=task["idea"],
        title=wd.sections()["title"],
        review=review.model_dump(mode="json", exclude_none=True),
        overall=float(meta.overall),
        decision=meta.decision,
        brain=deps.brain.info.kind,
        model=deps.brain.info.model,
        cost=deps.ledger.summary(idea.name),
        timings=task.get("timings", {}),
        faithful=bool(review.faithfulness.get("ok", False)),
        paper_dir=wd.paper_dir,
        results=wd.results_dict(),
        notes=wd.notes(),
        code_diff=wd.repo.code_diff(),
        bundle_path=wd.repo.bundle(wd.state / "workdir.bundle"),
        meta={"generation": task.get("generation", 1), "python": platform.python_version(),
              "machine": platform.machine(), "brain_label": deps.brain.info.label,
              "figures": figures},
        log_files=[wd.tree / name for name in files.list_files(wd.tree, ".", (".log",))],
        search=search.archive_view(wd, tree) if tree is not None else None,
    )
    return archived_outcome(entry, deps.archive.add(entry))
