"""Minimal template: a 1-D Gaussian mixture fitted by gradient descent on generated data.

Smoke (CPU, seconds):  python experiment.py --out_dir run_0 --scale smoke
Full:                  python experiment.py --out_dir run_0 --scale full

Writes run_0/final_info.json (the results), run_0/config.json (every setting, knobs included)
and run_0/log.txt (one progress line every LOG_EVERY steps).

Replace the model and data with your own; keep the command line and final_info.json.
"""

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass

import torch

INIT = "spread"  # how component means start: "spread" over the data range or "random"
LOG_EVERY = 50  # steps between progress lines in log.txt


@dataclass
class Config:
    num_components: int = 3  # mixture components
    learning_rate: float = 0.05  # Adam step size
    steps: int = 300  # optimisation steps
    n_train: int = 2000  # training points per dataset
    n_test: int = 1000  # held-out points


SCALES = {"smoke": {"steps": 150, "n_train": 1000}, "full": {"steps": 3000, "n_train": 20000, "n_test": 5000}}
DATASETS = {"bimodal": [(-2.0, 0.5), (2.0, 0.5)], "trimodal": [(-3.0, 0.4), (0.0, 0.8), (3.0, 0.4)]}


def sample(name: str, n: int, gen: torch.Generator) -> torch.Tensor:
    modes = DATASETS[name]
    idx = torch.randint(len(modes), (n,), generator=gen)
    mu = torch.tensor([m for m, _ in modes])[idx]
    sd = torch.tensor([s for _, s in modes])[idx]
    return mu + sd * torch.randn(n, generator=gen)  # (n,)


def nll(x: torch.Tensor, logits, mu, log_sd) -> torch.Tensor:
    comp = -0.5 * ((x[:, None] - mu) / log_sd.exp()) ** 2 - log_sd - 0.5 * math.log(2 * math.pi)  # (n, K)
    return -(torch.logsumexp(comp + torch.log_softmax(logits, 0), dim=1)).mean()


def fit(cfg: Config, name: str, seed: int, log) -> dict[str, float]:
    gen = torch.Generator().manual_seed(seed)
    train, test = sample(name, cfg.n_train, gen), sample(name, cfg.n_test, gen)
    k = cfg.num_components
    mu0 = torch.linspace(train.min(), train.max(), k) if INIT == "spread" else torch.randn(k, generator=gen)
    params = [torch.zeros(k, requires_grad=True), mu0.clone().requires_grad_(True), torch.zeros(k, requires_grad=True)]
    opt = torch.optim.Adam(params, lr=cfg.learning_rate)
    start = time.time()
    for step in range(1, cfg.steps + 1):
        opt.zero_grad()
        loss = nll(train, *params)
        loss.backward()
        opt.step()
        if step % LOG_EVERY == 0 or step == cfg.steps:
            log.write(f"dataset={name} seed={seed} step={step} train_nll={loss.item():.4f}\n")
            log.flush()
    with torch.no_grad():
        return {"test_nll": nll(test, *params).item(), "train_nll": loss.item(), "train_time": time.time() - start}


def summarize(per_seed: dict[str, list[float]]) -> dict:
    n = len(next(iter(per_seed.values())))
    means = {m: sum(v) / n for m, v in per_seed.items()}
    std = {m: math.sqrt(sum((x - means[m]) ** 2 for x in v) / max(n - 1, 1)) for m, v in per_seed.items()}
    return {"means": means, "stderrs": {m: s / math.sqrt(n) for m, s in std.items()}, "per_seed": per_seed}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out_dir", default="run_0")
    p.add_argument("--scale", default="smoke", choices=SCALES)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--datasets", default=",".join(DATASETS))
    for field, value in asdict(Config()).items():
        p.add_argument(f"--{field}", type=type(value), default=None)
    args = p.parse_args()
    cfg = Config(**{**SCALES[args.scale], **{k: v for k, v in vars(args).items() if k in asdict(Config()) and v is not None}})
    os.makedirs(args.out_dir, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {}
    with open(os.path.join(args.out_dir, "log.txt"), "w") as log:
        for name in args.datasets.split(","):
            runs = [fit(cfg, name, s, log) for s in seeds]
            results[name] = summarize({m: [r[m] for r in runs] for m in runs[0]})
            log.write(f"{name}: test_nll {results[name]['means']['test_nll']:.4f}\n")
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump({**asdict(cfg), "INIT": INIT, "scale": args.scale, "seeds": seeds}, f, indent=2)
    with open(os.path.join(args.out_dir, "final_info.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
