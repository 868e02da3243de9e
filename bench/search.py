"""Tree search against linear search, with the same budget of runs, on the offline brain at smoke
scale: the confirmed primary metric each one reaches, their ratio, and the tree search's
orchestration overhead.

    .venv/bin/python bench/search.py [--template 2d_diffusion] [--budget 6] [--json]

One invocation runs the pipeline twice on one idea (each with a fresh archive, so the offline
brain proposes the same idea): `--search tree --search-budget N` and `--search linear
--max-runs N`. The tree search confirms its selected node on fresh seeds itself; the linear
search has no confirmation, so its best run (on the search seeds, as its paper reports it) is
confirmed here the same way: its code (from its commit) rerun in the sandbox on the tree's
fresh seeds. Both confirmed metrics are means over datasets on those seeds, next to the
baseline's on the same seeds.

The overhead is the share of the tree search's wall time (`search.json`'s `elapsed_s`) not
spent inside its sandboxed runs (the sum of the nodes' `wall_s`), with one run at a time.
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
sys.path.insert(0, str(REPO))

from agent.gitrepo import IdeaRepo  # noqa: E402
from agent.models import RunRecord, SearchTree  # noqa: E402
from agent.pipeline.search import primary_mean  # noqa: E402
from agent.sandbox.executors import LocalExecutor  # noqa: E402
from agent.template.contract import load_template  # noqa: E402
from agent.template.run import run_experiment  # noqa: E402

AIM_OVERHEAD = 0.05


def cli(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )


def one_run(work: Path, template: str, tag: str, *search: str) -> Path:
    """One pipeline run of one idea; returns its idea's state folder."""
    env = {
        "AI_SCIENTIST_EXPERIMENTS": str(work / "experiments"),
        "AI_SCIENTIST_ARCHIVE": str(work / f"archive-{tag}"),
        "AI_SCIENTIST_MODEL": "offline",
    }
    res = cli(
        "run",
        "--template",
        template,
        "--num-ideas",
        "1",
        "--reviewers",
        "1",
        "--scale",
        "smoke",
        *search,
        env=env,
        cwd=work,
    )
    if res.returncode != 0:
        raise SystemExit(f"{tag} run failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    run_dir = max(
        (p for p in (work / "experiments").iterdir() if (p / "settings.json").is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    [state] = run_dir.glob("*.state")
    return state


def confirm_linear(state: Path, template_name: str, seeds: list[int], work: Path) -> tuple[dict, float]:
    """The linear search's best run, rerun from its commit on `seeds`: (final_info, sandbox s)."""
    template = load_template(template_name)
    runs = [RunRecord.model_validate(r) for r in json.loads((state / "runs.json").read_text())]
    sign = 1 if template.primary.direction == "minimize" else -1
    best = min(
        (r for r in runs if r.ok and r.results),
        key=lambda r: sign * primary_mean(r.results, template.primary.name),
    )
    repo = IdeaRepo(state / "git", state.with_name(state.name.removesuffix(".state")))
    log = str(repo.run("log", "--format=%H %s")).splitlines()
    sha = next(line.split()[0] for line in log if line.split(" ", 1)[1].startswith(f"{best.name}: ok"))
    folder = work / "linear-confirm"
    folder.mkdir()
    repo.checkout_files(sha, folder)
    got = run_experiment(
        LocalExecutor(),
        template,
        "smoke",
        folder,
        "confirm",
        best.planned.args,
        log_name="confirm",
        seeds=seeds,
    )
    if not got.ok or got.results is None:
        raise SystemExit(f"the linear search's best run failed on fresh seeds: {got.error}")
    return got.results, got.wall_s


def measure(template_name: str, budget: int) -> dict:
    metric = load_template(template_name).primary
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        work = Path(tmp)
        tree_state = one_run(work, template_name, "tree", "--search", "tree", "--search-budget", str(budget))
        linear_state = one_run(work, template_name, "linear", "--search", "linear", "--max-runs", str(budget))
        tree = SearchTree.model_validate_json((tree_state / "search.json").read_text())
        baseline = tree.nodes[tree.confirmed["baseline"]].results or {}
        selected = tree.nodes[tree.confirmed["selected"]].results or {}
        linear_info, _ = confirm_linear(linear_state, template_name, tree.fresh_seeds, work)
        linear_runs = json.loads((linear_state / "runs.json").read_text())
        sandbox_s = sum(n.wall_s for n in tree.nodes)
        return {
            "template": template_name,
            "metric": metric.name,
            "direction": metric.direction,
            "budget": budget,
            "fresh_seeds": tree.fresh_seeds,
            "baseline": primary_mean(baseline, metric.name),
            "tree": primary_mean(selected, metric.name),
            "linear": primary_mean(linear_info, metric.name),
            "tree_runs": len(tree.nodes) - 1,
            "linear_runs": len(linear_runs),
            "tree_run_s": round(sum(n.wall_s for n in tree.nodes[1:]), 1),
            "linear_run_s": round(sum(r["wall_s"] for r in linear_runs), 1),
            "search_wall_s": tree.elapsed_s,
            "overhead_share": round(max(tree.elapsed_s - sandbox_s, 0.0) / tree.elapsed_s, 4),
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--template", default="2d_diffusion")
    p.add_argument("--budget", type=int, default=6)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    r = measure(args.template, args.budget)
    r["ratio"] = r["tree"] / r["linear"] if r["linear"] else None
    if args.json:
        print(json.dumps(r))
        return
    better = "lower" if r["direction"] == "minimize" else "higher"
    print(f"{r['template']}, offline brain, smoke scale, one idea, budget {r['budget']} runs per search")
    print(
        f"confirmed {r['metric']} ({better} is better) on fresh seeds {r['fresh_seeds']}, mean over datasets:"
    )
    print(f"  baseline                      {r['baseline']:.6g}")
    print(f"  tree search ({r['tree_runs']} runs, {r['tree_run_s']:.0f} s)    {r['tree']:.6g}")
    print(f"  linear search ({r['linear_runs']} runs, {r['linear_run_s']:.0f} s)  {r['linear']:.6g}")
    if r["ratio"] is not None:
        print(f"tree / linear: {r['ratio']:.4f}")
    print(
        f"tree search orchestration overhead: {r['overhead_share']:.1%} of {r['search_wall_s']:.0f} s "
        f"(aim under {AIM_OVERHEAD:.0%})"
    )


if __name__ == "__main__":
    main()
