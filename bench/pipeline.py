"""Papers per hour on the offline brain at smoke scale, and the share of a run's wall time
spent outside the sandbox (orchestration overhead: graph, git, analysis, archive, HTML).

    .venv/bin/python bench/pipeline.py [--template 2d_diffusion] [--ideas 2] [--parallel 1,2]
                                       [--search-budget 6] [--json]

The baseline is run once first (it is cached per template and scale, as in real use), then
one run per --parallel value, each with a fresh archive so that each proposes the same ideas,
with the tree search at `make run`'s budget (6 runs per idea).
Sandbox time is read from the run's audit log (`sandbox.jsonl`: experiments, plot.py,
latexmk, chktex, pdftotext); the run's own start and end come from its `status.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AIM_OVERHEAD = 0.05


def cli(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})


def one_run(work: Path, template: str, ideas: int, parallel: int, tag: str, budget: int) -> dict:
    env = {"AI_SCIENTIST_EXPERIMENTS": str(work / "experiments"), "AI_SCIENTIST_ARCHIVE": str(work / f"archive-{tag}"),
           "AI_SCIENTIST_MODEL": "offline"}
    res = cli("run", "--template", template, "--num-ideas", str(ideas), "--parallel", str(parallel),
              "--scale", "smoke", "--search", "tree", "--search-budget", str(budget), env=env, cwd=work)
    if res.returncode != 0:
        raise SystemExit(f"run failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    run_dir = max((p for p in (work / "experiments").iterdir() if (p / "status.json").is_file()),
                  key=lambda p: p.stat().st_mtime)
    status = json.loads((run_dir / "status.json").read_text())
    wall = status["ended"] - status["started"]
    calls = [json.loads(line) for line in (run_dir / "sandbox.jsonl").read_text().splitlines()]
    sandbox_s = sum(c["wall_s"] for c in calls)
    papers = sum(1 for line in res.stdout.splitlines() if "✓" in line)
    return {"parallel": parallel, "papers": papers, "wall_s": round(wall, 1), "sandbox_s": round(sandbox_s, 1),
            "sandbox_calls": len(calls), "papers_per_hour": round(papers / wall * 3600, 1),
            "overhead_share": round(max(wall - sandbox_s, 0.0) / wall, 4)}


def measure(template: str, ideas: int, parallels: list[int], budget: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        work = Path(tmp)
        warm = cli("template", "check", template, env={}, cwd=work)  # also proves the template works
        if warm.returncode != 0:
            raise SystemExit(warm.stderr)
        one_run(work, template, 1, 1, "warm", 3)  # caches the baseline, as a second night would find it
        return [one_run(work, template, ideas, p, f"p{p}", budget) for p in parallels]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--template", default="2d_diffusion")
    p.add_argument("--ideas", type=int, default=2)
    p.add_argument("--parallel", default="1,2")
    p.add_argument("--search-budget", type=int, default=6)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = measure(args.template, args.ideas, [int(x) for x in args.parallel.split(",")], args.search_budget)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{args.template}, offline brain, smoke scale, {args.ideas} ideas per run")
    print(f"{'parallel':>8} {'papers':>6} {'wall s':>8} {'sandbox s':>9} {'papers/h':>9} {'overhead':>9}")
    for r in rows:
        print(f"{r['parallel']:>8} {r['papers']:>6} {r['wall_s']:>8.1f} {r['sandbox_s']:>9.1f} "
              f"{r['papers_per_hour']:>9.1f} {r['overhead_share']:>9.1%}")
    base = rows[0]
    for r in rows[1:]:
        print(f"speed-up of --parallel {r['parallel']} over {base['parallel']}: "
              f"{r['papers_per_hour'] / base['papers_per_hour']:.2f}x")
    print(f"orchestration overhead (parallel {base['parallel']}): {base['overhead_share']:.1%} "
          f"(aim under {AIM_OVERHEAD:.0%}); with parallel > 1 sandbox calls overlap, so only the first row is a share")


if __name__ == "__main__":
    main()
