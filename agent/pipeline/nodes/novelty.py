"""Novelty: keep the ideas the brain judges novel against the literature and the archive."""

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
            novel.append(raw)
            continue
        if isinstance(decision, NoveltyDecision):
            decision = failed(deps, task, "novelty", f"not novel: {decision.reason}", "skipped")
        ended.append(finish_idea(deps, decision).model_dump())
    return {"novel": novel, "outcomes": ended}


def judge(deps: Deps, task: IdeaTask, past: list[ArchivedIdea],
          settings: literature.LiteratureSettings) -> NoveltyDecision:
    """Gather evidence for one idea, ask the brain, and log both."""
    idea = Idea.model_validate(task["idea"])
    evidence = literature.gather_evidence(idea, deps.template, past, settings)
    if idea.continues:  # the researcher asked for it: the literature still feeds the paper
        decision = NoveltyDecision(novel=True, reason=f"a continuation of paper {idea.continues}, which the "
                                   "researcher marked follow-up")
    else:
        decision = deps.brain.novelty(idea, evidence.hits)
    deps.workdir(idea.name).save_literature(evidence.hits)
    with (deps.run_dir / "novelty.log").open("a") as f:
        f.write(json.dumps({"idea": idea.name, "decision": decision.model_dump(),
                            "sources": evidence.sources_used, "notes": evidence.notes}) + "\n")
    return decision
