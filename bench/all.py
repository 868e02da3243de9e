"""`make bench`: every benchmark, measured in this one run, as one table.

    .venv/bin/python bench/all.py [--quick]

Each row comes from one bench script run with --json (see each script's docstring for
what it measures and how). Ratios are computed from figures measured side by side.
--quick shrinks the slow ones (fewer review-bench papers, a shorter sandbox run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def run(script: str, *args: str) -> dict | list:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, str(BENCH / script), "--json", *args], capture_output=True, text=True,
                         env=env, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"{script} failed:\n{res.stdout[-1500:]}\n{res.stderr[-1500:]}")
    try:
        return json.loads(res.stdout)
    except ValueError:  # progress lines before the JSON
        return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    started = time.time()
    rows: list[tuple[str, str, str]] = []

    pipe = run("pipeline.py", "--parallel", "1,2")
    p1, p2 = pipe[0], pipe[1]
    rows += [
        ("papers/hour, offline brain, smoke, --parallel 1", f"{p1['papers_per_hour']:.1f}",
         f"{p1['papers']} papers in {p1['wall_s']:.0f} s"),
        ("papers/hour, offline brain, smoke, --parallel 2", f"{p2['papers_per_hour']:.1f}",
         f"{p2['papers_per_hour'] / p1['papers_per_hour']:.2f}x of --parallel 1"),
        ("orchestration overhead share (--parallel 1)", f"{p1['overhead_share']:.1%}", "aim < 5 %"),
    ]
    tree = run("search.py")
    rows += [
        (f"tree / linear search, confirmed {tree['metric']} ({tree['template']}, budget {tree['budget']})",
         f"{tree['ratio']:.4f}", f"{'lower' if tree['direction'] == 'minimize' else 'higher'} is better; "
         f"{tree['tree']:.4g} vs {tree['linear']:.4g}, baseline {tree['baseline']:.4g}"),
        ("tree search orchestration overhead share", f"{tree['overhead_share']:.1%}", "aim < 5 %"),
    ]
    box = run("sandbox.py", "--seconds", "5" if args.quick else "10", "--rounds", "3" if args.quick else "5")
    rows.append((f"sandbox / bare wall, {box['seconds']:.0f} s CPU-bound run", f"{box['overhead_ratio']:.4f}",
                 f"aim < 1.02; fixed cost {box['fixed_ms']:.0f} ms per run"))
    tok = run("prompt_tokens.py")
    rows.append(("prompt tokens per paper (LLM brain, scripted)", f"{tok['tokens_per_paper']:,}",
                 f"{tok['ratio_v1']:.3f} of AI-Scientist v1's ~1.5 M (aim <= 500k); {tok['calls']} calls"))
    rows.append(("completion tokens per paper (LLM brain, scripted)", f"{tok['completion_per_paper']:,}",
                 f"cacheable prompt prefix {tok['cached_per_paper']:,}; --improve adds {tok['improve_prompt']:,} prompt"))
    for stage, s in sorted(tok["by_stage"].items(), key=lambda kv: -kv[1]["prompt"]):
        rows.append((f"  prompt tokens, stage {stage}", f"{s['prompt']:,}",
                     f"{s['calls']} calls, {s['completion']:,} completion"))
    rb = run("review_bench.py", *(["--limit", "100"] if args.quick else []))
    m = rb["metrics"]
    for key, ref in (("balanced_accuracy", "GPT-4o 0.65, humans 0.66"), ("accuracy", "GPT-4o 0.66"),
                     ("f1", "GPT-4o 0.57, humans 0.49"), ("auc", "GPT-4o 0.65"), ("fpr", "GPT-4o 0.31"),
                     ("fnr", "GPT-4o 0.39")):
        e = m[key]
        rows.append((f"review-bench {key} ({rb['n']} ICLR 2022 papers, offline)",
                     f"{e['value']:.2f} [{e['low']:.2f}, {e['high']:.2f}]", ref))
    arc = run("archive.py", "--rounds", "3")
    rows += [
        (f"archive list, {arc['papers']} papers", f"{arc['list_s']:.3f} s", "aim < 1 s"),
        (f"archive render index, {arc['papers']} papers", f"{arc['render_s']:.3f} s", "aim < 1 s"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'benchmark':<{width}}  {'figure':>20}  note")
    for name, figure, note in rows:
        print(f"{name:<{width}}  {figure:>20}  {note}")
    print(f"\n(measured in one run of bench/all.py, {time.time() - started:.0f} s, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
