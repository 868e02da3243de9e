"""Bar chart of the primary metric per run and dataset, with standard-error bars."""

import argparse
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRIC = "test_nll"

p = argparse.ArgumentParser()
p.add_argument("--labels", default=None)
p.add_argument("--out_dir", default=".")
args = p.parse_args()
runs = sorted(d.name for d in Path(".").glob("run_*") if (d / "final_info.json").is_file())
labels = json.loads(Path(args.labels).read_text()) if args.labels else {r: r for r in runs}
labels = {r: lab for r, lab in labels.items() if r in runs}
infos = {r: json.loads(Path(r, "final_info.json").read_text()) for r in labels}
datasets = sorted(next(iter(infos.values())))
os.makedirs(args.out_dir, exist_ok=True)
fig, axes = plt.subplots(1, len(datasets), figsize=(4 * len(datasets), 3.2), squeeze=False)
for ax, ds in zip(axes[0], datasets, strict=True):
    ax.bar(range(len(labels)), [infos[r][ds]["means"][METRIC] for r in labels],
           yerr=[infos[r][ds]["stderrs"][METRIC] for r in labels], capsize=3)
    ax.set_xticks(range(len(labels)), list(labels.values()), rotation=30, ha="right", fontsize=7)
    ax.set_title(ds)
    ax.set_ylabel(METRIC)
fig.tight_layout()
fig.savefig(os.path.join(args.out_dir, f"{METRIC}.png"), dpi=120)
