"""`ai-scientist doctor`: each tool the pipeline needs, whether it is here, and the fix."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import typer
from rich.console import Console
from rich.table import Table

APT = "sudo apt-get install -y"
# (name, how to detect, fix, required)
CHECKS = [
    ("pdflatex", "bin:pdflatex", f"{APT} texlive-latex-base texlive-latex-recommended texlive-fonts-recommended", True),
    ("natbib styles", "kpse:plainnat.bst", f"{APT} texlive-latex-recommended texlive-bibtex-extra", True),
    ("latexmk", "bin:latexmk", f"{APT} latexmk", True),
    ("chktex", "bin:chktex", f"{APT} chktex", True),
    ("bubblewrap", "bin:bwrap", f"{APT} bubblewrap   (or run with --unsafe-no-sandbox, at your own risk)", True),
    ("pdftotext", "bin:pdftotext", f"{APT} poppler-utils", True),
    ("torch", "py:torch", "pip install torch==2.13.0   (CPU build; see the README)", True),
    ("ray", "py:ray", "pip install 'ai-scientist[ray]'   (only for --executor ray)", False),
    ("chromium", "bin:chromium", f"{APT} chromium   (only for the browser test)", False),
    ("GPU (CUDA)", "gpu", "optional: needed only for --scale full in reasonable time", False),
]


def _present(probe: str) -> tuple[bool, str]:
    kind, _, name = probe.partition(":")
    if kind == "bin":
        path = shutil.which(name)
        return path is not None, path or ""
    if kind == "py":
        return importlib.util.find_spec(name) is not None, ""
    if kind == "kpse":  # a TeX file, found the way LaTeX finds it
        if shutil.which("kpsewhich") is None:
            return False, ""
        found = subprocess.run(["kpsewhich", name], capture_output=True, text=True).stdout.strip()
        return bool(found), found
    try:
        import torch

        ok = torch.cuda.is_available()
        return ok, torch.cuda.get_device_name(0) if ok else "none"
    except ImportError:
        return False, "torch missing"


def doctor() -> None:
    """Check the tools the pipeline needs; exit 2 if a required one is missing."""
    table = Table("tool", "status", "detail / fix")
    missing = 0
    for name, probe, fix, required in CHECKS:
        ok, detail = _present(probe)
        missing += required and not ok
        status = "[green]ok[/]" if ok else ("[red]missing[/]" if required else "[yellow]absent[/]")
        table.add_row(name, status, detail if ok else fix)
    table.add_row("python", "[green]ok[/]", sys.version.split()[0])
    console = Console()
    console.print(table)
    if shutil.which("bwrap"):
        from agent.sandbox.identity import isolation

        iso = isolation()
        console.print(f"sandbox files: {iso.detail}", highlight=False)
    if missing:
        Console(stderr=True).print(f"{missing} required tool(s) missing: run `make setup` or the fixes above")
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
