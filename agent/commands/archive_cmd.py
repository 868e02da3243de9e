"""`ai-scientist archive ...`: list, show, rate, compare, export, re-index, render and serve the archive."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent.archive import index as ix
from agent.archive.store import ENV_VAR, Archive, default_archive_root
from agent.errors import UserError

app = typer.Typer(no_args_is_help=True)

ARCHIVE_HELP = f"Archive folder (default: ${ENV_VAR}, else ./archive)."


class Sort(StrEnum):
    score = "score"
    human = "human"
    date = "date"


@app.callback()
def archive_group(
    ctx: typer.Context,
    archive: Path | None = typer.Option(None, "--archive", metavar="DIR", help=ARCHIVE_HELP),
) -> None:
    """Browse the knowledge archive: every finished paper, ranked by review score."""
    ctx.obj = {"archive": archive}


def _archive_option() -> Path | None:
    return typer.Option(None, "--archive", metavar="DIR", help=ARCHIVE_HELP)


def _open(ctx: typer.Context, archive: Path | None, *, create: bool = False) -> Archive:
    """The archive named on this command, else on the group, else by env/default."""
    root = default_archive_root(archive or (ctx.obj or {}).get("archive"))
    if not create and not root.is_dir():
        raise UserError(f"no archive at {root}; pass --archive DIR or set {ENV_VAR}")
    return Archive(root)


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    template: str | None = typer.Option(None, "--template", "-t", help="Only this template's papers."),
    sort: Sort = typer.Option(Sort.score, "--sort", help="score: best review first; human: best by your own "
                              "score; date: newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
    archive: Path | None = _archive_option(),
) -> None:
    """List archived papers."""
    rows = _open(ctx, archive).list(template=template, sort=sort.value)
    if as_json:
        print(json.dumps([r.model_dump() for r in rows], indent=2))
        return
    console = Console()
    if not rows:
        console.print("No papers in the archive yet.")
        return
    table = Table(header_style="bold")
    table.add_column("id", no_wrap=True, min_width=max(len(r.id) for r in rows))  # copyable for `show`
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("yours", justify="right", no_wrap=True)
    table.add_column("decision", no_wrap=True)
    table.add_column("template", no_wrap=True)
    table.add_column("title", overflow="fold", ratio=1)
    table.add_column("brain", overflow="fold")
    table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("date", no_wrap=True)
    for r in rows:
        # Text(...) keeps LLM-written titles from being read as rich markup.
        table.add_row(
            Text(r.id),
            _score(r.overall),
            _score(r.human_score) + {"follow-up": " ↻", "discard": " ✗"}.get(r.mark or "", ""),
            Text(r.decision or "—"),
            Text(r.template),
            Text(r.title),
            Text("offline" if r.brain == "offline" else r.model),
            "—" if r.cost_usd is None else f"${r.cost_usd:.2f}",
            r.created_at[:16].replace("T", " "),
        )
    console.print(table)


@app.command("rate")
def rate_cmd(
    ctx: typer.Context,
    paper_id: str = typer.Argument(..., metavar="ID", help="Paper id (or a unique prefix)."),
    score: int = typer.Argument(..., metavar="SCORE", help="Your Overall score, 1-10 (the reviewers' scale)."),
    note: str = typer.Option("", "--note", help="What you think of it; later ideation reads it."),
    follow_up: bool = typer.Option(False, "--follow-up", help="Continue this paper in the next run of its template."),
    discard: bool = typer.Option(False, "--discard", help="Never propose this idea again."),
    archive: Path | None = _archive_option(),
) -> None:
    """Record your verdict on a paper; it outranks the automated review in later ideation."""
    if follow_up and discard:
        raise UserError("--follow-up and --discard exclude each other; pick one")
    mark = "follow-up" if follow_up else "discard" if discard else None
    verdict = _open(ctx, archive).rate(paper_id, score, note, mark)
    Console().print(f"rated {verdict.paper_id}: {verdict.score}/10" + (f", {mark}" if mark else ""), highlight=False)


@app.command("compare")
def compare_cmd(
    ctx: typer.Context,
    first: str = typer.Argument(..., metavar="ID1", help="A paper id (or a unique prefix)."),
    second: str = typer.Argument(..., metavar="ID2", help="Another paper id (or a unique prefix)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    archive: Path | None = _archive_option(),
) -> None:
    """Two papers side by side: ideas, scores (automated and yours), primary results, code diff."""
    from agent.archive.compare import compare

    result = compare(_open(ctx, archive), first, second)
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    a, b = result.a, result.b
    table = Table(header_style="bold", show_lines=True)
    table.add_column("", style="bold", no_wrap=True)
    table.add_column(Text(a.row.id), overflow="fold", ratio=1)
    table.add_column(Text(b.row.id), overflow="fold", ratio=1)
    for label, get in (
        ("title", lambda s: s.row.title), ("idea", lambda s: s.row.idea_name), ("template", lambda s: s.row.template),
        ("hypothesis", lambda s: s.hypothesis), ("review", lambda s: f"{_score(s.row.overall)} ({s.row.decision or '—'})"),
        ("yours", lambda s: _score(s.row.human_score) + (f" ({s.row.mark})" if s.row.mark else "")),
        ("your note", lambda s: s.row.human_note or "—"),
    ):
        table.add_row(label, Text(get(a)), Text(get(b)))
    for ds in result.datasets:
        cells = []
        for side in (a, b):
            r = side.results.get(ds)
            cells.append(Text("—" if r is None else f"{side.primary_metric}: baseline {_num(r.baseline)}, "
                                                      f"best {_num(r.best)} ({r.best_label})"))
        table.add_row(ds, *cells)
    console = Console()
    console.print(table)
    console.print(Text(result.code_diff) if result.code_diff.strip() else f"code: {result.diff_note}", highlight=False)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    paper_id: str = typer.Argument(..., metavar="ID", help="Paper id (or a unique prefix)."),
    as_json: bool = typer.Option(False, "--json", help="Print the index row and meta-review as JSON."),
    archive: Path | None = _archive_option(),
) -> None:
    """Show one paper: review summary, scores, files and diff stat."""
    from agent.archive.web.diff import diff_stat

    arch = _open(ctx, archive)
    row = arch.get(paper_id)
    folder = arch.folder(row.id)
    try:
        review = json.loads((folder / "review.json").read_text())
    except (OSError, ValueError):
        review = {}
    meta_review = review.get("meta") or {}
    diff = (folder / "code.diff").read_text(errors="replace") if (folder / "code.diff").is_file() else ""
    stats = diff_stat(diff)
    if as_json:
        out = {
            "paper": row.model_dump(),
            "review": meta_review,
            "folder": str(folder),
            "diff_stat": [s.model_dump() for s in stats],
        }
        print(json.dumps(out, indent=2))
        return
    c = Console(highlight=False, soft_wrap=True)  # paths and ids stay whole, copyable
    c.print(Text(row.title, style="bold"))
    brain = "offline brain (no LLM)" if row.brain == "offline" else f"LLM brain, model {row.model}"
    facts = [
        ("id", row.id),
        ("template", f"{row.template} ({row.scale} scale)"),
        ("idea", row.idea_name),
        ("run", row.run_id),
        ("written by", brain),
        ("archived", row.created_at),
        ("cost", "—" if row.cost_usd is None else f"${row.cost_usd:.4f}"),
        ("time", "—" if row.total_s is None else f"{row.total_s:.0f} s"),
        (
            "faithful",
            {True: "yes", False: "NO: some numbers do not trace to the results", None: "unchecked"}[
                row.faithful
            ],
        ),
    ]
    for key, value in facts:
        c.print(Text.assemble((f"{key:>11}  ", "dim"), value))
    scores = "  ".join(
        f"{name} {_score(getattr(row, name))}"
        for name in ix.SCORE_FIELDS
    )
    c.print(
        Text.assemble(("\n     scores  ", "dim"), f"overall {_score(row.overall)}/10, {row.decision or '—'}")
    )
    c.print(Text.assemble(("             ", "dim"), scores))
    if meta_review.get("summary"):
        c.print(Text("\nReview summary", style="bold"))
        c.print(Text(str(meta_review["summary"])))
    for heading in ("strengths", "weaknesses"):
        items = meta_review.get(heading) or []
        if items:
            c.print(Text(f"\n{heading.capitalize()}", style="bold"))
            for item in items:
                c.print(Text(f"  - {item}"))
    c.print(Text("\nFiles", style="bold"))
    for name in ("paper.pdf", "paper.tex", "review.json", "code.diff", "workdir.bundle", "index.html"):
        if (folder / name).is_file():
            c.print(Text(f"  {folder / name}"))
    c.print(Text("\nDiff against the template", style="bold"))
    if not stats:
        c.print("  (no change)")
    for s in stats:
        c.print(Text.assemble(f"  {s.path}  ", (f"+{s.added}", "green"), " ", (f"-{s.removed}", "red")))
    if stats:
        added, removed = sum(s.added for s in stats), sum(s.removed for s in stats)
        c.print(f"  {len(stats)} file(s) changed, {added} insertion(s)(+), {removed} deletion(s)(-)")


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    paper_id: str = typer.Argument(..., metavar="ID", help="Paper id (or a unique prefix)."),
    to: Path = typer.Option(..., "--to", metavar="DIR", help="Folder to copy the paper's folder into."),
    archive: Path | None = _archive_option(),
) -> None:
    """Copy one paper's folder (PDF, sources, review, diff, bundle) to DIR/<id>."""
    target = _open(ctx, archive).export(paper_id, to)
    typer.echo(str(target))


@app.command("rebuild-index")
def rebuild_cmd(ctx: typer.Context, archive: Path | None = _archive_option()) -> None:
    """Rebuild index.sqlite from the paper folders (when it is lost or damaged)."""
    report = _open(ctx, archive).rebuild_index()
    if report.moved_aside:
        typer.echo(f"the old index was unreadable; moved it to {report.moved_aside}")
    typer.echo(f"indexed {len(report.indexed)} paper(s), {report.outcomes} idea outcome(s)")
    for d in report.damaged:
        typer.echo(f"skipped {d.name}: {d.reason}", err=True)
    if report.bad_outcome_lines:
        typer.echo(f"skipped {report.bad_outcome_lines} unreadable line(s) of outcomes.jsonl", err=True)
    for name in report.stale_temp:
        typer.echo(f"leftover of an interrupted write (safe to delete): {name}", err=True)


@app.command("render")
def render_cmd(ctx: typer.Context, archive: Path | None = _archive_option()) -> None:
    """Regenerate index.html, last-night.html and every paper's page."""
    index = _open(ctx, archive).render_html(all_pages=True)
    typer.echo(str(index))


@app.command("serve")
def serve_cmd(
    ctx: typer.Context,
    port: int = typer.Option(8000, "--port", "-p", help="Port on 127.0.0.1 (0 picks a free one)."),
    archive: Path | None = _archive_option(),
) -> None:
    """Serve the archive's browser on http://127.0.0.1:PORT/ (this machine only)."""
    from agent.archive.web.server import make_server, url_of

    arch = _open(ctx, archive)
    if not (arch.root / "index.html").is_file():
        arch.render_html()
    server = make_server(arch.root, port)
    typer.echo(f"Serving {arch.root.resolve()} at {url_of(server)} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
