"""Ideate against the archive, check novelty, and make sure the baseline exists, before the
ideas fan out."""

from __future__ import annotations

import json
import shutil

from agent import literature
from agent.brain import ArchivedIdea, Idea, IdeationContext, NoveltyDecision
from agent.errors import StageFailed, TemplateError, UserError
from agent.nodes.baseline import ensure_baseline, load_info
from agent.nodes.deps import Deps
from agent.nodes.plotting import novelty_file
from agent.nodes.stage import failed, finish_idea, guarded
from agent.progress import emit
from agent.state import IdeaTask, RunState


def seed_ideas(deps: Deps) -> list[Idea]:
    path = deps.template.path / "seed_ideas.json"
    try:
        return [Idea.model_validate(i) for i in json.loads(path.read_text())]
    except ValueError as e:
        raise TemplateError(str(path), "ideas", str(e).splitlines()[0]) from None


def ideate(deps: Deps, state: RunState) -> dict:
    generation = state.get("generation", 0) + 1
    emit("run", "ideate", note=f"generation {generation}: {deps.settings.num_ideas} ideas")
    taken = {o["idea"] for o in state.get("outcomes", [])}  # names used by earlier generations
    ctx = IdeationContext(
        template=deps.template,
        archive=deps.archive.past_ideas(deps.template.name),
        seed_ideas=seed_ideas(deps),
        num_ideas=deps.settings.num_ideas,
    )
    try:
        proposed = deps.brain.ideas(ctx)
    except StageFailed as e:  # nothing to fail yet: stop the run; resume asks again
        raise UserError(f"ideation failed at the {e.stage} call ({e.reason}); `ai-scientist resume {state['run_id']}` retries") from None
    ideas: list[Idea] = []
    for idea in proposed:
        if idea.name in taken or any(i.name == idea.name for i in ideas):
            continue
        ideas.append(idea)
    ideas = ideas[: deps.settings.num_ideas]
    (deps.run_dir / f"ideas-gen{generation}.json").write_text(json.dumps([i.model_dump() for i in ideas], indent=1))
    emit("run", "done", note=f"generation {generation}: {len(ideas)} ideas proposed")
    return {"ideas": [i.model_dump() for i in ideas], "generation": generation}


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
            decision = failed(task, "novelty", f"not novel: {decision.reason}", "skipped")
        ended.append(finish_idea(deps, task, decision))
    return {"novel": novel, "outcomes": ended}


def judge(deps: Deps, task: IdeaTask, past: list[ArchivedIdea],
          settings: literature.LiteratureSettings) -> NoveltyDecision:
    """Gather evidence for one idea, ask the brain, and log both."""
    idea = Idea.model_validate(task["idea"])
    evidence = literature.gather_evidence(idea, deps.template, past, settings)
    decision = deps.brain.novelty(idea, evidence.hits)
    path = novelty_file(deps, idea.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([h.model_dump() for h in evidence.hits], indent=1))
    with (deps.run_dir / "novelty.log").open("a") as f:
        f.write(json.dumps({"idea": idea.name, "decision": decision.model_dump(),
                            "sources": evidence.sources_used, "notes": evidence.notes}) + "\n")
    return decision


def baseline(deps: Deps, state: RunState) -> dict:
    """Copy the cached baseline `run_0` into this run (running it first if needed)."""
    cached = ensure_baseline(deps.template, deps.settings.scale, deps.settings.experiments, deps.executor)
    dst = deps.run_dir / "baseline" / "run_0"
    if not dst.is_dir():
        shutil.copytree(cached, dst)
    emit("baseline", "done", note=f"baseline run_0 ready ({deps.settings.scale} scale)")
    return {"baseline": load_info(dst)}
