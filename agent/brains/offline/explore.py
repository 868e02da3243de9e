"""The offline brain's moves in the tree search (`Brain.expand`): real search in the template's
declared knob space, written as the same flags and SEARCH/REPLACE edits as every other run.

- tune: one step of a cheap numeric knob the idea does not study (a learning rate, a decay),
  around the node's value: the baseline is tuned before the idea is judged against it.
- draft: one step of one of the idea's knobs away from the node (the idea's first change).
- improve: first the untried one-step neighbours of each idea knob around the node; then
  two-knob interactions around it: two knobs moved one step each at once (the idea's two
  knobs, or an idea knob with a tuned one).
- ablate: the node with one of its changes against the template undone.
- debug: a refused edit is derived again from the node's code; a crash, a timeout or a run
  killed for memory steps the value that changed back one step towards the parent's, or is
  retried once when no value lies between.
- tune, draft and improve ask to be screened on one seed; the search promotes the promising to
  every seed (successive halving). Ablations and debugs run on the seeds of their node.
- A node whose results equal its parent's on every seed although a knob changed is flagged:
  the change never reached experiment.py.

"One step" walks a knob's ladder: its declared values in order, or for a range, five points
(log-spaced when `log`) and the default. No setting already in the tree is proposed twice.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

from agent.models import ExpandContext, Expansion, PlannedRun, SearchNode
from agent.template.contract import Knob, Template
from agent.template.knobs import settings_label

Settings = dict[str, Any]


def ladder(knob: Knob) -> list[Any]:
    """The knob's values in order: declared values, or a grid of its range with the default."""
    if knob.values is not None:
        return list(knob.values)
    pool = [*knob.candidates(5), knob.default]
    low, high = knob.range  # type: ignore[misc]
    span = (math.log(high) - math.log(low)) if knob.log else (high - low)
    step = span / 8  # grid points closer to the default than half a grid step are not a step away

    def far(v: Any) -> bool:
        gap = abs(math.log(v) - math.log(knob.default)) if knob.log else abs(v - knob.default)
        return v == knob.default or gap >= step

    return sorted({v for v in pool if far(v)})


def neighbours(knob: Knob, value: Any) -> list[Any]:
    """Values one step from `value`: the adjacent rungs of an ordered knob (the cheaper side
    first for a costly one), every other value of a choice or bool."""
    values = ladder(knob)
    if knob.type in ("choice", "bool") or value not in values:
        return [v for v in values if v != value]
    i = values.index(value)
    near = [values[j] for j in (i + 1, i - 1) if 0 <= j < len(values)]
    return sorted(near, key=lambda v: v > value) if _costly(knob) else near


def _costly(knob: Knob) -> bool:
    from agent.brains.offline.brain import COSTLY  # brain.py imports this module

    return bool(COSTLY.search(knob.name))


def _plan(code: str, template: Template, settings: Settings, description: str) -> PlannedRun:
    from agent.brains.offline.brain import plan_for  # brain.py imports this module

    return plan_for(code, template, settings, description)


def tune_knobs(template: Template, idea_knobs: list[Knob]) -> list[Knob]:
    """At most two numeric knobs outside the idea whose larger values cost nothing more."""
    names = {k.name for k in idea_knobs}
    return [
        k for k in template.knobs if k.name not in names and k.type in ("int", "float") and not _costly(k)
    ][:2]


def value_of(template: Template, node: SearchNode, knob: str) -> Any:
    return node.settings.get(knob, template.knob(knob).default)


def _key(template: Template, settings: Settings) -> frozenset:
    defaults = {k.name: k.default for k in template.knobs}
    return frozenset((k, repr(v)) for k, v in settings.items() if defaults.get(k) != v)


def _tried(ctx: ExpandContext) -> set[frozenset]:
    return {_key(ctx.template, n.settings) for n in ctx.tree.nodes if n.stage != "confirm"}


def _moves(
    template: Template, node: SearchNode, knobs: list[Knob], pairs: list[tuple[Knob, Knob]]
) -> Iterator[Settings]:
    """One-knob steps for `knobs`, then two-knob steps for `pairs`, from the node's values."""
    for k in knobs:
        for v in neighbours(k, value_of(template, node, k.name)):
            yield {k.name: v}
    for a, b in pairs:
        for va, vb in itertools.product(
            neighbours(a, value_of(template, node, a.name)), neighbours(b, value_of(template, node, b.name))
        ):
            yield {a.name: va, b.name: vb}


def _first_new(ctx: ExpandContext, node: SearchNode, moves: Iterator[Settings]) -> Settings | None:
    tried = _tried(ctx)
    for move in moves:
        if _key(ctx.template, {**node.settings, **move}) not in tried:
            return move
    return None


def _unchanged(ctx: ExpandContext, node: SearchNode) -> list[str]:
    """Knobs the node changed although every per-seed result equals its parent's."""
    if node.parent is None or node.results is None:
        return []
    parent = ctx.tree.node(node.parent)
    changed = [
        k for k in set(node.settings) | set(parent.settings) if node.settings.get(k) != parent.settings.get(k)
    ]
    if not changed or parent.results is None or not set(node.seeds) <= set(parent.seeds):
        return []
    for ds, block in node.results.items():
        theirs = parent.results.get(ds, {}).get("per_seed", {})
        for metric, values in block["per_seed"].items():
            if [theirs.get(metric, [])[parent.seeds.index(s)] for s in node.seeds] != values:
                return []
    return sorted(changed)


def _step_back(ctx: ExpandContext, node: SearchNode) -> Settings | None:
    """Each knob that changed from the parent, one step back towards the parent's value."""
    parent = ctx.tree.node(node.parent or 0)
    out: Settings = {}
    for name in set(node.settings) | set(parent.settings):
        mine, theirs = value_of(ctx.template, node, name), value_of(ctx.template, parent, name)
        knob = ctx.template.knob(name)
        values = ladder(knob)
        if mine == theirs or knob.type in ("choice", "bool") or mine not in values or theirs not in values:
            continue
        i, j = values.index(mine), values.index(theirs)
        if abs(i - j) > 1:
            out[name] = values[i - 1 if j < i else i + 1]
    return out or None


def expand(ctx: ExpandContext, idea_knobs: list[Knob]) -> Expansion | None:
    """The offline brain's child of `ctx.node` of kind `ctx.kind`, or None when none is left."""
    node = ctx.tree.node(ctx.node)
    tpl = ctx.template

    def child(move: Settings, verb: str, screen: bool) -> Expansion:
        was = ", ".join(f"{k}={value_of(tpl, node, k)!r}" for k in move)
        desc = f"{verb} from n{node.id}: {settings_label(move)} (was {was})."
        return Expansion(plan=_plan(ctx.code, tpl, move, desc), screen=screen)

    if ctx.kind != "debug" and (same := _unchanged(ctx, node)):
        return Expansion(
            plan=None,
            flag=f"its results equal its parent's on every seed although "
            f"{', '.join(same)} changed: the change never reached experiment.py",
        )
    if ctx.kind == "debug":
        return _debug(ctx, node)
    if ctx.kind == "ablate":
        defaults = {k.name: k.default for k in tpl.knobs}
        undo = ({k: defaults[k]} for k in sorted(node.settings) if k in defaults)
        move = _first_new(ctx, node, undo)
        return child(move, "Ablation", screen=False) if move else None
    if ctx.kind == "tune":
        move = _first_new(ctx, node, _moves(tpl, node, tune_knobs(tpl, idea_knobs), []))
        return child(move, "Baseline tuning", screen=True) if move else None
    if ctx.kind in ("draft", "improve"):
        tuned = [tpl.knob(k) for k in node.settings if k not in {i.name for i in idea_knobs}]
        pairs = (
            list(itertools.combinations(idea_knobs, 2)) + list(itertools.product(idea_knobs, tuned))
            if ctx.kind == "improve"
            else []
        )
        move = _first_new(ctx, node, _moves(tpl, node, idea_knobs, pairs))
        return (
            child(move, "Draft of the idea" if ctx.kind == "draft" else "Improvement", screen=True)
            if move
            else None
        )
    return None


def _debug(ctx: ExpandContext, node: SearchNode) -> Expansion | None:
    """A fix for a buggy node, from what its error says."""
    parent = ctx.tree.node(node.parent or 0)
    text = f"{node.bug}\n{node.error_tail}".lower()
    delta = {
        k: value_of(ctx.template, node, k)
        for k in set(node.settings) | set(parent.settings)
        if value_of(ctx.template, node, k) != value_of(ctx.template, parent, k)
    }
    if "flagged" in text or "not allowed" in text:
        return None  # no change of values mends an ignored knob or a reserved flag
    if "refused" in text or "search text" in text:
        if not delta:
            return None
        desc = f"Debug of n{node.id}: its edit derived again from the code ({settings_label(delta)})."
        return Expansion(plan=_plan(ctx.code, ctx.template, delta, desc), screen=node.screened)
    back = _step_back(ctx, node)
    if back:
        desc = f"Debug of n{node.id} ({node.bug[:80]}): one step back, {settings_label(back)}."
        return Expansion(plan=_plan(ctx.code, ctx.template, back, desc), screen=node.screened)
    if node.kind != "debug":  # a failure with nothing between the values: retried once
        desc = f"Debug of n{node.id} ({node.bug[:80]}): the same settings again."
        return Expansion(plan=_plan(ctx.code, ctx.template, delta, desc), screen=node.screened)
    return None
