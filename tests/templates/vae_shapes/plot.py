"""Figures for the vae_shapes runs in the current folder.

    python plot.py [--labels labels.json] [--out_dir DIR]

labels.json maps run folders to legend labels ({"run_0": "Baseline", "run_1": "beta=4"}); only
those runs are plotted, in that order. Without it every run_* folder is plotted under its name.
Writes, to --out_dir, the three figures template.toml declares:
  samples.png          eight images decoded from prior samples per run and dataset (first seed)
  metrics.png          every metric per dataset, mean over seeds with standard-error bars
  rate_distortion.png  recon against kl, one point per run and dataset (mean over seeds)
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def find_runs(labels_file: str | None) -> dict[str, str]:
    """Run folder -> label, in plot order, for the runs with a final_info.json."""
    if labels_file:
        labels = json.loads(Path(labels_file).read_text())
    else:
        folders = [p.name for p in Path(".").glob("run_*") if p.is_dir()]
        folders.sort(key=lambda n: int(m.group(1)) if (m := re.fullmatch(r"run_(\d+)", n)) else 10**9)
        labels = {n: n for n in folders}
    runs = {run: label for run, label in labels.items() if (Path(run) / "final_info.json").is_file()}
    if not runs:
        raise SystemExit("plot.py: no run_*/final_info.json to plot; run experiment.py first")
    return runs


def plot_samples(runs: dict[str, str], out: Path) -> None:
    strips = {
        run: np.load(Path(run) / "samples.npz") for run in runs if (Path(run) / "samples.npz").is_file()
    }
    datasets = list(dict.fromkeys(ds for s in strips.values() for ds in s.files))
    fig, axes = plt.subplots(
        max(1, len(strips)),
        max(1, len(datasets)),
        squeeze=False,
        figsize=(3.2 * max(1, len(datasets)), 0.6 + 0.5 * max(1, len(strips))),
    )
    for i, (run, s) in enumerate(strips.items()):
        for j, ds in enumerate(datasets):
            ax = axes[i][j]
            if ds in s.files:
                ax.imshow(np.concatenate(list(s[ds]), axis=1), cmap="gray_r", vmin=0, vmax=1)  # (8, 64)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(ds, fontsize=9)
            if j == 0:
                ax.set_ylabel(runs[run], fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=120)
    plt.close(fig)


def plot_metrics(infos: dict[str, dict], runs: dict[str, str], out: Path) -> None:
    datasets = list(dict.fromkeys(ds for info in infos.values() for ds in info))
    metrics = list(dict.fromkeys(m for info in infos.values() for b in info.values() for m in b["means"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.2), squeeze=False)
    width = 0.8 / len(runs)
    x = np.arange(len(datasets))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for i, (run, label) in enumerate(runs.items()):
            means = [infos[run].get(ds, {}).get("means", {}).get(metric, np.nan) for ds in datasets]
            errs = [infos[run].get(ds, {}).get("stderrs", {}).get(metric, 0.0) for ds in datasets]
            ax.bar(x + (i - (len(runs) - 1) / 2) * width, means, width, yerr=errs, capsize=2, label=label)
        ax.set_xticks(x, datasets)
        ax.set_title(metric)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "metrics.png", dpi=120)
    plt.close(fig)


def plot_rate_distortion(infos: dict[str, dict], runs: dict[str, str], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    markers = "osd^v<>"
    datasets = list(dict.fromkeys(ds for info in infos.values() for ds in info))
    for i, (run, label) in enumerate(runs.items()):
        for j, ds in enumerate(datasets):
            if ds in infos[run]:
                m = infos[run][ds]["means"]
                ax.scatter(
                    m["kl"],
                    m["recon"],
                    color=f"C{i % 10}",
                    marker=markers[j % len(markers)],
                    label=label if j == 0 else None,
                )
    ax.set_xlabel("KL term, the rate (nats/image)")
    ax.set_ylabel("reconstruction error (nats/image)")
    ax.set_title(
        "markers: " + ", ".join(f"{ds} {markers[j % len(markers)]}" for j, ds in enumerate(datasets)),
        fontsize=8,
    )
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "rate_distortion.png", dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", help="JSON file mapping run folder -> legend label")
    p.add_argument("--out_dir", default=".")
    a = p.parse_args()
    runs = find_runs(a.labels)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    infos = {run: json.loads((Path(run) / "final_info.json").read_text()) for run in runs}
    plot_samples(runs, out)
    plot_metrics(infos, runs, out)
    plot_rate_distortion(infos, runs, out)


if __name__ == "__main__":
    main()
