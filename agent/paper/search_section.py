"""The paper's account of a tree search (`--search tree`), written by our own code whatever brain
wrote the rest: a "Search" paragraph, the exploration table and the figure of the tree, added to
the experimental setup when the paper is assembled.

The exploration is reported as exploration: its numbers were measured on the seeds that chose
the selected node, so they are biased towards it, and no test is run on them. The paper's
statistics come from the confirmation runs alone. Every number printed here is in
results.json's `search` (agent.pipeline.search.SearchSummary), so the faithfulness check traces
it, and the words "best", "better" and "gain" are never used for what is not tested.
"""

from __future__ import annotations

from typing import Any

from agent.brains.offline.writer import esc, plural
from agent.numbers import fmt
from agent.paper.tables import results_table
from agent.template.contract import Template

SECTION = "experimental_setup"
FIGURE_LABEL = "fig:search-tree"
TABLE_LABEL = "tab:exploration"
MAX_ROWS = 14


def _seeds(seeds: list[int]) -> str:
    return f"{plural(len(seeds), 'seed')} ({', '.join(str(s) for s in seeds)})"


def _were(n: int) -> str:
    return "was" if n == 1 else "were"


def paragraph(search: dict[str, Any], template: Template, figure: bool) -> str:
    stages = search["by_stage"]
    seeds, fresh = search["seeds"], search["fresh_seeds"]
    parts = [
        f"\\paragraph{{Search.}} The setting compared in this paper was found by a tree search over the code "
        f"and settings of the template. Of its budget of {plural(search['budget'], 'run')} it used "
        f"{search['nodes']}: {stages['tune']} tuning the baseline, {stages['research']} for the idea, "
        f"{stages['ablate']} for ablations and {stages['confirm']} for confirmation.",
    ]
    if search["screened"]:
        promoted = search["promoted"]
        parts.append(
            f"{plural(search['screened'], 'new setting')} {_were(search['screened'])} first screened on "
            f"seed {seeds[0]}; "
            + (
                f"{promoted} of them {_were(promoted)} promoted to all {_seeds(seeds)} of the search."
                if promoted
                else "none beat its parent there, so none was promoted."
            )
        )
    if search["buggy"]:
        parts.append(
            f"{plural(search['buggy'], 'run')} {_were(search['buggy'])} buggy (crashed, left no valid "
            f"results, or {_were(search['buggy'])} flagged), and {search['debug_nodes']} debug "
            f"attempt{'' if search['debug_nodes'] == 1 else 's'} followed."
        )
    if search["selected"] is not None:
        parts.append(
            f"The search selected node n{search['selected']} ({esc(search['selected_label'])}). Its "
            f"comparison with the baseline comes only from reruns of both on {_seeds(fresh)} that the "
            "search never used, so choosing the node did not bias it."
        )
    parts.append(
        f"Table~\\ref{{{TABLE_LABEL}}} lists the exploration; measured on the seeds that selected the "
        "node, it is not evidence, and no test is run on it."
        + (f" Figure~\\ref{{{FIGURE_LABEL}}} shows the tree." if figure else "")
    )
    return " ".join(parts)


def _rows(search: dict[str, Any]) -> list[dict[str, Any]]:
    """The path to the selected node first, then the other nodes by their order in the search."""
    rows = {r["node"]: r for r in search["exploration"]}
    path = [rows[i] for i in search["path"] if i in rows]
    rest = [r for r in search["exploration"] if r["node"] not in search["path"]]
    return (path + rest)[:MAX_ROWS]


def table(search: dict[str, Any], template: Template) -> str:
    metric = esc(template.primary.name.replace("_", " "))
    body = []
    for r in _rows(search):
        note = esc(r["bug"][:40]) if r["buggy"] else ("selected" if r["node"] == search["selected"] else "")
        body.append(
            [
                f"n{r['node']}",
                "--" if r["parent"] is None else f"n{r['parent']}",
                esc(r["kind"]),
                esc(r["label"][:48]),
                str(r["seeds"]),
                "--" if r["metric"] is None else fmt(r["metric"]),
                "--" if r["change_pct"] is None else f"{fmt(r['change_pct'])}\\%",
                note,
            ]
        )
    shown = len(body)
    caption = (
        f"Exploration of the tree search, not evidence: {metric} per node (mean over datasets on the "
        "node's own seeds) and its change against the baseline on those seeds"
        + (
            f"; {shown} of {len(search['exploration'])} nodes shown, all are in the archive"
            if shown < len(search["exploration"])
            else ""
        )
        + "."
    )
    header = ["Node", "From", "Kind", "Setting", "Seeds", metric, "Change", "Note"]
    booktabs = "booktabs" in (template.path / "latex" / "template.tex").read_text()
    return results_table(header, [body], caption, TABLE_LABEL, booktabs=booktabs)


def figure(file: str, template: Template) -> str:
    metric = esc(template.primary.name.replace("_", " "))
    return (
        "\\begin{figure}[t]\n\\centering\n"
        f"\\includegraphics[width=\\linewidth]{{{file}}}\n"
        f"\\caption{{The search tree: each node coloured by the change of {metric} against the baseline on its "
        "own seeds (exploration), buggy nodes as red crosses, screened nodes small, the path to the selected node "
        f"in bold and its confirmation runs on fresh seeds as diamonds.}}\n\\label{{{FIGURE_LABEL}}}\n"
        "\\end{figure}\n"
    )


def block(search: dict[str, Any], template: Template, figure_file: str | None) -> str:
    """The paragraph, the table and the figure, to end the experimental setup with."""
    text = "\n\n" + paragraph(search, template, figure_file is not None) + "\n\n" + table(search, template)
    return text + ("\n" + figure(figure_file, template) if figure_file else "")
