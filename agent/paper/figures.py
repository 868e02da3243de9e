"""Figure captions, and what the text may say about a figure, from the template's
`[[figures]]` declarations and the analysis.

A figure's content is declared by the template's author (`shows`, and optionally the metric
and the runs it draws); the file name is never read for meaning. A figure that no declaration
names (one an LLM's plot.py edit added) gets no caption from here: only the brain that made
it can say what it shows.
"""

from __future__ import annotations

from agent.analysis import Analysis, unjudged_why
from agent.models import FigureNote
from agent.template.contract import Figure, Metric, Template

GOAL = {"minimize": "lower is better", "maximize": "higher is better", "none": "no better direction"}


def sentence(text: str) -> str:
    """`text` with a capital first letter and a final full stop."""
    text = text.strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def metric_phrase(m: Metric) -> str:
    """`kl (nats; no better direction)`: a metric as captions and tables name it."""
    return f"{m.name} ({'; '.join(x for x in (m.unit, GOAL[m.direction]) if x)})"


def runs_phrase(fig: Figure, a: Analysis) -> str:
    """Which runs the figure draws, counted from the runs that were plotted."""
    plotted = a.n_ok + 1  # the plot stage labels the baseline and every finished run
    if fig.runs == "baseline":
        return "The baseline run only."
    if isinstance(fig.runs, int) and fig.runs < plotted:
        return f"The first {fig.runs} of the {plotted} plotted runs, baseline included."
    tested = plotted - 1
    return f"The baseline and {tested} tested setting{'' if tested == 1 else 's'}."


def caption(fig: Figure, template: Template, a: Analysis) -> str:
    """Plain-text caption: what the figure shows, its metric, and which runs it draws."""
    parts = [sentence(fig.shows)]
    if fig.metric:
        parts.append(f"Metric: {metric_phrase(template.metric(fig.metric))}.")
    parts.append(runs_phrase(fig, a))
    return " ".join(parts)


def metric_finding(fig: Figure, template: Template, a: Analysis) -> str:
    """What the statistics say about the metric a figure plots, as a clause ('' without one).

    Counts only: the figure's own numbers are in the tables, and nothing here calls a
    setting better than the Holm-corrected tests allow."""
    if not fig.metric:
        return ""
    m = template.metric(fig.metric)
    comps = [c for _, _, c in a.comparisons(m.name)]
    judged = next((info for info in a.setup.metrics if info.name == m.name), None)
    if judged is not None and judged.direction == "none":
        return f"{m.name} {unjudged_why(judged)}, so its differences are reported and not judged"
    if not comps:
        return ""
    better = sum(c.verdict == "better" for c in comps)
    worse = sum(c.verdict == "worse" for c in comps)
    if not better and not worse:
        return (
            f"none of the {len(comps)} differences from the baseline in {m.name} is significant after Holm "
            "correction, so the settings it shows could not be told apart"
        )
    return (
        f"after Holm correction, {better} of the {len(comps)} comparisons in {m.name} are significantly better "
        f"than the baseline and {worse} significantly worse"
    )


def note(fig: Figure, template: Template, a: Analysis) -> FigureNote:
    finding = metric_finding(fig, template, a)
    description = fig.shows.strip().rstrip(".") + (f"; {finding}" if finding else "") + "."
    return FigureNote(file=fig.file, caption=caption(fig, template, a), description=description)


def declared_notes(template: Template, a: Analysis, files: list[str]) -> list[FigureNote]:
    """Notes for the declared figures among `files`, in the order template.toml declares them
    (its author's order, so the paper shows the figures in it)."""
    present = set(files)
    return [note(fig, template, a) for fig in template.figures if fig.file in present]
