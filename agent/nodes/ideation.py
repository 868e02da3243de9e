"""Ideate against the archive, check novelty, and make sure the baseline exists, before the
ideas fan out."""

from __future__ import annotations

import json
import shutil

from agent import literature
from agent.brain import Idea, IdeationContext
from agent.errors import TemplateError
from agent.nodes.baseline import ensure_baseline, load_info
from agent.nodes.deps import Deps
from agent.nodes.plotting import novelty_file
from agent.progress import emit
from agent.state import Outcome, RunState


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
    ideas: list[Idea] = []
    for idea in deps.brain.ideas(ctx):
        if idea.name in taken or any(i.name == idea.name for i in ideas):
            continue
        ideas.append(idea)
    ideas = ideas[: deps.settings.num_ideas]
    (deps.run_dir / f"ideas-gen{generation}.json").write_text(json.dumps([i.model_dump() for i in ideas], indent=1))
    return {"ideas": [i.model_dump() for i in ideas], "generation": generation}


def novelty(deps: Deps, state: RunState) -> dict:
    """Keep the ideas the brain judges novel against the literature and the archive."""
    past = deps.archive.past_ideas(deps.template.name)
    settings = literature.LiteratureSettings(offline=deps.settings.literature_offline)
    novel, skipped = [], []
    for raw in state["ideas"]:
        idea = Idea.model_validate(raw)
        emit(idea.name, "novelty", note=idea.title)
        evidence = literature.gather_evidence(idea, deps.template, past, settings)
        decision = deps.brain.novelty(idea, evidence.hits)
        path = novelty_file(deps, idea.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([h.model_dump() for h in evidence.hits], indent=1))
        with (deps.run_dir / "novelty.log").open("a") as f:
            f.write(json.dumps({"idea": idea.name, "decision": decision.model_dump(),
                                "sources": evidence.sources_used, "notes": evidence.notes}) + "\n")
        if decision.novel:
            novel.append(raw)
        else:
            emit(idea.name, "failed", note=f"not novel: {decision.reason[:150]}")
            deps.archive.record_outcome(state["run_id"], deps.template.name, idea.name, idea.title,
                                        "novelty", "skipped", decision.reason)
            skipped.append(Outcome(idea=idea.name, title=idea.title, status="skipped", stage="novelty",
                                   reason=decision.reason, paper_id=None, score=None))
    return {"novel": novel, "outcomes": skipped}


def baseline(deps: Deps, state: RunState) -> dict:
    """Copy the cached baseline `run_0` into this run (running it first if needed)."""
    cached = ensure_baseline(deps.template, deps.settings.scale, deps.settings.experiments, deps.executor)
    dst = deps.run_dir / "baseline" / "run_0"
    if not dst.is_dir():
        shutil.copytree(cached, dst)
    return {"baseline": load_info(dst)}
