"""`ai-scientist sandbox run` through the real console script: the result as JSON on the last
line, and the exit code: the command's own, 124 on timeout, 137 when killed for a limit, 2 when
bubblewrap is missing. Slow only because the console script imports the whole pipeline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.sandbox.bwrap import BWRAP_MISSING

pytestmark = pytest.mark.slow
CONSOLE_SCRIPT = Path(sys.executable).parent / "ai-scientist"


def cli(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [str(CONSOLE_SCRIPT), "sandbox", "run", "--workdir", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env or dict(os.environ))


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("args", "code", "killed_for"),
    [
        (["--", "python", "-c", "print('fine')"], 0, None),
        (["--", "python", "-c", "import sys; sys.exit(7)"], 7, None),
        (["--timeout", "1", "--", "sleep", "30"], 124, "timeout"),
        (["--memory-mb", "256", "--", "python", "-c", "b = bytearray(2**30)"], 137, "memory"),
        (["--max-procs", "8", "--", "sh", "-c", "for i in $(seq 30); do sleep 5 & done; wait"], 137, "procs"),
    ],
    ids=["ok", "exit-7", "timeout", "memory", "procs"],
)
def test_exit_codes(tmp_path: Path, args: list[str], code: int, killed_for: str | None):
    done = cli(tmp_path / "work", *args)
    result = last_json(done.stdout)
    assert done.returncode == code, done.stderr
    assert result["killed_for"] == killed_for and result["sandboxed"] is True
    assert (tmp_path / "work" / "sandbox.stdout.log").exists()


def test_options_after_the_double_dash_belong_to_the_command(tmp_path: Path):
    done = cli(tmp_path, "--", "python", "-c", "import sys; print(sys.argv[1:])", "--timeout", "-x")
    assert done.returncode == 0
    assert last_json(done.stdout)["stdout_tail"].strip() == "['--timeout', '-x']"


def path_without_bwrap(tmp_path: Path) -> str:
    """A PATH with git (the pipeline imports GitPython, which wants it) and no bwrap."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    return str(bin_dir)


def test_missing_bwrap_refuses_with_the_install_command(tmp_path: Path):
    env = {**os.environ, "PATH": path_without_bwrap(tmp_path)}
    done = cli(tmp_path / "work", "--", "true", env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {BWRAP_MISSING}"
    assert "apt-get install bubblewrap" in done.stderr and "Traceback" not in done.stderr


def test_unsafe_flag_runs_unsandboxed_with_a_warning(tmp_path: Path):
    env = {**os.environ, "PATH": path_without_bwrap(tmp_path)}  # bwrap missing does not matter then
    done = cli(tmp_path / "work", "--unsafe-no-sandbox", "--", sys.executable, "-c", "print('ran')", env=env)
    assert done.returncode == 0
    assert "WARNING" in done.stderr and "WITHOUT a sandbox" in done.stderr
    result = last_json(done.stdout)
    assert result["sandboxed"] is False and result["stdout_tail"] == "ran\n"


def test_bad_limits_are_one_line_and_exit_2(tmp_path: Path):
    done = cli(tmp_path, "--timeout", "0", "--", "true")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: bad sandbox limit timeout_s")
