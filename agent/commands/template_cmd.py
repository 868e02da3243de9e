"""`ai-scientist template list | check NAME | new NAME`."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from agent.errors import ConfigError, TemplateError
from agent.template.check import check_template
from agent.template.contract import list_templates, load_template, templates_root

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command("list")
def list_cmd() -> None:
    """The templates under templates/, with their metrics and knobs."""
    table = Table("name", "title", "primary metric", "knobs", "datasets")
    for name in list_templates():
        try:
            t = load_template(name)
        except TemplateError as e:
            table.add_row(name, f"[red]invalid: {e}[/]", "", "", "")
            continue
        table.add_row(name, t.title, f"{t.primary.name} ({t.primary.direction})",
                      ", ".join(k.name for k in t.knobs), ", ".join(t.datasets))
    console.print(table)


@app.command()
def check(
    name: str = typer.Argument(..., help="Template name or folder"),
    scale: str = typer.Option("smoke", help="Scale profile to run"),
) -> None:
    """Validate a template, run it and plot.py in the sandbox, and check that what they did is what
    template.toml declares: knob defaults, every dataset, every metric, every figure."""
    tpl = load_template(name)
    console.print(f"{tpl.name}: template.toml ok ({len(tpl.knobs)} knobs, {len(tpl.metrics)} metrics); "
                  f"running the {scale} baseline in the sandbox...")
    report = check_template(name, scale)
    console.print(f"{tpl.name}: experiment.py {report.experiment_s:.1f}s, plot.py {report.plot_s:.1f}s, "
                  f"figures: {', '.join(report.figures)}")
    for ds, value in report.primary.items():
        console.print(f"  {ds}: {tpl.primary.name} = {value:.4g}")
    others = len(tpl.datasets) - len(report.primary)
    console.print(f"{tpl.name}: knob defaults match the code; figures match template.toml"
                  + (f"; the {others} other declared dataset(s) ran in {report.datasets_s:.1f}s" if others else ""))
    console.print(f"[green]{tpl.name}: ok[/]")


@app.command()
def new(
    name: str = typer.Argument(..., help="New template name (a folder under templates/)"),
    dest: Path | None = typer.Option(None, help="Parent folder (default: templates/)"),
) -> None:
    """Scaffold a working template from a minimal example; then edit it (see docs/templates.md)."""
    if not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise ConfigError(f"template name {name!r}: use letters, digits and underscores, starting with a letter")
    target = (dest or templates_root()) / name
    if target.exists():
        raise ConfigError(f"{target} already exists")
    scaffold = resources.files("agent") / "template" / "scaffold"
    with resources.as_file(scaffold) as src:
        shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
    toml = target / "template.toml"
    toml.write_text(toml.read_text().replace("SCAFFOLD_NAME", name))
    console.print(f"created {target}\nnext: edit it (docs/templates.md), then `ai-scientist template check {target}`")
