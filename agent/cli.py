"""The `ai-scientist` console entry point. Each command group lives in `agent/commands/`."""

from __future__ import annotations

import sys

import typer

from agent.commands import archive_cmd, doctor, review_cmd, run_cmd, sandbox_cmd, template_cmd
from agent.errors import AIScientistError

app = typer.Typer(
    name="ai-scientist",
    help="Unattended ML research: ideas -> sandboxed experiments -> LaTeX paper -> review -> archive.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(template_cmd.app, name="template", help="List, check and scaffold research templates.")
app.add_typer(sandbox_cmd.app, name="sandbox", help="Run a command in the bubblewrap sandbox.")
app.add_typer(archive_cmd.app, name="archive", help="Browse the knowledge archive.")
doctor.register(app)
run_cmd.register(app)
review_cmd.register(app)


def main() -> None:
    """Run the CLI; our own errors become one line on stderr and exit code 2."""
    try:
        code = app(standalone_mode=False)  # typer.Exit(code) comes back as a return value here
    except AIScientistError as e:  # UserError, or a StageFailed that escaped its stage
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # usage errors (typer's vendored click) come through here in non-standalone mode
        if callable(getattr(e, "show", None)) and isinstance(getattr(e, "exit_code", None), int):
            e.show()
            sys.exit(2)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
