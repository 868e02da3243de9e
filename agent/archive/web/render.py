"""Static HTML for the archive: the ranked list, one page per paper, and the last-night view.

Every piece of text that came from a brain (titles, reviews, ideas, notes, diffs) is
LLM-written and is escaped with `html.escape` before it reaches a page. Links use paths
relative to the page, so the site works from disk (file://) as well as over `archive serve`.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agent.archive.files import atomic_write_text
from agent.archive.index import IndexRow, OutcomeRow
from agent.archive.web.diff import classify, diff_stat

ASSETS = ("style.css", "archive.js")
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".gif")
PAGE_TEXT_LIMIT = 300_000
"""Characters of a diff or JSON shown inline; the full file is always linked."""
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


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def href(name: str) -> str:
    """A relative link to a file name, URL-quoted and then HTML-escaped."""
    return esc(quote(name))


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


# ---------------------------------------------------------------- shared pieces


def _page(title: str, body: str, depth: int, active: str = "") -> str:
    up = "../" * depth
    nav = "".join(
        f'<a href="{up}{target}"{" class=active" if key == active else ""}>{label}</a>'
        for key, target, label in (
            ("index", "index.html", "Papers"),
            ("last", "last-night.html", "Last night"),
        )
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        f'<link rel="stylesheet" href="{up}assets/style.css"></head>\n'
        f'<body><header class="top"><span class="brand">AI Scientist archive</span><nav>{nav}</nav></header>\n'
        f"<main>\n{body}\n</main>\n"
        f'<script src="{up}assets/archive.js"></script></body></html>\n'
    )


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
    return stamp[:19].replace("T", " ")


def _brain_label(brain: str, model: str) -> str:
    return "offline brain (no LLM)" if brain == "offline" else f"LLM brain, model {model}"


def _decision_badge(decision: str | None) -> str:
    if not decision:
        return '<span class="badge">—</span>'
    kind = {"accept": "good", "reject": "bad"}.get(decision.lower(), "")
    return f'<span class="badge {kind}">{esc(decision)}</span>'


def _faithful_badge(faithful: bool | None) -> str:
    if faithful is None:
        return '<span class="badge">unchecked</span>'
    if faithful:
        return (
            '<span class="badge good" title="every number in the paper traces to the results">faithful</span>'
        )
    return '<span class="badge bad" title="some numbers in the paper do not trace to the results">unfaithful</span>'


def _value(value: Any) -> str:
    """Any JSON value as HTML: lists as bullets, objects as definition lists, text escaped."""
    if value is None or value == "" or value == [] or value == {}:
        return '<span class="muted">—</span>'
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "<ul>" + "".join(f"<li>{_value(v)}</li>" for v in value) + "</ul>"
    if isinstance(value, dict):
        items = "".join(f"<dt>{esc(k)}</dt><dd>{_value(v)}</dd>" for k, v in value.items())
        return f'<dl class="kv">{items}</dl>'
    return f'<span class="text">{esc(value)}</span>'


def _rows_table(rows: list[IndexRow], table_id: str, depth: int = 0) -> str:
    """The paper table; data-* attributes carry what archive.js sorts and filters on."""
    up = "../" * depth
    body = []
    for rank, r in enumerate(rows, 1):
        search = f"{r.title} {r.idea_name} {r.template}".lower()
        pdf = f"{up}{href(r.id)}/paper.pdf"
        body.append(
            f'<tr data-id="{esc(r.id)}" data-score="{"" if r.overall is None else r.overall}"'
            f' data-date="{esc(r.created_at)}" data-template="{esc(r.template)}"'
            f' data-decision="{esc(r.decision or "")}" data-search="{esc(search)}">'
            f'<td class="rank">{rank}</td>'
            f'<td class="score num">{_score(r.overall)}</td>'
            f'<td class="title"><a href="{up}{href(r.id)}/index.html">{esc(r.title)}</a>'
            f'<div class="sub">{esc(r.idea_name)}</div></td>'
            f"<td>{esc(r.template)}</td>"
            f"<td>{_decision_badge(r.decision)}</td>"
            f"<td>{_faithful_badge(r.faithful)}</td>"
            f"<td>{esc(_brain_label(r.brain, r.model))}</td>"
            f'<td class="num">{_cost(r.cost_usd)}</td>'
            f'<td class="date">{esc(_when(r.created_at))}</td>'
            f'<td><a href="{pdf}">PDF</a></td></tr>'
        )
    head = (
        "<thead><tr><th>#</th>"
        '<th aria-sort="descending"><button type="button" class="sort" data-key="score" id="sort-score">'
        "Score</button></th>"
        "<th>Title</th><th>Template</th><th>Decision</th><th>Faithful</th><th>Written by</th>"
        '<th class="num">Cost</th>'
        '<th><button type="button" class="sort" data-key="date" id="sort-date">Date</button></th>'
        "<th>PDF</th></tr></thead>"
    )
    return f'<table id="{table_id}" class="papers">{head}<tbody>{"".join(body)}</tbody></table>'


def _options(select_id: str, label: str, values: list[str]) -> str:
    opts = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
    return f'<label>{label} <select id="{select_id}"><option value="">All</option>{opts}</select></label>'


# ---------------------------------------------------------------- index.html


def render_index(rows: list[IndexRow]) -> str:
    """The ranked list (rows arrive best first), with filters by template, decision and date."""
    if not rows:
        body = (
            '<h1>Papers</h1><p class="empty">No papers yet. Start a run with '
            "<code>ai-scientist run --template 2d_diffusion</code>; each finished paper appears here.</p>"
        )
        return _page("AI Scientist archive", body, 0, "index")
    templates = sorted({r.template for r in rows})
    decisions = sorted({r.decision for r in rows if r.decision})
    accepted = sum(1 for r in rows if (r.decision or "").lower() == "accept")
    filters = (
        '<form class="filters" id="filters" onsubmit="return false">'
        + _options("f-template", "Template", templates)
        + _options("f-decision", "Decision", decisions)
        + '<label>From <input type="date" id="f-from"></label>'
        + '<label>To <input type="date" id="f-to"></label>'
        + '<label>Search <input type="search" id="f-q" placeholder="title or idea"></label>'
        + f'<span id="shown" class="muted">{len(rows)} of {len(rows)} shown</span></form>'
    )
    body = (
        "<h1>Papers</h1>"
        f'<p class="summary">{len(rows)} papers, {accepted} accepted, from {len(templates)} '
        f"template{'s' * (len(templates) != 1)}. Ranked by review score; click Score or Date to re-sort. "
        '<a href="last-night.html">What happened last night &rarr;</a></p>'
        + filters
        + _rows_table(rows, "papers")
    )
    return _page("AI Scientist archive", body, 0, "index")


# ---------------------------------------------------------------- last-night.html


def render_last_night(run_id: str | None, rows: list[IndexRow], outcomes: list[OutcomeRow]) -> str:
    """The latest run: its papers, and for every other idea the stage where it stopped and why."""
    if run_id is None:
        body = '<h1>Last night</h1><p class="empty">No run has reported yet.</p>'
        return _page("Last night", body, 0, "last")
    stopped = [o for o in outcomes if not o.archived]
    times = sorted(o.recorded_at for o in outcomes) or sorted(r.created_at for r in rows)
    templates = sorted({o.template for o in outcomes} | {r.template for r in rows})
    parts = [
        f"<h1>Last night: run <code>{esc(run_id)}</code></h1>",
        f'<p class="summary">{len(rows)} paper{"s" * (len(rows) != 1)} archived, '
        f"{len(stopped)} idea{'s' * (len(stopped) != 1)} stopped early. "
        f"Template: {esc(', '.join(templates))}. "
        f"Between {esc(_when(times[0]))} and {esc(_when(times[-1]))} UTC.</p>",
        "<h2>Papers</h2>",
        _rows_table(rows, "night-papers") if rows else '<p class="empty">No paper was archived.</p>',
        "<h2>Ideas that stopped</h2>",
    ]
    if stopped:
        lines = "".join(
            f'<tr data-idea="{esc(o.idea_name)}"><td><code>{esc(o.idea_name)}</code>'
            f'<div class="sub">{esc(o.title)}</div></td>'
            f'<td class="stage">{esc(o.stage)}</td><td>{esc(o.status)}</td>'
            f'<td class="reason">{_clip(o.reason, "outcomes.jsonl", 4000)}</td>'
            f'<td class="date">{esc(_when(o.recorded_at))}</td></tr>'
            for o in stopped
        )
        parts.append(
            '<table id="stopped" class="papers"><thead><tr><th>Idea</th><th>Stopped at</th>'
            f"<th>Status</th><th>Why</th><th>When</th></tr></thead><tbody>{lines}</tbody></table>"
        )
    else:
        parts.append('<p class="empty">Every idea of this run reached the archive.</p>')
    return _page("Last night", "\n".join(parts), 0, "last")


# ---------------------------------------------------------------- <id>/index.html


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _clip(text: str, name: str, limit: int = PAGE_TEXT_LIMIT) -> str:
    """Escaped text, cut at `limit` characters with a pointer to where the rest is."""
    if len(text) <= limit:
        return esc(text)
    return esc(f"{text[:limit]}\n… {len(text) - limit:,} more characters in {name}")


def _review_block(review: Any, which: str) -> str:
    if not isinstance(review, dict):
        return '<p class="empty">No review recorded.</p>'
    items = []
    for key, label, top in REVIEW_FIELDS:
        value = review.get(key)
        shown = (
            f'{_value(value)} <span class="muted">/ {top}</span>'
            if top and value is not None
            else _value(value)
        )
        items.append(f'<dt>{label}</dt><dd data-field="{key}">{shown}</dd>')
    known = {k for k, _, _ in REVIEW_FIELDS}
    for key, value in review.items():
        if key not in known:
            items.append(f'<dt>{esc(key)}</dt><dd data-field="{esc(key)}">{_value(value)}</dd>')
    return f'<dl class="review" data-review="{esc(which)}">{"".join(items)}</dl>'


def _review_section(review: Any) -> str:
    review = review if isinstance(review, dict) else {}
    parts = [
        '<section id="review"><h2>Review</h2>',
        "<h3>Meta-review</h3>",
        _review_block(review.get("meta"), "meta"),
    ]
    faith = review.get("faithfulness")
    if faith:
        parts += ["<h3>Faithfulness check</h3>", f'<div id="faithfulness">{_value(faith)}</div>']
    reviews = review.get("reviews") or []
    for n, r in enumerate(reviews if isinstance(reviews, list) else [], 1):
        verdict = f"overall {r.get('overall', '?')}, {r.get('decision', '?')}" if isinstance(r, dict) else ""
        parts.append(
            f'<details class="reviewer"><summary>Reviewer {n}: {esc(verdict)}</summary>'
            f"{_review_block(r, f'reviewer-{n}')}</details>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _idea_section(idea: Any) -> str:
    if not isinstance(idea, dict):
        return '<section id="idea"><h2>Idea</h2><p class="empty">idea.json is missing.</p></section>'
    keys = [k for k in IDEA_FIELDS if k in idea] + [k for k in idea if k not in IDEA_FIELDS]
    items = "".join(
        f'<dt>{esc(k.capitalize())}</dt><dd data-field="{esc(k)}">{_value(idea[k])}</dd>' for k in keys
    )
    return f'<section id="idea"><h2>Idea</h2><dl class="kv">{items}</dl></section>'


def _pdf_section(folder: Path) -> str:
    if not (folder / "paper.pdf").is_file():
        return '<section id="pdf"><h2>Paper</h2><p class="empty">No paper.pdf in this folder.</p></section>'
    return (
        '<section id="pdf"><h2>Paper</h2>'
        '<p><a href="paper.pdf">Open paper.pdf</a> &middot; <a href="paper.tex">paper.tex</a></p>'
        '<object id="pdf-embed" class="pdf" data="paper.pdf" type="application/pdf">'
        '<p class="muted">This browser does not show PDFs inline: '
        '<a href="paper.pdf">open paper.pdf</a>.</p></object></section>'
    )


def _figures_section(folder: Path, meta: dict[str, Any]) -> str:
    captions: dict[str, str] = {}
    for note in meta.get("figures") or []:
        if isinstance(note, dict) and "file" in note:
            captions[str(note["file"])] = str(note.get("caption", ""))
    files = sorted(f.name for f in folder.iterdir() if f.is_file() and f.suffix.lower() in FIGURE_SUFFIXES)
    if not files:
        return '<section id="figures"><h2>Figures</h2><p class="empty">No figures.</p></section>'
    figs = "".join(
        f'<figure><a href="{href(name)}"><img src="{href(name)}" alt="{esc(captions.get(name) or name)}"></a>'
        f"<figcaption><code>{esc(name)}</code> {esc(captions.get(name, ''))}</figcaption></figure>"
        for name in files
    )
    return f'<section id="figures"><h2>Figures</h2><div class="figures">{figs}</div></section>'


def _diff_section(folder: Path) -> str:
    diff = _read_text(folder / "code.diff")
    if not diff.strip():
        return '<section id="diff"><h2>Code diff</h2><p class="empty">No change against the template.</p></section>'
    stats = diff_stat(diff)
    stat_rows = "".join(
        f'<tr><td><code>{esc(s.path)}</code></td><td class="num add">+{s.added}</td>'
        f'<td class="num del">&minus;{s.removed}</td></tr>'
        for s in stats
    )
    shown = diff[:PAGE_TEXT_LIMIT]
    lines = "".join(f'<span class="{kind}">{esc(line)}</span>\n' for kind, line in classify(shown))
    more = (
        f'<p class="muted">Shown: the first {PAGE_TEXT_LIMIT:,} characters.</p>'
        if len(diff) > PAGE_TEXT_LIMIT
        else ""
    )
    return (
        '<section id="diff"><h2>Code diff</h2>'
        '<p><a href="code.diff">code.diff</a> against the template'
        + (
            ' &middot; <a href="workdir.bundle">workdir.bundle</a> (git clone workdir.bundle)'
            if (folder / "workdir.bundle").is_file()
            else ""
        )
        + f'</p><table class="stat">{stat_rows}</table>{more}<pre class="diff">{lines}</pre></section>'
    )


def _cost_section(cost: Any, meta: dict[str, Any]) -> str:
    cost = cost if isinstance(cost, dict) else {}
    stages = cost.get("by_stage") or {}
    stage_rows = "".join(
        f"<tr><td>{esc(name)}</td><td class=num>{_value(s.get('calls'))}</td>"
        f"<td class=num>{_value(s.get('prompt_tokens'))}</td><td class=num>{_value(s.get('completion_tokens'))}</td>"
        f"<td class=num>{_cost(s.get('cost_usd'))}</td></tr>"
        for name, s in stages.items()
        if isinstance(s, dict)
    )
    timings = meta.get("timings") or {}
    timing_rows = "".join(
        f"<tr><td>{esc(k)}</td><td class=num>{_seconds(v)}</td></tr>" for k, v in timings.items()
    )
    return (
        '<section id="cost"><h2>Cost and time</h2><div class="cols">'
        f'<div><p>Total <strong id="cost-total">{_cost(cost.get("cost_usd"))}</strong> over '
        f"{_value(cost.get('calls', 0))} LLM calls ({_value(cost.get('prompt_tokens', 0))} prompt + "
        f"{_value(cost.get('completion_tokens', 0))} completion tokens).</p>"
        + (
            '<table class="stat"><thead><tr><th>Stage</th><th>Calls</th><th>Prompt</th><th>Completion</th>'
            f"<th>Cost</th></tr></thead><tbody>{stage_rows}</tbody></table>"
            if stage_rows
            else ""
        )
        + "</div><div>"
        + (
            f'<table class="stat"><thead><tr><th>Stage</th><th>Time</th></tr></thead><tbody>{timing_rows}'
            f"<tr><td><strong>total</strong></td><td class=num>{_seconds(sum(timings.values()))}</td></tr></tbody></table>"
            if timing_rows
            else '<p class="muted">No timings recorded.</p>'
        )
        + "</div></div></section>"
    )


def _files_section(folder: Path, meta: dict[str, Any]) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "index.html")
    items = "".join(
        f'<li><a href="{href(p.relative_to(folder).as_posix())}">{esc(p.relative_to(folder).as_posix())}</a> '
        f'<span class="muted">{p.stat().st_size:,} bytes</span></li>'
        for p in files
    )
    versions = meta.get("versions") or {}
    return (
        f'<section id="files"><h2>Files</h2><ul class="files">{items}</ul>'
        f"<h3>Versions</h3>{_value(versions)}</section>"
    )


def render_paper_page(folder: Path) -> str:
    """A paper's page, built from the files in its folder (the same files it links to)."""
    meta = _load_json(folder / "meta.json")
    if not isinstance(meta, dict):
        raise ValueError(f"{folder / 'meta.json'} is missing or unreadable")
    title = str(meta.get("title", folder.name))
    results = _load_json(folder / "results.json")
    analysis = results.get("analysis") if isinstance(results, dict) else None
    notes = _read_text(folder / "notes.md")
    header = (
        f'<h1 id="paper-title">{esc(title)}</h1>'
        f'<p class="badges"><span class="badge score">overall {_score(meta.get("overall"))} / 10</span> '
        f"{_decision_badge(meta.get('decision'))} {_faithful_badge(meta.get('faithful'))}</p>"
        '<dl class="kv facts">'
        f'<dt>Written by</dt><dd id="brain">{esc(_brain_label(str(meta.get("brain", "")), str(meta.get("model", ""))))}</dd>'
        f"<dt>Template</dt><dd>{esc(meta.get('template', ''))} ({esc(meta.get('scale', ''))} scale)</dd>"
        f"<dt>Idea</dt><dd><code>{esc(meta.get('idea_name', ''))}</code></dd>"
        f"<dt>Run</dt><dd><code>{esc(meta.get('run_id', ''))}</code></dd>"
        f"<dt>Archived</dt><dd>{esc(_when(str(meta.get('created_at', ''))))} UTC</dd>"
        f"<dt>Paper id</dt><dd><code>{esc(meta.get('id', folder.name))}</code></dd></dl>"
    )
    results_block = (
        (f"<h3>Analysis</h3>{_value(analysis)}" if analysis else "")
        + '<details><summary>results.json (all runs)</summary><pre class="json">'
        + _clip(json.dumps(results, indent=2), "results.json")
        + "</pre></details>"
        if results is not None
        else '<p class="empty">results.json is missing.</p>'
    )
    body = "\n".join(
        [
            header,
            _pdf_section(folder),
            _figures_section(folder, meta),
            _review_section(_load_json(folder / "review.json")),
            _idea_section(_load_json(folder / "idea.json")),
            _diff_section(folder),
            f'<section id="results"><h2>Results</h2>{results_block}</section>',
            f'<section id="notes"><h2>Lab notes</h2><pre class="notes">{_clip(notes, "notes.md")}</pre></section>'
            if notes.strip()
            else "",
            _cost_section(_load_json(folder / "cost.json"), meta),
            _files_section(folder, meta),
        ]
    )
    return _page(title, body, 1)
