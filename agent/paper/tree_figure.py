"""The search tree as a figure for the paper, drawn by our own code from the tree file (never by
LLM-written code, so it needs no sandbox).

One marker per node, placed by depth (top to bottom) with the leaves in the order the search
made them and each parent centred over its children. A node's colour is the relative change
of the primary metric against the baseline on the node's own seeds (green where the metric
moved the good way); buggy nodes are red crosses, screened nodes (one seed) are small, the
path from the root to the selected node is drawn bold and its confirmation runs on fresh seeds
are white diamonds.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.models import SearchTree
from agent.template.contract import Template

PATH_COLOUR = "#1d2330"
CAP_PCT = 100.0  # colour saturates beyond this change against the baseline, in %


def layout(tree: SearchTree) -> dict[int, tuple[float, float]]:
    """(x, y) of every node: leaves at 0, 1, 2, ... in the order they were made; a parent at
    the mean of its children; y is minus the depth."""
    kids: dict[int, list[int]] = {n.id: [] for n in tree.nodes}
    for n in tree.nodes:
        if n.parent is not None:
            kids[n.parent].append(n.id)
    pos: dict[int, tuple[float, float]] = {}
    next_leaf = 0.0

    def place(node: int, depth: int) -> float:
        nonlocal next_leaf
        if not kids[node]:
            x, next_leaf = next_leaf, next_leaf + 1
        else:
            xs = [place(k, depth + 1) for k in kids[node]]
            x = sum(xs) / len(xs)
        pos[node] = (x, -float(depth))
        return x

    place(0, 0)
    return pos


def draw(tree: SearchTree, template: Template, dest: Path) -> Path:
    """Write the figure as a PNG at `dest` (atomically) and return it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    pos = layout(tree)
    confirm = set(tree.confirmed.values())
    path = {n.id for n in tree.ancestors(tree.selected)} if tree.selected is not None else set()
    changes = [c for n in tree.nodes if (c := tree.change_pct(n)) is not None]
    # One node ten times worse would otherwise wash out every small change: beyond ±CAP_PCT the
    # colour saturates (the bar says so with its arrows).
    widest = max((abs(c) for c in changes), default=0.0) or 1.0
    span = min(widest, CAP_PCT)
    norm = TwoSlopeNorm(vmin=-span, vcenter=0.0, vmax=span)
    cmap = "RdYlGn_r" if tree.direction == "minimize" else "RdYlGn"  # green: the metric's good way

    width = min(12.0, max(4.5, 0.45 * (max((x for x, _ in pos.values()), default=0) + 2)))
    depth = -min((y for _, y in pos.values()), default=0)
    fig = Figure(figsize=(width, min(8.0, 1.8 + 0.75 * (depth + 1))), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for n in tree.nodes:
        if n.parent is None:
            continue
        (x0, y0), (x1, y1) = pos[n.parent], pos[n.id]
        bold = n.id in path or n.id in confirm
        ax.plot(
            [x0, x1],
            [y0, y1],
            color=PATH_COLOUR if bold else "#b8bec9",
            lw=2.2 if bold else 0.8,
            ls="--" if n.id in confirm else "-",
            zorder=1,
        )
    scatter = None
    for n in tree.nodes:
        x, y = pos[n.id]
        size = 40 if n.screened else 110
        edge = PATH_COLOUR if n.id in path else "#6b7280"
        if n.id in confirm:
            ax.scatter(
                [x], [y], s=110, marker="D", facecolor="white", edgecolor=PATH_COLOUR, lw=1.5, zorder=3
            )
        elif n.buggy:
            ax.scatter([x], [y], s=size, marker="X", color="#c0392b", zorder=3)
        else:
            scatter = ax.scatter(
                [x],
                [y],
                s=size,
                c=[tree.change_pct(n) or 0.0],
                cmap=cmap,
                norm=norm,
                edgecolor=edge,
                lw=1.5 if n.id in path else 0.6,
                zorder=3,
            )
        ax.annotate(f"n{n.id}", (x, y), textcoords="offset points", xytext=(6, 6), ha="left", fontsize=6)  # off the edges
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=ax, fraction=0.04, pad=0.02, extend="both" if widest > span else "neither")
        bar.set_label(f"{template.primary.name}: change vs baseline (%)", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    legend = [
        Line2D([], [], marker="o", ls="", color="#9aa3b2", markersize=7, label="run on every search seed"),
        Line2D([], [], marker="o", ls="", color="#9aa3b2", markersize=4, label="screened on one seed"),
        Line2D([], [], marker="X", ls="", color="#c0392b", markersize=7, label="buggy"),
        Line2D(
            [],
            [],
            marker="D",
            ls="",
            markerfacecolor="white",
            color=PATH_COLOUR,
            markersize=6,
            label="confirmation on fresh seeds",
        ),
        Line2D([], [], color=PATH_COLOUR, lw=2.2, label="path to the selected node"),
    ]
    ax.legend(
        handles=legend, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False
    )
    ax.set_axis_off()
    ax.margins(x=0.08, y=0.15)
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, dest)
    return dest
