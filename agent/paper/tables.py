"""LaTeX tables from results, built with pylatex so that rows, rules and the float are
well-formed whatever the cells hold (cells arrive as LaTeX already escaped by the writer)."""

from __future__ import annotations

from pylatex import Command, NoEscape, Table, Tabular


def results_table(header: list[str], groups: list[list[list[str]]], caption: str, label: str,
                  booktabs: bool = True, columns: str | None = None) -> str:
    """A `table` float: `header`, then groups of rows separated by a rule (e.g. one per dataset)."""
    tabular = Tabular(columns or "l" * len(header), booktabs=booktabs)
    tabular.add_row([NoEscape(h) for h in header])
    for group in groups:
        tabular.add_hline()
        for row in group:
            tabular.add_row([NoEscape(cell) for cell in row])
    if not booktabs:  # without booktabs, pylatex draws no outer rules
        tabular.add_hline()
    table = Table(position="t")
    table.append(Command("centering"))
    table.append(Command("small"))
    table.add_caption(NoEscape(caption))
    table.append(Command("label", NoEscape(label)))
    table.append(tabular)
    return table.dumps() + "\n"
