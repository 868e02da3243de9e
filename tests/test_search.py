"""The tree search's parts without running experiments: budgets and scores, the offline brain's
moves on the shipped 2d_diffusion knobs, and the controller's choices (successive halving,
selection, debugging, durability of plans) on trees written by hand into a real idea folder
with its real git history. The whole search, run in the sandbox, is in test_pipeline_search."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from agent.analysis import analyze
from agent.archive.store import Archive
from agent.brains.llm.ledger import Ledger
from agent.brains.offline import explore
from agent.brains.offline.brain import OfflineBrain
from agent.config import RunSettings
from agent.models import (
    ExpandContext,
    Expansion,
    Idea,
    IdeationContext,
    PaperContext,
    PlannedRun,
    RunRecord,
    SearchNode,
    SearchTree,
)
from agent.paper import faithfulness, search_section, tree_figure
from agent.pipeline import search
from agent.pipeline.deps import Deps
from agent.pipeline.nodes.writeup import unfaithful_sections
from agent.sandbox.executors import LocalExecutor
from agent.template.contract import SECTIONS, list_templates, load_template, templates_root

DIFFUSION = load_template(templates_root() / "2d_diffusion")
IDEA = Idea(
    name="timesteps_sweep",
    title="T",
    hypothesis="h",
    experiment="e",
    interestingness=5,
    feasibility=5,
    novelty=5,
    knobs=["num_timesteps"],
)


def info(values: dict[str, list[float]], metric: str = "mmd") -> dict[str, Any]:
    """A final_info.json with one metric: dataset -> per-seed values."""
    return {
        ds: {"means": {metric: sum(v) / len(v)}, "stderrs": {metric: 0.0}, "per_seed": {metric: v}}
        for ds, v in values.items()
    }


def tree_of(*nodes: SearchNode, direction: str = "minimize") -> SearchTree:
    root = SearchNode(
        id=0,
        parent=None,
        kind="root",
        plan=PlannedRun(description="root"),
        seeds=[0, 1, 2],
        run="run_0",
        status="done",
        results=info({"circle": [1.0, 2.0, 3.0]}),
        metric=2.0,
        score=0.0,
    )
    return SearchTree(
        idea="timesteps_sweep",
        metric="mmd",
        direction=direction,
        budget=12,
        budgets=search.stage_budgets(12),
        seeds=[0, 1, 2],
        fresh_seeds=[3, 4, 5],
        nodes=[root, *nodes],
    )


def node(
    i: int,
    parent: int,
    settings: dict,
    *,
    seeds=(0, 1, 2),
    values=None,
    stage="research",
    kind="draft",
    **extra: Any,
) -> SearchNode:
    results = info({"circle": values}) if values is not None else None
    return SearchNode(
        **{
            "id": i,
            "parent": parent,
            "kind": kind,
            "stage": stage,
            "seeds": list(seeds),
            "plan": PlannedRun(description=f"n{i}"),
            "run": f"run_{i}",
            "status": "done",
            "settings": settings,
            "results": results,
            "screened": len(seeds) == 1,
            **extra,
        }
    )


def ctx(tree: SearchTree, at: int, kind: str, idea: Idea = IDEA) -> ExpandContext:
    code = (DIFFUSION.path / "experiment.py").read_text()
    return ExpandContext(
        idea=idea, template=DIFFUSION, scale="smoke", tree=tree, node=at, kind=kind, code=code
    )


# ---------------------------------------------------------------- budgets and scores


@pytest.mark.parametrize("budget", [3, 5, 8, 12, 40])
def test_stage_budgets_add_up_and_always_keep_confirmation(budget: int) -> None:
    split = search.stage_budgets(budget)
    assert list(split) == ["tune", "research", "ablate", "confirm"]
    assert sum(split.values()) == budget and split["confirm"] == 2 and split["research"] >= 1
    assert (split["tune"], split["ablate"]) == ((0, 0) if budget < 6 else (split["tune"], split["ablate"]))


def test_confirmation_seeds_are_fresh() -> None:
    assert search.fresh_seeds([0, 1, 2]) == [3, 4, 5]
    assert not set(search.fresh_seeds([7, 2])) & {7, 2}


def test_the_score_compares_on_the_same_seeds_and_knows_the_direction() -> None:
    tree = tree_of()
    screened = info({"circle": [0.9]})  # seed 0 only: against the root's seed 0 (1.0), not its mean (2.0)
    assert search.score_of(tree, screened, [0]) == pytest.approx(0.1)
    assert search.score_of(tree, info({"circle": [1.1, 2.2, 3.3]}), [0, 1, 2]) == pytest.approx(-0.1)
    assert search.score_of(tree_of(direction="maximize"), screened, [0]) == pytest.approx(-0.1)
    assert search.score_of(tree, screened, [3]) is None, "fresh seeds have no root to compare with"
    assert tree.change_pct(tree.nodes[0].model_copy(update={"score": 0.1})) == pytest.approx(-10.0)


# ---------------------------------------------------------------- the offline brain's moves


def test_a_knob_ladder_steps_to_its_neighbours() -> None:
    lr = DIFFUSION.knob("learning_rate")
    steps = explore.ladder(lr)
    assert steps == sorted(steps) and lr.default in steps and len(steps) >= 4
    gaps = [b / a for a, b in zip(steps, steps[1:], strict=False)]
    assert min(gaps) > 1.5, "no rung sits next to the default by a rounding error"
    # num_timesteps makes runs costlier as it grows: the cheaper step comes first
    assert explore.neighbours(DIFFUSION.knob("num_timesteps"), 100) == [50, 200]
    assert explore.neighbours(DIFFUSION.knob("beta_schedule"), "linear") == ["quadratic", "cosine"]
    assert [k.name for k in explore.tune_knobs(DIFFUSION, [DIFFUSION.knob("num_timesteps")])] == [
        "learning_rate",
        "ema_decay",
    ], "cheap numeric knobs outside the idea; not hidden_layers (costly)"


def test_drafts_then_improvements_then_two_knob_interactions() -> None:
    brain = OfflineBrain()
    first = brain.expand(ctx(tree_of(), 0, "draft"))
    assert first is not None and first.screen and first.plan.knobs == {"num_timesteps": 50}
    assert first.plan.args == {"--num_timesteps": "50"}
    # around a node at T=50 tuned to lr=1e-3, both one-step neighbours of T, then pairs with lr
    tree = tree_of(
        node(1, 0, {"num_timesteps": 50, "learning_rate": 0.001}, values=[0.5, 1.0, 1.5]),
        node(2, 1, {"num_timesteps": 25, "learning_rate": 0.001}, values=[0.6, 1.0, 1.5]),
        node(3, 1, {"num_timesteps": 100, "learning_rate": 0.001}, values=[0.9, 2.0, 3.0]),
    )
    got = brain.expand(ctx(tree, 1, "improve"))
    assert got is not None and len(got.plan.knobs) == 2, "single steps are tried: now two knobs at once"
    assert got.plan.knobs["num_timesteps"] in (25, 100) and got.plan.knobs["learning_rate"] != 0.001


def test_nothing_in_the_tree_is_proposed_twice_and_ablations_undo_one_change() -> None:
    brain = OfflineBrain()
    tree = tree_of(
        node(1, 0, {"num_timesteps": 50}, values=[0.5, 1.0, 1.5]),
        node(2, 0, {"num_timesteps": 200}, values=[2.0, 2.0, 2.0]),
    )
    assert brain.expand(ctx(tree, 0, "draft")) is None, "both neighbours of the default are in the tree"
    tree = tree_of(node(1, 0, {"num_timesteps": 50, "learning_rate": 0.001}, values=[0.5, 1.0, 1.5]))
    ablation = brain.expand(ctx(tree, 1, "ablate"))
    assert ablation is not None and not ablation.screen
    assert ablation.plan.knobs == {"learning_rate": DIFFUSION.knob("learning_rate").default}
    tree.nodes.append(
        node(2, 1, {"num_timesteps": 50}, values=[0.5, 1.0, 1.5], kind="ablate", stage="ablate")
    )
    again = brain.expand(ctx(tree, 1, "ablate"))
    assert again is not None and again.plan.knobs == {"num_timesteps": 100}
    tree.nodes.append(
        node(3, 1, {"learning_rate": 0.001}, values=[0.5, 1.0, 1.5], kind="ablate", stage="ablate")
    )
    assert brain.expand(ctx(tree, 1, "ablate")) is None


def test_debugging_follows_what_the_error_says() -> None:
    brain = OfflineBrain()
    hidden = Idea(**{**IDEA.model_dump(), "knobs": ["hidden_layers"]})
    timed_out = node(1, 0, {"hidden_layers": 6}, buggy=True, bug="killed for timeout", kind="draft")
    fix = brain.expand(ctx(tree_of(timed_out), 1, "debug", hidden))
    assert fix is not None and fix.plan.knobs == {"hidden_layers": 4}, "one step back towards the parent's 3"
    crashed = node(1, 0, {"hidden_layers": 4}, buggy=True, bug="exit code 1", kind="draft")
    retry = brain.expand(ctx(tree_of(crashed), 1, "debug", hidden))
    assert retry is not None and retry.plan.knobs == {"hidden_layers": 4}, "nothing between 3 and 4: retried"
    twice = node(2, 1, {"hidden_layers": 4}, buggy=True, bug="exit code 1", kind="debug")
    assert brain.expand(ctx(tree_of(crashed, twice), 2, "debug", hidden)) is None, "a retry is not retried"
    refused = node(
        1,
        0,
        {"beta_schedule": "cosine"},
        buggy=True,
        bug="edit refused: experiment.py: SEARCH text not found",
        kind="draft",
    )
    again = brain.expand(ctx(tree_of(refused), 1, "debug"))
    assert again is not None and again.plan.edits and "cosine" in again.plan.edits[0].replace


def test_results_identical_to_the_parent_flag_the_node() -> None:
    same = node(1, 0, {"num_timesteps": 50}, values=[1.0, 2.0, 3.0])
    got = OfflineBrain().expand(ctx(tree_of(same), 1, "improve"))
    assert got is not None and got.plan is None and "num_timesteps" in got.flag


# ---------------------------------------------------------------- the controller's choices


@pytest.fixture
def lab(tmp_path: Path) -> search.Search:
    """A Search over a real idea folder (git, state) of 2d_diffusion with a made-up baseline;
    nothing in these tests runs an experiment."""
    settings = RunSettings(
        template=str(DIFFUSION.path),
        experiments=tmp_path,
        archive=tmp_path / "archive",
        search_budget=12,
        search_debug_prob=1.0,
    )
    run_dir = tmp_path / "run"
    (run_dir / "baseline" / "run_0").mkdir(parents=True)
    values = {ds: [1.0, 2.0, 3.0] for ds in DIFFUSION.datasets_for("smoke")}
    (run_dir / "baseline" / "run_0" / "final_info.json").write_text(json.dumps(info(values)))
    deps = Deps(
        settings=settings,
        template=DIFFUSION,
        brain=OfflineBrain(),
        ledger=Ledger(),
        executor=LocalExecutor(),
        local=LocalExecutor(),
        archive=Archive(tmp_path / "archive"),
        run_dir=run_dir,
    )
    wd = deps.workdir(IDEA.name)
    wd.create(DIFFUSION)
    return search.Search(deps, IDEA, wd)


def _screened(s: search.Search, i: int, value: float) -> SearchNode:
    n = node(
        i, 0, {"num_timesteps": [25, 50, 200][i - 1]}, seeds=[0], kind="draft", values=None, halving="waiting"
    )
    n.results = info({ds: [value] for ds in DIFFUSION.datasets_for("smoke")})
    n.score = search.score_of(s.tree, n.results, [0])
    s.tree.nodes.append(n)
    return n


def test_successive_halving_promotes_the_better_half_that_beats_its_parent(lab: search.Search) -> None:
    lab.tree.stage = "research"
    _screened(lab, 1, 0.7)
    assert lab._promotions(whole_rung=True) == [], "a rung is not judged before it is full"
    _screened(lab, 2, 0.8)
    _screened(lab, 3, 1.2)  # worse than the root's 1.0 on seed 0
    promoted = lab._promotions(whole_rung=True)
    assert [n.parent for n in promoted] == [1, 2], "ceil(3/2) kept, best first"
    assert all(n.kind == "replicate" and n.seeds == [0, 1, 2] and n.status == "planned" for n in promoted)
    assert [lab.tree.nodes[i].halving for i in (1, 2, 3)] == ["promoted", "promoted", "pruned"]
    assert lab.wd.search().nodes[-1].id == promoted[-1].id, "planned nodes are saved before they run"


def test_the_selection_is_the_best_node_of_the_idea_itself(lab: search.Search) -> None:
    t = lab.tree
    t.nodes += [
        node(1, 0, {"learning_rate": 0.001}, stage="tune", kind="tune", score=0.5),
        node(2, 1, {"num_timesteps": 50}, seeds=[0], score=0.4),
        node(3, 1, {"num_timesteps": 200}, score=0.1),
        node(4, 1, {"num_timesteps": 25}, score=0.9, buggy=True),
    ]
    assert lab._select() == 3, "run on every seed beats screened; a tuned baseline or a buggy node never wins"


def test_a_buggy_leaf_is_debugged_and_the_brain_can_only_add_bugs(lab: search.Search) -> None:
    t = lab.tree
    t.stage = "research"
    crashed = node(1, 0, {"hidden_layers": 6}, status="planned")
    t.nodes.append(crashed)
    tail = "killed for timeout\nTraceback (most recent call last):\n  ...\nKeyboardInterrupt"
    lab._record(crashed, search.RunOutcome(False, None, tail, 3.0), 1.0)
    assert crashed.bug == "killed for timeout: KeyboardInterrupt", "the first line and the error itself"
    assert crashed.buggy and crashed.debug, "p = 1: always debugged"
    [child] = lab._debug()
    assert child.kind == "debug" and child.parent == 1 and child.debug_depth == 1
    assert child.settings == {"hidden_layers": 4} and child.status == "planned"
    # a node whose results equal its parent's is flagged by the brain, and stays buggy
    same = node(3, 0, {"num_timesteps": 50}, values=None)
    same.results = t.nodes[0].results
    t.nodes.append(same)
    assert lab._ask(same, "improve") is None
    assert same.buggy and same.bug.startswith("flagged by the brain") and lab.wd.search().nodes[3].buggy


class RootFlagger:
    """Stands in for a weak LLM that calls the template's own baseline buggy."""

    def expand(self, ctx: ExpandContext) -> Expansion:
        return Expansion(plan=PlannedRun(description="the same run again"), flag="the loss looks too low")


def test_the_root_is_never_flagged_buggy(lab: search.Search) -> None:
    lab.tree.stage = "research"
    lab.deps.brain = RootFlagger()  # type: ignore[assignment]
    child = lab._ask(lab.tree.nodes[0], "draft")
    assert not lab.tree.nodes[0].buggy and child is not None and child.kind == "draft"


def test_the_paper_block_prints_only_numbers_of_the_summary(lab: search.Search, tmp_path: Path) -> None:
    t = lab.tree
    t.nodes += [
        node(1, 0, {"num_timesteps": 50}, score=0.25, metric=1.5),
        node(2, 0, {"num_timesteps": 200}, buggy=True, bug="exit code 1", kind="draft"),
    ]
    t.selected = 1
    t.nodes.append(node(3, 0, {}, seeds=[3, 4, 5], kind="replicate", stage="confirm", metric=1.9))
    t.nodes.append(
        node(4, 1, {"num_timesteps": 50}, seeds=[3, 4, 5], kind="replicate", stage="confirm", metric=1.4)
    )
    t.confirmed = {"baseline": 3, "selected": 4}
    summary = search.summary(t).model_dump(mode="json")
    text = search_section.block(summary, DIFFUSION, "search_tree.png")
    report = faithfulness.check(text, {"search": summary})
    assert report.ok, report.bad
    assert "n1" in text and "fresh" in text and "not evidence" in text
    for word in (" best", "better", " gain"):
        assert word not in text.lower(), f"{word!r} is never said of the exploration"
    png = tree_figure.draw(t, DIFFUSION, tmp_path / "tree.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_wall_clock_cap_ends_exploration_but_never_confirmation(lab: search.Search) -> None:
    t = lab.tree
    t.stage, t.wall_cap_s = "research", 5.0
    lab._elapsed_before = 10.0  # what earlier sessions of this search took
    t.nodes.append(node(1, 0, {"num_timesteps": 50}, score=0.1, metric=1.8))
    assert lab._plan_next() == [], "past the cap, the idea's stage proposes nothing more"
    assert lab._advance() and t.selected == 1 and t.stage == "ablate"
    assert lab._plan_next() == [] and lab._advance() and t.stage == "confirm"
    planned = lab._plan_next()
    assert [(n.parent, n.seeds) for n in planned] == [(0, [3, 4, 5]), (1, [3, 4, 5])]
    assert t.confirmed == {"baseline": 2, "selected": 3}


def test_a_stage_gets_what_earlier_stages_left(lab: search.Search) -> None:
    t = lab.tree  # budget 12: tune 2, research 6, ablate 2, confirm 2
    t.stage = "research"
    assert lab._left("tune") == 2 and lab._left("research") == 8, "no tune node ran: its 2 roll over"
    t.nodes += [node(i, 0, {}, stage="research") for i in range(1, 9)]
    assert lab._left("research") == 0 and lab._left("ablate") == 2


# ---------------------------------------------------------------- the shipped templates' papers


def generated(tpl, seeds: list[int], shift: float, rng) -> dict[str, Any]:
    """final_info.json on `seeds`, every metric around 1 + shift with seed noise."""
    out = {}
    for ds in tpl.datasets_for("smoke"):
        per = {m.name: [1.0 + shift + 0.05 * rng.gauss(0, 1) for _ in seeds] for m in tpl.metrics}
        out[ds] = {
            "means": {k: sum(v) / len(v) for k, v in per.items()},
            "stderrs": dict.fromkeys(per, 0.01),
            "per_seed": per,
        }
    return out


@pytest.mark.parametrize("name", list_templates())
def test_a_searched_paper_claims_only_what_its_confirmation_shows(name: str) -> None:
    """The winner's curse on every shipped template: the exploration's selected node looks far
    ahead on the seeds that chose it, its confirmation on fresh seeds shows nothing. The paper
    then states a null result, calls nothing best or improved, prints the exploration only as
    exploration, and every number it prints is in results.json."""

    tpl = load_template(name)
    rng = random.Random(0)
    brain = OfflineBrain(seed=1)
    [idea] = brain.ideas(IdeationContext(template=tpl, archive=[], seed_ideas=[], num_ideas=1))
    seeds, fresh = tpl.seeds_for("smoke"), search.fresh_seeds(tpl.seeds_for("smoke"))
    sign = -1 if tpl.primary.direction == "minimize" else 1
    root = search.root_node(seeds, generated(tpl, seeds, 0.0, rng))
    tree = SearchTree(
        idea=idea.name,
        metric=tpl.primary.name,
        direction=tpl.primary.direction,
        budget=6,
        budgets=search.stage_budgets(6),
        seeds=seeds,
        fresh_seeds=fresh,
        nodes=[root],
        stage="research",
    )
    code = (tpl.path / "experiment.py").read_text()
    got = brain.expand(
        ExpandContext(idea=idea, template=tpl, scale="smoke", tree=tree, node=0, kind="draft", code=code)
    )
    assert got is not None and got.plan is not None
    lucky = generated(tpl, seeds, sign * 0.5, rng)  # half a unit ahead on the search's seeds
    tree.nodes.append(
        SearchNode(
            id=1,
            parent=0,
            kind="draft",
            stage="research",
            plan=got.plan,
            seeds=seeds,
            settings=got.plan.knobs,
            run="run_1",
            status="done",
            results=lucky,
        )
    )
    for n in tree.nodes:
        n.metric, n.score = (
            search.primary_mean(n.results, tree.metric),
            search.score_of(tree, n.results, n.seeds),
        )
    tree.selected = 1
    confirmed = {role: generated(tpl, fresh, 0.0, rng) for role in ("baseline", "selected")}  # no real effect
    for role, parent in (("baseline", 0), ("selected", 1)):
        tree.nodes.append(
            SearchNode(
                id=len(tree.nodes),
                parent=parent,
                kind="replicate",
                stage="confirm",
                plan=PlannedRun(description="confirmation"),
                seeds=fresh,
                run="r",
                status="done",
                results=confirmed[role],
            )
        )
        tree.confirmed[role] = len(tree.nodes) - 1
    runs = [RunRecord(name="run_1", planned=got.plan, ok=True, results=confirmed["selected"])]
    summary = search.summary(tree).model_dump(mode="json")
    analysis = analyze(tpl, confirmed["baseline"], runs, scale="smoke", seeds=fresh)
    assert analysis.verdict == "null", "the exploration's lead does not survive confirmation"
    results = {
        "baseline": confirmed["baseline"],
        "runs": {"run_1": {"final_info": confirmed["selected"]}},
        "seeds": fresh,
        "analysis": analysis.model_dump(mode="json"),
        "search": summary,
    }
    ctx = PaperContext(
        idea=idea,
        template=tpl,
        scale="smoke",
        baseline=confirmed["baseline"],
        runs=runs,
        analysis=results["analysis"],
        search=summary,
        bib_keys=[],
    )
    sections = {p: brain.write_section(ctx, p, {}) for p in ("title", *SECTIONS)}
    for part, bad in unfaithful_sections(sections, results).items():  # the writeup's repair round
        sections[part] = brain.fix_numbers(ctx, part, sections[part], bad)
    sections["experimental_setup"] += search_section.block(summary, tpl, "search_tree.png")
    text = "\n".join(sections.values())
    report = faithfulness.check(text, results)
    assert report.ok, report.bad
    claims = " ".join(sections[p] for p in ("abstract", "results", "conclusion"))
    assert not re.search(
        r"best setting|largest significant|(?<!no setting )improved|improvements over|\bgain", claims
    )
    assert (
        "selected by a tree search" in sections["method"] and "not evidence" in sections["experimental_setup"]
    )
