"""The offline reviewer against human decisions on the shared ICLR 2022 calibration set.

Reads `../shared/review_bench/iclr2022` (400 papers, 147 accepted) in place and prints
balanced accuracy, accuracy, F1, AUC, FPR and FNR with bootstrap 95% CIs beside the
published GPT-4o and human figures, plus the correlation with the mean human score.

    .venv/bin/python bench/review_bench.py [--data DIR] [--limit N] [--json]

The offline reviewer is deterministic, so one review per paper is the whole ensemble.
`measure()` is what `bench/all.py` calls for its table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.brains import make_brain  # noqa: E402
from agent.review import bench as rb  # noqa: E402


def measure(data: Path | None = None, limit: int | None = None, seed: int = 0) -> rb.BenchReport:
    """The offline reviewer over the data (all papers unless `limit`)."""
    brain = make_brain("offline")
    return rb.bench(brain, data or rb.default_data_dir(), limit=limit, reviewers=1, seed=seed, workers=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=rb.default_data_dir())
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"error: {args.data}: no such folder (the calibration data lives in ../shared/review_bench)")
    report = measure(args.data, args.limit, args.seed)
    if args.json:
        print(report.model_dump_json(indent=2, exclude={"predictions"}))
        return
    from rich.console import Console

    Console(width=110).print(rb.render(report))


if __name__ == "__main__":
    main()
