"""
Figures for the 2d_diffusion runs in the current folder.

    python plot.py [--labels labels.json] [--out_dir DIR]

labels.json maps run folders to legend labels, e.g. {"run_0": "Baseline", "run_1": "lr=1e-3"};
only those runs are plotted, in that order. Without it every run_* folder is plotted under
its own name. Writes, to --out_dir:
  metrics.png     every metric per dataset, mean over seeds with standard-error bars
  train_loss.png  training loss over steps per dataset (mean over seeds), from curves.json
  samples.png     generated points per run and dataset (first seed), from samples.npz
"""

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def find_runs(labels_file: str | None) -> dict[str, str]:
    """run folder -> label, in plot order, keeping only runs with a final_info.json."""
    if labels_file:
        with open(labels_file) as f:
            labels = json.load(f)
    else:
        folders = [p.name for p in Path(".").glob("run_*") if p.is_dir()]
        folders.sort(key=lambda n: int(m.group(1)) if (m := re.fullmatch(r"run_(\d+)", n)) else 10**9)
        labels = {n: n for n in folders}
    runs = {}
    for run, label in labels.items():
        if (Path(run) / "final_info.json").is_file():
            runs[run] = label
        else:
            print(f"plot.py: skipping {run}: no {run}/final_info.json", file=sys.stderr)
    if not runs:
        sys.exit("plot.py: no run_*/final_info.json to plot; run experiment.py first")
    return runs


def load_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def grid(n: int, ncols: int = 3, size: float = 3.2):
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 0.5, size * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat


def plot_metrics(runs: dict[str, str], out: Path) -> None:
    infos = {run: load_json(Path(run) / "final_info.json") for run in runs}
    datasets = list(dict.fromkeys(ds for info in infos.values() for ds in info))
    metrics = list(dict.fromkeys(m for info in infos.values() for b in info.values() for m in b["means"]))
    fig, axes = grid(len(metrics))
    width = 0.8 / len(runs)
    x = np.arange(len(datasets))
    for ax, metric in zip(axes, metrics, strict=False):
        for i, (run, label) in enumerate(runs.items()):
            info = infos[run]
            mean = [info.get(ds, {}).get("means", {}).get(metric, np.nan) for ds in datasets]
            err = [info.get(ds, {}).get("stderrs", {}).get(metric, 0.0) for ds in datasets]
            ax.bar(x + (i - (len(runs) - 1) / 2) * width, mean, width, yerr=err, capsize=2, label=label)
        ax.set_xticks(x, datasets, rotation=30, ha="right")
        ax.set_title(metric)
    # Below the panels: inside one, the legend hid bars and ticks.
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=min(len(runs), 3), fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, 0.03 + 0.03 * ((len(runs) + 2) // 3), 1, 1))
    fig.savefig(out / "metrics.png", dpi=150)
    plt.close(fig)


def plot_train_loss(runs: dict[str, str], out: Path) -> None:
    curves = {run: c for run in runs if (c := load_json(Path(run) / "curves.json"))}
    if not curves:
        return
    datasets = list(dict.fromkeys(ds for c in curves.values() for ds in c))
    fig, axes = grid(len(datasets))
    for ax, ds in zip(axes, datasets, strict=False):
        for run, c in curves.items():
            if ds not in c:
                continue
            seeds = [np.asarray(v) for v in c[ds].values()]  # each (n_points, 2): step, loss
            n = min(len(s) for s in seeds)
            steps = seeds[0][:n, 0]
            loss = np.mean([s[:n, 1] for s in seeds], axis=0)
            ax.plot(steps, loss, label=runs[run])
        ax.set_title(ds)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "train_loss.png", dpi=150)
    plt.close(fig)


def plot_samples(runs: dict[str, str], out: Path) -> None:
    samples = {run: np.load(p) for run in runs if (p := Path(run) / "samples.npz").is_file()}
    if not samples:
        return
    datasets = list(dict.fromkeys(ds for s in samples.values() for ds in s.files))
    fig, axes = plt.subplots(len(samples), len(datasets), squeeze=False,
                             figsize=(2.4 * len(datasets), 2.4 * len(samples)))
    for i, (run, s) in enumerate(samples.items()):
        for j, ds in enumerate(datasets):
            ax = axes[i, j]
            if ds in s.files:
                pts = s[ds]  # (N, 2)
                ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.4)
            ax.set_xlim(-3, 3)
            ax.set_ylim(-3, 3)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(ds)
            if j == 0:
                ax.set_ylabel(textwrap.fill(runs[run], 24, break_long_words=False), fontsize=7)  # long labels stay in their row
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=150)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", help="JSON file mapping run folder -> legend label")
    p.add_argument("--out_dir", default=".")
    a = p.parse_args()
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = find_runs(a.labels)
    plot_metrics(runs, out)
    plot_train_loss(runs, out)
    plot_samples(runs, out)


if __name__ == "__main__":
    main()
