"""
Figures for the nanogpt template, from every run_*/ folder in the current directory.

    python plot.py [--labels labels.json] [--out_dir DIR]

labels.json maps run folders to legend labels, e.g. {"run_0": "Baseline", "run_1": "lr=3e-3"};
only those runs are plotted, in that order. Without it every run_* folder is plotted under its name.

Writes:
  val_loss_curves.png   validation loss (bits/char) against training step, one panel per dataset:
                        the mean over seeds, shaded by one standard error
  final_metrics.png     final val_loss, train_loss and tokens_per_s per run and dataset,
                        bars are means over seeds with standard-error whiskers
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

METRICS = [  # (key in final_info.json, axis label)
    ("val_loss", "validation loss (bits/char)"),
    ("train_loss", "training loss (bits/char)"),
    ("tokens_per_s", "throughput (chars/s)"),
]


def find_runs(labels_file: str | None) -> dict[str, str]:
    """Run folder -> legend label, in plotting order."""
    if labels_file:
        labels = json.loads(Path(labels_file).read_text())
        if not isinstance(labels, dict):
            raise SystemExit(f"{labels_file}: expected an object mapping run folders to labels")
        return {str(k): str(v) for k, v in labels.items()}
    runs = [p.name for p in Path(".").glob("run_*") if p.is_dir()]
    runs.sort(key=lambda name: int(m.group(1)) if (m := re.fullmatch(r"run_(\d+)", name)) else math.inf)
    return {name: name for name in runs}


def load(runs: dict[str, str]) -> dict[str, dict]:
    """Label -> {"info": final_info, "curves": curves or None} for each run that finished."""
    out = {}
    for run, label in runs.items():
        info_file = Path(run) / "final_info.json"
        if not info_file.is_file():
            print(f"skipping {run}: no final_info.json", file=sys.stderr)
            continue
        curves_file = Path(run) / "curves.json"
        out[label] = {
            "info": json.loads(info_file.read_text()),
            "curves": json.loads(curves_file.read_text()) if curves_file.is_file() else None,
        }
    return out


def datasets_of(results: dict[str, dict]) -> list[str]:
    names: list[str] = []
    for r in results.values():
        names += [d for d in r["info"] if d not in names]
    return names


def plot_curves(results: dict[str, dict], out: Path) -> None:
    datasets = datasets_of(results)
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        for label, r in results.items():
            seeds = (r["curves"] or {}).get(ds)
            if not seeds:
                continue
            steps = np.asarray(next(iter(seeds.values()))["iter"])
            vals = np.asarray([c["val_loss"] for c in seeds.values()])  # (n_seeds, n_evals)
            mean = vals.mean(axis=0)
            err = vals.std(axis=0, ddof=1) / math.sqrt(len(vals)) if len(vals) > 1 else np.zeros_like(mean)
            (line,) = ax.plot(steps, mean, label=label)
            ax.fill_between(steps, mean - err, mean + err, color=line.get_color(), alpha=0.2)
        ax.set_title(ds)
        ax.set_xlabel("training step")
        ax.set_ylabel("validation loss (bits/char)")
        # The first evaluation (untrained model) dwarfs the differences that matter.
        ax.set_ylim(top=_upper_limit(results, ds))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "val_loss_curves.png", dpi=150)
    plt.close(fig)


def _upper_limit(results: dict[str, dict], ds: str) -> float | None:
    """A y limit that hides the initial loss: the highest value after the first quarter of training."""
    highs = []
    for r in results.values():
        for c in ((r["curves"] or {}).get(ds) or {}).values():
            vals = c["val_loss"][max(1, len(c["val_loss"]) // 4) :]
            if vals:
                highs.append(max(vals))
    return max(highs) * 1.05 if highs else None


def plot_final(results: dict[str, dict], out: Path) -> None:
    datasets = datasets_of(results)
    labels = list(results)
    width = 0.8 / len(labels)
    x = np.arange(len(datasets))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 4), squeeze=False)
    for ax, (metric, axis_label) in zip(axes[0], METRICS, strict=True):
        for i, label in enumerate(labels):
            info = results[label]["info"]
            means = [info[d]["means"][metric] if d in info else np.nan for d in datasets]
            errs = [info[d]["stderrs"][metric] if d in info else 0.0 for d in datasets]
            ax.bar(x + (i - (len(labels) - 1) / 2) * width, means, width, yerr=errs, capsize=3, label=label)
        ax.set_xticks(x, datasets)
        ax.set_ylabel(axis_label)
        if metric != "tokens_per_s":  # losses differ in the second decimal: zoom in on that range
            _zoom(ax, results, metric, datasets)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "final_metrics.png", dpi=150)
    plt.close(fig)


def _zoom(ax: plt.Axes, results: dict[str, dict], metric: str, datasets: list[str]) -> None:
    lows, highs = [], []
    for r in results.values():
        for d in datasets:
            if d in r["info"]:
                m, e = r["info"][d]["means"][metric], r["info"][d]["stderrs"][metric]
                lows.append(m - e)
                highs.append(m + e)
    if lows:
        pad = 0.1 * (max(highs) - min(lows)) or 0.05
        ax.set_ylim(min(lows) - pad, max(highs) + pad)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", default=None, help="JSON file mapping run folder -> legend label")
    p.add_argument("--out_dir", default=".", help="where to write the PNG files")
    args = p.parse_args()
    results = load(find_runs(args.labels))
    if not results:
        raise SystemExit("no run_*/final_info.json to plot: run experiment.py --out_dir run_0 first")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(results, out)
    plot_final(results, out)
    print(f"wrote {out / 'val_loss_curves.png'} and {out / 'final_metrics.png'}")


if __name__ == "__main__":
    main()
