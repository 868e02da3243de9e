"""Static HTML for the archive: the ranked list, one page per paper, and the last-night view.

The pages are Jinja2 templates (`templates/` beside this file) with autoescaping on, so
every piece of text that came from a brain (titles, reviews, ideas, notes, diffs) is
escaped before it reaches a page. Links use paths relative to the page, so the site works
from disk (file://) as well as over `archive serve`. The pages carry no inline script,
event handler or style attribute: behaviour is in archive.js and looks in style.css, so
they run under a strict Content-Security-Policy (`script-src 'self'; style-src 'self'`).
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from agent.archive.files import atomic_write_text
from agent.archive.index import IndexRow
from agent.models import Outcome
from agent.archive.web.diff import classify, diff_stat

ASSETS = ("style.css", "archive.js")
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif")  # never SVG: a browser runs its scripts
PAGE_TEXT_LIMIT = 300_000
"""Characters of a diff or JSON shown inline; the full file is always linked."""
VALUE_DEPTH_LIMIT = 12
"""Levels of nested JSON shown as lists and tables; anything deeper is elided."""
REVIEW_FIELDS: tuple[tuple[str, str, int | None], ...] = (
    ("summary", "Summary", None),
    ("strengths", "Strengths", None),
    ("weaknesses", "Weaknesses", None),
    ("originality", "Originality", 4),
    ("quality", "Quality", 4),
    ("clarity", "Clarity", 4),
    ("significance", "Significance", 4),
    ("questions", "Questions", None),
    ("limitations", "Limitations", None),
    ("ethical_concerns", "Ethical concerns", None),
    ("soundness", "Soundness", 4),
    ("presentation", "Presentation", 4),
    ("contribution", "Contribution", 4),
    ("overall", "Overall", 10),
    ("confidence", "Confidence", 5),
    ("decision", "Decision", None),
)
IDEA_FIELDS = (
    "name",
    "title",
    "hypothesis",
    "experiment",
    "interestingness",
    "feasibility",
    "novelty",
    "knobs",
)


def write_assets(root: Path) -> None:
    """Copy style.css and archive.js into `root/assets/` when they changed."""
    dest = root / "assets"
    dest.mkdir(exist_ok=True)
    for name in ASSETS:
        text = (Path(__file__).parent / name).read_text()
        target = dest / name
        if not target.is_file() or target.read_text() != text:
            atomic_write_text(target, text)


def write_page(path: Path, text: str) -> None:
    atomic_write_text(path, text)


# ---------------------------------------------------------------- filters


def _escape(value: Any) -> Markup:
    """Every `{{ }}` output, escaped by `html.escape` (`&quot;`, `&#x27;`) rather than
    MarkupSafe's `&#34;`/`&#39;`: the same safety, and pages and links keep the spelling
    they had before the templates."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value), quote=True))


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _cost(value: float | None) -> str:
    """Dollars; cents hide the cost of a cheap model, so amounts under $1 keep four decimals."""
    if value is None:
        return "—"
    return f"${value:.2f}" if value == 0 or value >= 1 else f"${value:.4f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def _when(stamp: str) -> str:
    """`2025-03-01T22:00:00.123456Z` -> `2025-03-01 22:00:00` (UTC)."""
    return str(stamp)[:19].replace("T", " ")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _brain_label(brain: str, model: str) -> str:
    return "offline brain (no LLM)" if brain == "offline" else f"LLM brain, model {model}"


def _clip(text: str, name: str, limit: int = PAGE_TEXT_LIMIT) -> str:
    """Text cut at `limit` characters with a pointer to where the rest is (escaped on output)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… {len(text) - limit:,} more characters in {name}"


@functools.cache
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("agent.archive.web", "templates"),
        autoescape=select_autoescape(["html"]),
        finalize=_escape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(score=_score, cost=_cost, seconds=_seconds, when=_when, clip=_clip, num=_num)
    env.globals.update(
        brain_label=_brain_label,
        REVIEW_FIELDS=REVIEW_FIELDS,
        PAGE_TEXT_LIMIT=PAGE_TEXT_LIMIT,
        VALUE_DEPTH_LIMIT=VALUE_DEPTH_LIMIT,
    )
    return env


def _render(name: str, **context: Any) -> str:
    return _env().get_template(name).render(**context)


# ---------------------------------------------------------------- index.html and last-night.html


def render_index(rows: list[IndexRow]) -> str:
    """The ranked list (rows arrive best first), with filters by template, decision and date,
    and per template a chart of the scores across runs (the automated review's and yours)."""
    templates = sorted({r.template for r in rows})
    return _render(
        "index.html",
        rows=rows,
        templates=templates,
        decisions=sorted({r.decision for r in rows if r.decision}),
        accepted=sum(1 for r in rows if (r.decision or "").lower() == "accept"),
        charts=[(t, score_chart([r for r in rows if r.template == t])) for t in templates],
    )


def score_chart(rows: list[IndexRow], width: int = 320, height: int = 150) -> Markup:
    """An SVG of one template's papers in the order they were written (x) against their scores,
    1-10 (y): the automated review's as dots, the researcher's as rings. Drawn here, from the
    index, so it works from disk and needs no script; every value is a number we computed."""
    ordered = sorted(rows, key=lambda r: r.created_at)
    pad, n = 18, max(len(ordered), 1)

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * (i + 0.5) / n

    def y(score: float) -> float:
        return height - pad - (height - 2 * pad) * (min(max(score, 1), 10) - 1) / 9

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="scores across runs">',
             f'<line class="axis" x1="{pad}" y1="{y(1):.1f}" x2="{width - pad}" y2="{y(1):.1f}"/>',
             f'<line class="axis" x1="{pad}" y1="{y(6):.1f}" x2="{width - pad}" y2="{y(6):.1f}"/>',
             f'<text x="2" y="{y(10) + 4:.1f}">10</text><text x="2" y="{y(6) + 4:.1f}">6</text>'
             f'<text x="2" y="{y(1) + 4:.1f}">1</text>']
    for i, r in enumerate(ordered):
        if r.overall is not None:
            parts.append(f'<circle class="auto" cx="{x(i):.1f}" cy="{y(r.overall):.1f}" r="3.5"/>')
        if r.human_score is not None:
            parts.append(f'<circle class="human" cx="{x(i):.1f}" cy="{y(r.human_score):.1f}" r="6"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def render_last_night(run_id: str | None, rows: list[IndexRow], outcomes: list[Outcome]) -> str:
    """The latest run: its papers, and for every other idea the stage where it stopped and why."""
    times = sorted(o.recorded_at for o in outcomes) or sorted(r.created_at for r in rows)
    return _render(
        "last_night.html",
        run_id=run_id,
        rows=rows,
        stopped=[o for o in outcomes if not o.archived],
        times=times,
        templates=sorted({o.template for o in outcomes} | {r.template for r in rows}),
    )


# ---------------------------------------------------------------- <id>/index.html


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):  # a hostile file may nest past the parser's stack
        return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _figures(folder: Path, meta: dict[str, Any]) -> list[tuple[str, str]]:
    """(file name, caption) of every figure in the folder."""
    captions: dict[str, str] = {}
    for note in meta.get("figures") or []:
        if isinstance(note, dict) and "file" in note:
            captions[str(note["file"])] = str(note.get("caption", ""))
    files = sorted(f.name for f in folder.iterdir() if f.is_file() and f.suffix.lower() in FIGURE_SUFFIXES)
    return [(name, captions.get(name, "")) for name in files]


def _idea_keys(idea: dict[str, Any]) -> list[str]:
    """The idea schema's fields first, in their order, then any others."""
    return [k for k in IDEA_FIELDS if k in idea] + [k for k in idea if k not in IDEA_FIELDS]


def _first_chars(lines: Iterable[tuple[str, str]], limit: int) -> list[tuple[str, str]]:
    """The classified lines of a diff's first `limit` characters (the whole diff is parsed,
    since a diff cut mid-hunk is not one unidiff reads)."""
    shown: list[tuple[str, str]] = []
    used = 0
    for kind, line in lines:
        if used >= limit:
            break
        shown.append((kind, line[: limit - used]))
        used += len(line) + 1
    return shown


def _diff(folder: Path) -> dict[str, Any] | None:
    diff = _read_text(folder / "code.diff")
    if not diff.strip():
        return None
    return {
        "stats": diff_stat(diff),
        "lines": _first_chars(classify(diff), PAGE_TEXT_LIMIT),
        "cut": len(diff) > PAGE_TEXT_LIMIT,
        "bundle": (folder / "workdir.bundle").is_file(),
    }


def _change_class(change: Any, direction: str) -> str:
    """A CSS class for a node's change against the baseline: good1..3 or bad1..3 by size, or flat."""
    if not isinstance(change, int | float) or isinstance(change, bool):
        return "none"
    size = abs(change)
    if size < 1:
        return "flat"
    good = change < 0 if direction == "minimize" else change > 0
    return ("good" if good else "bad") + ("1" if size < 5 else "2" if size < 20 else "3")


def _search(folder: Path) -> dict[str, Any] | None:
    """The search tree of a --search tree paper (search.json), laid out for the page."""
    data = _load_json(folder / "search.json")
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return None
    nodes = [n for n in data["nodes"] if isinstance(n, dict) and isinstance(n.get("id"), int)]
    children: dict[int, list[int]] = {n["id"]: [] for n in nodes}
    for n in nodes:
        if n.get("parent") in children:
            children[n["parent"]].append(n["id"])
        n["css"] = _change_class(n.get("change_pct"), str(data.get("direction", "")))
        n["diff_lines"] = _first_chars(classify(str(n.get("diff") or "")), PAGE_TEXT_LIMIT)
    path = set(data.get("path") or [])
    confirmed = data.get("confirmed") if isinstance(data.get("confirmed"), dict) else {}
    selected = data.get("selected")
    return {**data, "by_id": {n["id"]: n for n in nodes}, "children": children, "path": path,
            "confirm": set(confirmed.values()), "roots": [n["id"] for n in nodes if n.get("parent") is None],
            "shown": selected if selected in children else (nodes[0]["id"] if nodes else None)}


def render_paper_page(folder: Path) -> str:
    """A paper's page, built from the files in its folder (the same files it links to)."""
    meta = _load_json(folder / "meta.json")
    if not isinstance(meta, dict):
        raise ValueError(f"{folder / 'meta.json'} is missing or unreadable")
    results = _load_json(folder / "results.json")
    review = _load_json(folder / "review.json")
    idea = _load_json(folder / "idea.json")
    cost = _load_json(folder / "cost.json")
    reviews = review.get("reviews") if isinstance(review, dict) else None
    verdicts = _load_json(folder / "human_review.json")
    return _render(
        "paper.html",
        folder_name=folder.name,
        verdict=verdicts.get("latest") if isinstance(verdicts, dict) and isinstance(verdicts.get("latest"), dict)
        else None,
        meta=meta,
        title=str(meta.get("title", folder.name)),
        has_pdf=(folder / "paper.pdf").is_file(),
        figures=_figures(folder, meta),
        review=review if isinstance(review, dict) else {},
        reviews=reviews if isinstance(reviews, list) else [],
        idea=idea if isinstance(idea, dict) else None,
        idea_keys=_idea_keys(idea) if isinstance(idea, dict) else [],
        diff=_diff(folder),
        search=_search(folder),
        results=results,
        results_json=json.dumps(results, indent=2),
        analysis=results.get("analysis") if isinstance(results, dict) else None,
        notes=_read_text(folder / "notes.md"),
        cost=cost if isinstance(cost, dict) else {},
        timings=meta.get("timings") or {},
        files=[
            (p.relative_to(folder).as_posix(), p.stat().st_size)
            for p in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "index.html")
        ],
    )


# ---------------------------------------------------------------- compare.html (served only)


def render_compare(comparison: Any | None, error: str = "") -> str:
    """Two papers side by side (an `agent.archive.compare.Comparison`), or why not."""
    lines = _first_chars(classify(comparison.code_diff), PAGE_TEXT_LIMIT) if comparison is not None else []
    return _render("compare.html", c=comparison, error=error, diff_lines=lines)

