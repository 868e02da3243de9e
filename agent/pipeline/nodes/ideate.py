"""Ideate: the brain proposes a generation of ideas against the template and the archive."""

from __future__ import annotations

import json

from agent.errors import StageFailed, TemplateError, UserError
from agent.models import ArchivedIdea, Idea, IdeationContext
from agent.pipeline.deps import Deps
from agent.pipeline.progress import emit
from agent.pipeline.state import RunState


def seed_ideas(deps: Deps) -> list[Idea]:
    path = deps.template.path / "seed_ideas.json"
    try:
        return [Idea.model_validate(i) for i in json.loads(path.read_text())]
    except ValueError as e:
        raise TemplateError(str(path), "ideas", str(e).splitlines()[0]) from None


def ideate(deps: Deps, state: RunState) -> dict:
    generation = state.get("generation", 0) + 1
    emit("run", "ideate", note=f"generation {generation}: {deps.settings.num_ideas} ideas")
    taken = {o["idea_name"] for o in state.get("outcomes", [])}  # names used by earlier generations
    past = deps.archive.past_ideas(deps.template.name)
    ctx = IdeationContext(
        template=deps.template,
        archive=past,
        seed_ideas=seed_ideas(deps),
        num_ideas=deps.settings.num_ideas,
        follow_ups=deps.archive.follow_ups(deps.template.name),
    )
    try:
        proposed = deps.brain.ideas(ctx)
    except StageFailed as e:  # nothing to fail yet: stop the run; resume asks again
        raise UserError(f"ideation failed at the {e.stage} call ({e.reason}); `ai-scientist resume {state['run_id']}` retries") from None
    discarded = [p for p in past if p.mark == "discard"]
    papers = {p.paper_id for p in past}
    ideas: list[Idea] = []
    for idea in proposed:
        if idea.name in taken or any(i.name == idea.name for i in ideas) or _repeats(idea, discarded):
            continue
        if idea.continues and idea.continues not in papers:  # a continuation of nothing we have
            idea = idea.model_copy(update={"continues": None})
        ideas.append(idea)
    ideas = ideas[: deps.settings.num_ideas]
    (deps.run_dir / f"ideas-gen{generation}.json").write_text(json.dumps([i.model_dump() for i in ideas], indent=1))
    emit("run", "done", note=f"generation {generation}: {len(ideas)} ideas proposed")
    return {"ideas": [i.model_dump() for i in ideas], "generation": generation}


def _repeats(idea: Idea, discarded: list[ArchivedIdea]) -> bool:
    """Whether `idea` proposes again what the researcher discarded: the same idea, or the same
    knob set studied again (a continuation of a discarded paper is one too)."""
    return any(idea.name == d.name or (idea.knobs and set(idea.knobs) == set(d.knobs))
               or (idea.continues and idea.continues == d.paper_id) for d in discarded)

