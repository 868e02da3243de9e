"""`ai-scientist sandbox run`: run one command in the sandbox, print the result as JSON.

Exit code: the command's own, 124 when it ran past the timeout, 137 when it was killed for
another limit (memory, disk, processes, CPU time).
"""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

from agent.errors import ConfigError
from agent.sandbox import runner as sandbox
from agent.sandbox.limits import Limits, SandboxResult

app = typer.Typer(no_args_is_help=True)

EXIT_TIMEOUT = 124
EXIT_KILLED = 137


def exit_code_for(result: SandboxResult) -> int:
    """The CLI's exit code for a result, shell-style (`timeout` uses 124, SIGKILL gives 137)."""
    if result.timed_out:
        return EXIT_TIMEOUT
    if result.killed_for is not None:
        return EXIT_KILLED
    return result.exit_code


@app.command(
    "run",
    context_settings={"allow_interspersed_args": False},
    help="Run CMD in the sandbox, e.g. `ai-scientist sandbox run --workdir w -- python exp.py`. "
    "Prints the result as JSON on the last line.",
)
def run_command(
    command: list[str] = typer.Argument(..., metavar="-- CMD ...", help="The command and its arguments."),
    workdir: Path = typer.Option(..., "--workdir", help="The run's folder: the only one it may write."),
    timeout: float = typer.Option(600, "--timeout", help="Wall-clock limit in seconds."),
    memory_mb: int = typer.Option(4096, "--memory-mb", help="Memory limit in MB."),
    disk_mb: int = typer.Option(2048, "--disk-mb", help="How much the work folder may grow, in MB."),
    max_procs: int = typer.Option(256, "--max-procs", help="Processes and threads, together."),
    file_size_mb: int = typer.Option(1024, "--file-size-mb", help="Largest file it may write, in MB."),
    gpus: bool = typer.Option(True, "--gpus/--no-gpus", help="Pass /dev/nvidia* through when present."),
    log_dir: Path | None = typer.Option(None, "--log-dir", help="Where the logs go (default: the workdir)."),
    unsafe_no_sandbox: bool = typer.Option(
        False,
        "--unsafe-no-sandbox",
        help="Run WITHOUT bubblewrap: the code can read your files and keys and use the network.",
    ),
) -> None:
    try:
        limits = Limits(
            timeout_s=timeout,
            memory_mb=memory_mb,
            disk_mb=disk_mb,
            max_procs=max_procs,
            file_size_mb=file_size_mb,
            gpus=gpus,
        )
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(f"bad sandbox limit {first['loc'][0]}: {first['msg']}") from None
    workdir.mkdir(parents=True, exist_ok=True)
    result = sandbox.run(
        command,
        workdir.resolve(),  # the user's path is theirs to trust; the sandbox wants it real
        limits,
        log_dir=log_dir,
        unsafe_no_sandbox=unsafe_no_sandbox,
    )
    print(result.model_dump_json())
    raise typer.Exit(exit_code_for(result))
