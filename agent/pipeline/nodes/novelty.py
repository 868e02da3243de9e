"""Novelty: keep the ideas the brain judges novel, after it searched the literature and the
archive in up to `--novelty-rounds` rounds. The decision and the papers behind it go into the
idea (so into the archive's idea.json), every paper found into the idea's literature.json."""

from __future__ import annotations

import json

from agent import literature
from agent.models import ArchivedIdea, Idea, NoveltyDecision
from agent.pipeline.deps import Deps
from agent.pipeline.stage import failed, finish_idea, guarded
from agent.pipeline.state import IdeaTask, RunState


def novelty(deps: Deps, state: RunState) -> dict:
    """Keep the ideas the brain judges novel against the literature and the archive."""
    past = deps.archive.past_ideas(deps.template.name)
    settings = literature.LiteratureSettings(offline=deps.settings.literature_offline)
    novel, ended = [], []
    for raw in state["ideas"]:
        task = IdeaTask(run_id=state["run_id"], idea=raw)
        decision = guarded(deps, "novelty", lambda d, t: judge(d, t, past, settings), task)
        if isinstance(decision, NoveltyDecision) and decision.novel:
            novel.append({**raw, "novelty_check": decision.model_dump(mode="json")})
            continue
        if isinstance(decision, NoveltyDecision):
            decision = failed(deps, task, "novelty", f"not novel: {decision.reason}", "skipped")
        ended.append(finish_idea(deps, decision).model_dump())
    return {"novel": novel, "outcomes": ended}


def judge(deps: Deps, task: IdeaTask, past: list[ArchivedIdea],
          settings: literature.LiteratureSettings) -> NoveltyDecision:
    """Let the brain search and decide for one idea; log the decision and keep what was found."""
    idea = Idea.model_validate(task["idea"])
    search = literature.LiteratureSearch(idea, deps.template, past, settings)
    if idea.continues:  # the researcher asked for it: the literature still feeds the paper
        search.gather()
        decision = NoveltyDecision(novel=True, reason=f"a continuation of paper {idea.continues}, which the "
                                   "researcher marked follow-up")
    else:
        decision = deps.brain.novelty(idea, search, deps.settings.novelty_rounds)
    deps.workdir(idea.name).save_literature(search.literature())
    with (deps.run_dir / "novelty.log").open("a") as f:
        f.write(json.dumps({"idea": idea.name, "decision": decision.model_dump(mode="json"),
                            "queries": search.queries, "notes": search.notes}) + "\n")
    return decision
