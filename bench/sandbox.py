"""Overhead of the sandbox against a bare subprocess, for a CPU-bound Python run of about 10 s.

    .venv/bin/python bench/sandbox.py [--seconds 10] [--rounds 3]

Both are measured in this one run, alternating, from the caller's side (start to result), and
the fastest of each is compared: other load on the machine only ever slows a run down. Also
prints the fixed cost of one sandboxed `true` (namespaces, mounts, launcher, teardown).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent import sandbox

SPIN = "import sys\nx = 0\nfor i in range(int(sys.argv[1])):\n    x += i * i\n"


def bare(cmd: list[str], workdir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def sandboxed(cmd: list[str], workdir: Path) -> float:
    started = time.perf_counter()
    result = sandbox.run(cmd, workdir, sandbox.Limits(timeout_s=600))
    elapsed = time.perf_counter() - started
    if not result.ok:
        sys.exit(f"sandboxed run failed: {result.error_tail()}")
    return elapsed


def calibrate(python: str, workdir: Path, seconds: float) -> int:
    """Loop iterations that take about `seconds` bare."""
    n = 2_000_000
    took = bare([python, "-c", SPIN, str(n)], workdir)
    return int(n * seconds / max(took, 1e-3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one CPU-bound run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind, alternating")
    args = parser.parse_args()
    python = sandbox.python_executable()
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        workdir = Path(tmp)
        startup_bare = min(bare(["true"], workdir) for _ in range(5))
        startup_box = min(sandboxed(["true"], workdir) for _ in range(5))
        n = calibrate(python, workdir, args.seconds)
        cmd = [python, "-c", SPIN, str(n)]
        times: dict[str, list[float]] = {"bare": [], "sandbox": []}
        for _ in range(args.rounds):
            times["bare"].append(bare(cmd, workdir))
            times["sandbox"].append(sandboxed(cmd, workdir))
    t_bare, t_box = min(times["bare"]), min(times["sandbox"])
    print(f"fixed cost of one run: bare `true` {startup_bare * 1e3:.0f} ms, sandboxed {startup_box * 1e3:.0f} ms")
    print("bare runs:     " + "  ".join(f"{t:.2f} s" for t in times["bare"]))
    print("sandbox runs:  " + "  ".join(f"{t:.2f} s" for t in times["sandbox"]))
    print(
        f"CPU-bound {t_bare:.1f} s run: sandbox/bare = {t_box / t_bare:.4f} "
        f"(overhead {100 * (t_box / t_bare - 1):+.2f} %, aim < 2 %)"
    )


if __name__ == "__main__":
    main()
