"""Compact text views of a search tree for the LLM brain's `expand`: the tree one line per
node, the path from the root to the node being expanded, and what each kind of child means."""

from __future__ import annotations

from agent.brains.llm.summaries import results_brief, sig, tail
from agent.models import SearchNode, SearchTree

TREE_LINES = 40
ERROR_CHARS = 3000

KINDS = {
    "tune": "tune the baseline itself before the idea is tested: change one or two of its hyperparameters "
    "(flags or constants), not the idea",
    "draft": "a first implementation of the idea on top of NODE's code",
    "improve": "change NODE so that the primary metric improves, keeping the idea; one clear change",
    "debug": "NODE is buggy (see ERROR): fix it and keep its intent; change nothing else",
    "ablate": "undo exactly one of NODE's changes against the template, to measure what that change contributes",
}
STAGES = {
    "tune": "tuning the baseline",
    "research": "the idea: draft, improve, debug",
    "ablate": "ablations of the selected node",
    "confirm": "confirmation on fresh seeds",
}


def node_line(tree: SearchTree, n: SearchNode) -> str:
    head = f"- n{n.id} <- {'n' + str(n.parent) if n.parent is not None else 'root'} {n.kind}: {n.plan.description[:100]}"
    if n.status != "done":
        return f"{head} | running"
    if n.buggy:
        return f"{head} | BUGGY: {n.bug[:150]}"
    change = tree.change_pct(n)
    seeds = f"{len(n.seeds)} seed{'s' if len(n.seeds) != 1 else ''}"
    return f"{head} | {tree.metric} {sig(n.metric or 0.0)} on {seeds}" + (
        f", {sig(change, 3)}% vs root" if change is not None else ""
    )


def tree_brief(tree: SearchTree) -> str:
    """Every node in one line (the last TREE_LINES when there are more)."""
    lines = [node_line(tree, n) for n in tree.nodes]
    cut = len(lines) - TREE_LINES
    return "\n".join(([f"(... {cut} earlier nodes)"] if cut > 0 else []) + lines[-TREE_LINES:])


def path_brief(tree: SearchTree, node: int) -> str:
    """The ancestors of `node`, root first, with their flags, edits and results."""
    out = []
    for n in tree.ancestors(node):
        edits = "".join(
            f"\n    {e.path}: - {e.search.strip()[:300]!r} + {e.replace.strip()[:300]!r}"
            for e in n.plan.edits
        )
        out.append(
            f"{node_line(tree, n)}\n    flags {n.args or '{}'}; results {results_brief(n.results)}{edits}"
        )
    return "\n".join(out)


def error_brief(n: SearchNode) -> str:
    return (
        f"ERROR of n{n.id} (tail):\n```\n{tail(n.error_tail or n.bug, ERROR_CHARS)}\n```" if n.buggy else ""
    )
