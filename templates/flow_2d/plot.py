"""Figures for the flow_2d template, from every run_*/ folder in the current directory.

    python plot.py [--labels labels.json] [--out_dir DIR]

labels.json maps run folder to legend label ({"run_0": "Baseline", "run_1": "8 layers"});
only those runs are plotted, in that order. Writes:
    test_loglik.png    test log-likelihood per dataset and run, with standard-error bars
    metrics.png        every metric of final_info.json, same layout
    train_curves.png   training NLL against step (mean over seeds), one panel per dataset
    densities.png      learned density (first seed) per run and dataset, if density_*.npz exist
    samples.png        flow samples over test points (first seed), same grid
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LOG_LINE = re.compile(r"dataset=(\S+) seed=(\S+) step=(\d+) train_nll=(\S+)")
MAX_GRID_RUNS = 6  # rows of the density and sample grids; more would be unreadable


def find_runs(labels_path: str | None) -> dict[str, str]:
    """Run folder -> label, in plotting order."""
    if labels_path:
        labels = json.loads(Path(labels_path).read_text())
        return {run: label for run, label in labels.items() if (Path(run) / "final_info.json").exists()}
    runs = [p for p in Path(".").glob("run_*") if (p / "final_info.json").exists()]

    def number(p: Path) -> tuple[int, str]:
        suffix = p.name.removeprefix("run_")
        return (int(suffix), "") if suffix.isdigit() else (10**9, suffix)

    return {p.name: p.name for p in sorted(runs, key=number)}


def grouped_bars(ax: plt.Axes, infos: dict[str, dict], labels: dict[str, str], metric: str) -> None:
    """One group per dataset, one bar per run, error bars = stderr over seeds."""
    datasets = list(dict.fromkeys(d for info in infos.values() for d in info))
    width = 0.8 / max(len(infos), 1)
    cells = [info[d] for info in infos.values() for d in info]
    lows = [c["means"][metric] - c["stderrs"][metric] for c in cells]
    highs = [c["means"][metric] + c["stderrs"][metric] for c in cells]
    # Log-likelihoods are negative and close together: bars from 0 would hide the differences.
    pad = 0.15 * (max(highs) - min(lows)) or 0.05
    floor = 0.0 if min(lows) >= 0 else min(lows) - pad
    for i, (run, info) in enumerate(infos.items()):
        xs = [j + (i - (len(infos) - 1) / 2) * width for j, d in enumerate(datasets) if d in info]
        means = np.array([info[d]["means"][metric] for d in datasets if d in info])
        errs = [info[d]["stderrs"][metric] for d in datasets if d in info]
        ax.bar(xs, means - floor, width, bottom=floor, yerr=errs, capsize=3, label=labels[run])
    ax.set_ylim(floor, max(highs) + pad)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_title(metric)
    ax.grid(axis="y", alpha=0.3)


def plot_bars(infos: dict[str, dict], labels: dict[str, str], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    grouped_bars(ax, infos, labels, "test_loglik")
    ax.set_ylabel("test log-likelihood (nats/point, higher is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "test_loglik.png", dpi=150)
    plt.close(fig)

    metrics = list(next(iter(next(iter(infos.values())).values()))["means"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        grouped_bars(ax, infos, labels, metric)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "metrics.png", dpi=150)
    plt.close(fig)


def read_curves(run: str) -> dict[str, dict[int, list[float]]]:
    """dataset -> step -> train NLL of each seed, from log.txt."""
    curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    log = Path(run) / "log.txt"
    for line in log.read_text().splitlines() if log.exists() else []:
        if m := LOG_LINE.search(line):
            curves[m[1]][int(m[3])].append(float(m[4]))
    return curves


def plot_curves(labels: dict[str, str], out: Path) -> None:
    curves = {run: read_curves(run) for run in labels}
    datasets = list(dict.fromkeys(d for c in curves.values() for d in c))
    if not datasets:
        return
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for run, label in labels.items():
            points = sorted(curves[run].get(dataset, {}).items())
            if points:
                ax.plot([s for s, _ in points], [np.mean(v) for _, v in points], label=label)
        ax.set_title(dataset)
        ax.set_xlabel("step")
        ax.set_ylabel("train NLL (nats/point)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "train_curves.png", dpi=150)
    plt.close(fig)


def plot_grids(infos: dict[str, dict], labels: dict[str, str], out: Path) -> None:
    """Heatmaps of the learned density and scatters of samples, runs x datasets."""
    runs = list(labels)[:MAX_GRID_RUNS]
    files = {
        run: {p.stem.removeprefix("density_"): p for p in Path(run).glob("density_*.npz")} for run in runs
    }
    in_order = dict.fromkeys(d for info in infos.values() for d in info)
    datasets = [d for d in in_order if any(d in f for f in files.values())]
    if not datasets:
        return
    shape = (len(runs), len(datasets))
    size = (2.6 * len(datasets), 2.6 * len(runs))
    dens_fig, dens_axes = plt.subplots(*shape, figsize=size, squeeze=False)
    samp_fig, samp_axes = plt.subplots(*shape, figsize=size, squeeze=False)
    for i, run in enumerate(runs):
        for j, dataset in enumerate(datasets):
            dax, sax = dens_axes[i][j], samp_axes[i][j]
            for ax in (dax, sax):
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(dataset, fontsize=9)
                if j == 0:
                    ax.set_ylabel(labels[run], fontsize=9)
            if dataset not in files[run]:
                continue
            data = np.load(files[run][dataset])
            e = float(data["extent"])
            dax.imshow(np.exp(data["logp"]), origin="lower", extent=(-e, e, -e, e), cmap="viridis")
            sax.scatter(*data["test"].T, s=1, c="0.7", label="test")
            sax.scatter(*data["samples"].T, s=1, c="tab:blue", alpha=0.4, label="flow")
            sax.set_xlim(-e, e)
            sax.set_ylim(-e, e)
    for fig, name in ((dens_fig, "densities.png"), (samp_fig, "samples.png")):
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", help="JSON file mapping run folder to legend label")
    parser.add_argument("--out_dir", default=".", help="where the PNG files go")
    args = parser.parse_args()
    labels = find_runs(args.labels)
    if not labels:
        raise SystemExit("no run_*/final_info.json here (or none named in --labels); run experiment.py first")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    infos = {run: json.loads((Path(run) / "final_info.json").read_text()) for run in labels}
    plot_bars(infos, labels, out)
    plot_curves(labels, out)
    plot_grids(infos, labels, out)


if __name__ == "__main__":
    main()
