"""Overhead of the sandbox against a bare subprocess, for a CPU-bound Python run of about 10 s.

    .venv/bin/python bench/sandbox.py [--seconds 10] [--rounds 5]

Both kinds are measured in this one run, alternating, from the caller's side (start to result).
Reported:
- wall clock: the fastest run of each kind (other load on the machine only ever slows a run down)
  and the medians;
- the CPU time the command reports for itself, which other load on the machine hardly moves;
- the parts of the overhead: the fixed cost of a sandboxed `true` (namespaces, mounts, launcher,
  teardown) and the CPU the watchdog in the calling process spends per second of run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agent.sandbox import runner as sandbox
from agent.sandbox.limits import Limits

# Prints its own CPU seconds: inside the sandbox, RUSAGE_CHILDREN of the caller never sees them.
SPIN = (
    "import resource, sys\nx = 0\nfor i in range(int(sys.argv[1])):\n    x += i * i\n"
    "u = resource.getrusage(resource.RUSAGE_SELF)\nprint(u.ru_utime + u.ru_stime)\n"
)


def bare(cmd: list[str], workdir: Path) -> str:
    return subprocess.run(cmd, cwd=workdir, check=True, capture_output=True, text=True).stdout


def sandboxed(cmd: list[str], workdir: Path) -> str:
    result = sandbox.run(cmd, workdir, Limits(timeout_s=600))
    if not result.ok:
        sys.exit(f"sandboxed run failed: {result.error_tail()}")
    return result.stdout_tail


def measure(
    kind: Callable[[list[str], Path], str], cmd: list[str], workdir: Path
) -> tuple[float, float, float]:
    """(wall s, CPU s the command reports for itself, CPU s of this process) for one run."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    out = kind(cmd, workdir)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    mine = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, float(out.strip() or 0), mine


def calibrate(python: str, workdir: Path, seconds: float) -> int:
    """Loop iterations that take about `seconds` of CPU, bare."""
    n = 5_000_000
    cpu = min(measure(bare, [python, "-c", SPIN, str(n)], workdir)[1] for _ in range(2))
    return int(n * seconds / max(cpu, 1e-3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one CPU-bound run")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each kind, alternating")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    python = sandbox.python_executable()
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        workdir = Path(tmp)
        fixed_bare = min(measure(bare, ["true"], workdir)[0] for _ in range(5))
        fixed_box = min(measure(sandboxed, ["true"], workdir)[0] for _ in range(5))
        cmd = [python, "-c", SPIN, str(calibrate(python, workdir, args.seconds))]
        runs: dict[str, list[tuple[float, float, float]]] = {"bare": [], "sandbox": []}
        for _ in range(args.rounds):
            runs["bare"].append(measure(bare, cmd, workdir))
            runs["sandbox"].append(measure(sandboxed, cmd, workdir))

    wall = {k: [r[0] for r in v] for k, v in runs.items()}
    cpu = {k: min(r[1] for r in v) for k, v in runs.items()}
    watchdog = sum(r[2] for r in runs["sandbox"]) / sum(wall["sandbox"])
    ratio = min(wall["sandbox"]) / min(wall["bare"])
    if args.json:
        print(json.dumps({"seconds": round(min(wall["bare"]), 2), "overhead_ratio": round(ratio, 4),
                          "fixed_ms": round((fixed_box - fixed_bare) * 1e3, 1)}))
        return
    print(
        f"fixed cost of one run: bare `true` {fixed_bare * 1e3:.0f} ms, sandboxed `true` {fixed_box * 1e3:.0f} ms"
    )
    print(
        f"watchdog: {100 * watchdog:.2f} % of one core in the calling process, on another core than the run"
    )
    for kind in ("bare", "sandbox"):
        times = "  ".join(f"{t:.2f}" for t in wall[kind])
        print(
            f"{kind:8} wall s: {times}   (min {min(wall[kind]):.2f}, median {statistics.median(wall[kind]):.2f})"
        )
    print(
        f"CPU time the command reports: bare {cpu['bare']:.2f} s, sandboxed {cpu['sandbox']:.2f} s "
        f"(ratio {cpu['sandbox'] / cpu['bare']:.4f})"
    )
    print(
        f"CPU-bound {min(wall['bare']):.1f} s run: sandbox/bare wall = {ratio:.4f} "
        f"(overhead {100 * (ratio - 1):+.2f} %, aim < 2 %; fixed cost alone "
        f"{100 * (fixed_box - fixed_bare) / min(wall['bare']):.2f} %)"
    )


if __name__ == "__main__":
    main()
