"""Placeholder until this command group lands."""

import typer

app = typer.Typer(no_args_is_help=True)
