"""Archive: copy the paper and everything behind it into the knowledge archive."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from agent.archive.store import PaperEntry
from agent.pipeline import workdir as wd
from agent.pipeline.deps import Deps
from agent.pipeline.nodes.experiments import NOTES_FILE
from agent.pipeline.nodes.plot import FIGURES_FILE, RESULTS_FILE
from agent.pipeline.nodes.review import REVIEW_FILE
from agent.pipeline.nodes.writeup import PAPER, SECTIONS_FILE
from agent.pipeline.stage import StageResult
from agent.pipeline.state import IdeaTask, Outcome


def archive(deps: Deps, task: IdeaTask) -> StageResult:
    workdir = Path(task["workdir"])
    idea = task["idea"]
    review = json.loads((workdir / REVIEW_FILE).read_text())
    meta = review["meta"]
    bundle = wd.bundle(workdir, deps.run_dir / f"{idea['name']}.bundle")
    entry = PaperEntry(
        run_id=task["run_id"],
        template=deps.template.name,
        scale=deps.settings.scale,
        idea=idea,
        title=json.loads((workdir / SECTIONS_FILE).read_text())["title"],
        review=review,
        overall=float(meta["overall"]),
        decision=meta["decision"],
        brain=deps.brain.info.kind,
        model=deps.brain.info.model,
        cost=deps.brain.ledger.summary(idea["name"]),
        timings=task.get("timings", {}),
        faithful=bool(review["faithfulness"].get("ok", False)),
        paper_dir=workdir / PAPER,
        results=json.loads((workdir / RESULTS_FILE).read_text()),
        notes=(workdir / NOTES_FILE).read_text(),
        code_diff=wd.code_diff(workdir),
        bundle_path=bundle,
        meta={"generation": task.get("generation", 1), "python": platform.python_version(),
              "machine": platform.machine(), "brain_label": deps.brain.info.label,
              "figures": json.loads((workdir / FIGURES_FILE).read_text())},
        log_files=sorted(workdir.glob("*.log")),
    )
    paper_id = deps.archive.add(entry)
    return Outcome(idea=idea["name"], title=entry.title, status="archived", stage="archive",
                   reason=f"overall {meta['overall']}/10, {meta['decision']}", paper_id=paper_id,
                   score=entry.overall)
