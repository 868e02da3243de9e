"""RealNVP normalizing flow on 2-D densities, trained by exact maximum likelihood.

A stack of affine coupling layers (Dinh et al., 2017) maps data x to z = f(x) with a
standard-normal base, so log p(x) = log N(f(x); 0, I) + log|det df/dx| is exact. Each layer
keeps one coordinate and rescales/shifts the other with an MLP of the kept one; the
log-scale is bounded by a soft tanh clamp so training cannot blow up the Jacobian.

Smoke (one call, about 30 s on 2 CPU cores):
    python experiment.py --out_dir run_0 --scale smoke --seeds 0,1 --datasets two_moons,checkerboard

Full (one GPU):
    python experiment.py --out_dir run_0 --scale full --seeds 0,1,2 \
        --datasets two_moons,eight_gaussians,checkerboard,pinwheel

Writes run_0/final_info.json (mean, stderr and per-seed value of every metric per dataset),
run_0/config.json (the hyperparameters below), run_0/log.txt (training progress) and
run_0/density_<dataset>.npz (log-density grid, samples and test points of the first seed,
for plot.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

# -----------------------------------------------------------------------------
# Hyperparameters. The knobs of template.toml keep their defaults at every scale;
# SCALES only changes the budget (model width, steps, data and evaluation sizes).

# How the coupling layers take turns (edited in code, not a flag):
#   "alternate": layer i transforms coordinate (i+1) % 2 given the other (RealNVP's masks)
#   "rotation":  alternate, plus a fixed random rotation of the plane before each layer
#   "identity":  every layer transforms the same coordinate (an ablation: x_0 stays Gaussian)
PERMUTATION = "alternate"


@dataclass
class Config:
    # knobs: flags of the same name, defaults as in template.toml
    n_layers: int = 8  # affine coupling layers
    learning_rate: float = 2e-3  # peak AdamW learning rate, cosine-decayed to 0
    batch_size: int = 256  # points per optimisation step
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    activation: str = "relu"  # hidden activation of the scale/shift nets: relu | tanh | silu | gelu
    # budget (SCALES overrides these)
    hidden_dim: int = 256  # width of the two hidden layers of each scale/shift MLP
    steps: int = 20_000  # optimisation steps per (dataset, seed)
    n_train: int = 50_000  # fixed training set, drawn from the run's seed
    n_test: int = 20_000  # fixed test set, the same for every seed and run
    n_samples: int = 5_000  # flow samples compared with test points by MMD
    grid_size: int = 200  # resolution of the saved log-density heatmap
    log_interval: int = 500  # steps between progress lines in log.txt
    # fixed
    log_scale_bound: float = 2.0  # |log-scale| <= bound, via bound * tanh(raw / bound)
    grad_clip: float = 10.0  # max global gradient norm
    eval_batch: int = 8192  # points per forward pass when evaluating
    plot_extent: float = 4.0  # heatmap covers [-extent, extent]^2


# fmt: off
SCALES: dict[str, dict[str, int]] = {
    "smoke": dict(hidden_dim=64, steps=1_000, n_train=2_000, n_test=5_000, n_samples=1_000,
                  grid_size=80, log_interval=100),
    "full": dict(hidden_dim=256, steps=20_000, n_train=50_000, n_test=20_000, n_samples=5_000,
                 grid_size=200, log_interval=500),
}
# fmt: on
KNOB_FLAGS = ("n_layers", "learning_rate", "batch_size", "weight_decay", "activation")
PERMUTATIONS = ("alternate", "rotation", "identity")
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU, "gelu": nn.GELU}
Logger = Callable[[str], None]
METRICS = ("test_loglik", "train_loglik", "sample_mmd", "train_time")

# -----------------------------------------------------------------------------
# Data: 2-D densities generated in code, each a (n, 2) float32 array.


def two_moons(n: int, rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(0.0, math.pi, n)
    upper = rng.integers(0, 2, n).astype(bool)
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    pts = 2.0 * (np.stack([x, y], axis=1) - [0.5, 0.25])  # centred, about [-3, 3] x [-1.5, 1.5]
    return pts + 0.1 * rng.standard_normal((n, 2))


def eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    angle = rng.integers(0, 8, n) * (math.pi / 4)
    centres = 2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)  # ring of radius 2
    return centres + 0.2 * rng.standard_normal((n, 2))


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    # Uniform on the 8 dark cells of a 4x4 board on [-2, 2]^2: true log-density -log 8.
    x = rng.uniform(-2.0, 2.0, n)
    y = rng.uniform(0.0, 1.0, n) - 2.0 * rng.integers(0, 2, n) + np.floor(x) % 2
    return np.stack([x, y], axis=1)


def pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    # Five arms that curl outwards (Johnson et al., 2016; as in FFJORD's toy data).
    arm = rng.integers(0, 5, n)
    feats = rng.standard_normal((n, 2)) * [0.3, 0.1]  # (n, 2): radial, tangential noise
    feats[:, 0] += 1.0
    angle = arm * (2 * math.pi / 5) + 0.25 * np.exp(feats[:, 0])
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)  # (n, 2, 2)
    return 2.0 * np.einsum("ni,nij->nj", feats, rot)


DATASETS = {f.__name__: f for f in (two_moons, eight_gaussians, checkerboard, pinwheel)}


def make_data(name: str, n: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(DATASETS[name](n, np.random.default_rng(seed)).astype(np.float32))


def test_seed(name: str) -> int:
    # One fixed test set per dataset, independent of the run's seeds (crc32 is stable, hash() is not).
    return zlib.crc32(name.encode())


# -----------------------------------------------------------------------------
# Model


class AffineCoupling(nn.Module):
    """Keeps coordinate k and maps the other one, u, to u * exp(s) + t with (s, t) = MLP(x_k).

    In 2-D RealNVP's binary mask is just the index k of the kept coordinate. The Jacobian is
    triangular with diagonal (1, exp(s)), so log|det| = s.
    """

    def __init__(self, kept: int, hidden: int, act: type[nn.Module], bound: float):
        super().__init__()
        self.kept, self.moved = kept, 1 - kept
        self.bound = bound
        self.net = nn.Sequential(
            nn.Linear(1, hidden), act(), nn.Linear(hidden, hidden), act(), nn.Linear(hidden, 2)
        )
        # Zero last layer: every coupling starts as the identity, so the flow starts at N(0, I).
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def scale_shift(self, x_kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(x_kept).chunk(2, dim=1)  # (B, 1) each
        return self.bound * torch.tanh(s / self.bound), t  # soft clamp of the log-scale

    def join(self, x_kept: torch.Tensor, x_moved: torch.Tensor) -> torch.Tensor:
        pair = (x_kept, x_moved) if self.kept == 0 else (x_moved, x_kept)
        return torch.cat(pair, dim=1)  # (B, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 2) -> z (B, 2), log|det| (B,)."""
        x_kept, x_moved = x[:, self.kept : self.kept + 1], x[:, self.moved : self.moved + 1]  # (B, 1)
        s, t = self.scale_shift(x_kept)
        return self.join(x_kept, x_moved * torch.exp(s) + t), s.squeeze(1)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        z_kept, z_moved = z[:, self.kept : self.kept + 1], z[:, self.moved : self.moved + 1]
        s, t = self.scale_shift(z_kept)  # the kept coordinate is unchanged, so this is exact
        return self.join(z_kept, (z_moved - t) * torch.exp(-s))


class RealNVP(nn.Module):
    def __init__(self, cfg: Config, permutation: str, seed: int):
        super().__init__()
        act = ACTIVATIONS[cfg.activation]
        alternate = permutation in ("alternate", "rotation")
        self.layers = nn.ModuleList(
            AffineCoupling(i % 2 if alternate else 0, cfg.hidden_dim, act, cfg.log_scale_bound)
            for i in range(cfg.n_layers)
        )
        # "rotation": a fixed random rotation of the plane before each coupling (det = 1, no log-det).
        self.rotate = permutation == "rotation"
        angles = torch.rand(cfg.n_layers, generator=torch.Generator().manual_seed(seed)) * 2 * math.pi
        cos, sin = torch.cos(angles), torch.sin(angles)
        self.register_buffer("rotations", torch.stack([cos, -sin, sin, cos], 1).view(-1, 2, 2))  # (L, 2, 2)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density in nats, x (B, 2) -> (B,)."""
        log_det = torch.zeros(x.shape[0], device=x.device)
        for rot, layer in zip(self.rotations, self.layers, strict=True):
            x, ld = layer(x @ rot.T if self.rotate else x)
            log_det = log_det + ld
        log_base = -0.5 * (x**2).sum(dim=1) - math.log(2 * math.pi)  # standard normal in 2-D
        return log_base + log_det

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, 2, generator=generator).to(self.rotations.device)  # (n, 2)
        for rot, layer in zip(reversed(self.rotations), reversed(self.layers), strict=True):
            z = layer.inverse(z)
            z = z @ rot if self.rotate else z  # rot is orthogonal: its inverse is rot.T
        return z


# -----------------------------------------------------------------------------
# Training and evaluation


@torch.no_grad()
def mean_log_prob(model: RealNVP, x: torch.Tensor, batch: int) -> float:
    return torch.cat([model.log_prob(chunk) for chunk in x.split(batch)]).mean().item()


@torch.no_grad()
def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...] = (0.1, 0.3, 1.0)) -> float:
    """Biased MMD^2 between two point sets with a sum of RBF kernels (0 iff the sets match)."""

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(a, b) ** 2  # (len(a), len(b))
        return sum(torch.exp(-d2 / (2 * h**2)) for h in bandwidths).mean()

    return (k(x, x) + k(y, y) - 2 * k(x, y)).item()


def train(
    model: RealNVP, x_train: torch.Tensor, cfg: Config, gen: torch.Generator, log: Logger, tag: str
) -> float:
    """Maximum likelihood with AdamW and a cosine learning rate; returns the wall time in seconds."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    start = time.perf_counter()
    # Summed loss, read only when logging: no GPU sync per step.
    running = torch.zeros((), device=x_train.device)
    since_log = 0
    for step in range(1, cfg.steps + 1):
        lr = cfg.learning_rate * 0.5 * (1 + math.cos(math.pi * (step - 1) / cfg.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, len(x_train), (cfg.batch_size,), generator=gen).to(x_train.device)
        loss = -model.log_prob(x_train[idx]).mean()  # NLL in nats per point
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        running += loss.detach()
        since_log += 1
        if since_log == cfg.log_interval or step == cfg.steps:
            mean_nll = running.item() / since_log
            if not math.isfinite(mean_nll):
                raise FloatingPointError(f"non-finite loss by step {step} ({tag}); lower --learning_rate")
            log(f"{tag} step={step} train_nll={mean_nll:.4f} lr={lr:.2e}")
            running.zero_()
            since_log = 0
    if x_train.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


@torch.no_grad()
def save_density(
    model: RealNVP, samples: torch.Tensor, x_test: torch.Tensor, cfg: Config, path: Path
) -> None:
    """Log-density on a grid, plus samples and test points, for plot.py."""
    axis = torch.linspace(-cfg.plot_extent, cfg.plot_extent, cfg.grid_size, device=x_test.device)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")  # (G, G) each; row = y, column = x
    grid = torch.stack([gx.flatten(), gy.flatten()], 1)  # (G*G, 2)
    logp = torch.cat([model.log_prob(c) for c in grid.split(cfg.eval_batch)]).view(cfg.grid_size, -1)
    np.savez_compressed(
        path,
        logp=logp.cpu().numpy(),
        extent=cfg.plot_extent,
        samples=samples.cpu().numpy(),
        test=x_test[: len(samples)].cpu().numpy(),
    )


def run_one(
    cfg: Config, dataset: str, seed: int, device: torch.device, log: Logger, density_path: Path | None
) -> dict[str, float]:
    """Train one flow on one dataset with one seed and return its metrics."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)  # minibatches and samples
    x_train = make_data(dataset, cfg.n_train, seed).to(device)  # (N, 2)
    x_test = make_data(dataset, cfg.n_test, test_seed(dataset)).to(device)  # (M, 2)
    model = RealNVP(cfg, PERMUTATION, seed).to(device)
    tag = f"dataset={dataset} seed={seed}"
    train_time = train(model, x_train, cfg, gen, log, tag)

    model.eval()
    samples = model.sample(cfg.n_samples, gen)  # (S, 2)
    metrics = {
        "test_loglik": mean_log_prob(model, x_test, cfg.eval_batch),
        "train_loglik": mean_log_prob(model, x_train, cfg.eval_batch),
        "sample_mmd": mmd(samples, x_test[: cfg.n_samples]),
        "train_time": train_time,
    }
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
        raise FloatingPointError(f"non-finite metrics ({tag}): {bad}")
    log(f"{tag} final " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    if density_path is not None:
        save_density(model, samples, x_test, cfg, density_path)
    return metrics


# -----------------------------------------------------------------------------
# Command line and results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Config()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out_dir", default="run_0")
    p.add_argument("--scale", choices=sorted(SCALES), default="smoke")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated integers")
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, from {list(DATASETS)}")
    p.add_argument("--n_layers", type=int, default=d.n_layers)
    p.add_argument("--learning_rate", type=float, default=d.learning_rate)
    p.add_argument("--batch_size", type=int, default=d.batch_size)
    p.add_argument("--weight_decay", type=float, default=d.weight_decay)
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default=d.activation)
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    """Dataclass defaults, then the scale's budget, then the knob flags (a SCALES entry that
    named a knob would raise here: knobs mean the same at every scale)."""
    return replace(Config(), **SCALES[args.scale], **{k: getattr(args, k) for k in KNOB_FLAGS})


def summarise(per_seed: dict[str, list[float]]) -> dict[str, dict[str, float | list[float]]]:
    def stderr(v: list[float]) -> float:
        return float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0

    return {
        "means": {m: float(np.mean(v)) for m, v in per_seed.items()},
        "stderrs": {m: stderr(v) for m, v in per_seed.items()},
        "per_seed": per_seed,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = build_config(args)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise SystemExit(f"unknown dataset(s) {unknown}; choose from {list(DATASETS)}")
    if PERMUTATION not in PERMUTATIONS:
        raise SystemExit(f"PERMUTATION must be one of {PERMUTATIONS}, not {PERMUTATION!r}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        # The nets are tiny, so each op is overhead: one thread avoids OpenMP's hand-offs,
        # which made a step 10x slower on a busy 2-core machine.
        torch.set_num_threads(1)

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_info = {
        "scale": args.scale,
        "seeds": seeds,
        "datasets": datasets,
        "device": device.type,
        "PERMUTATION": PERMUTATION,
        **asdict(cfg),
    }
    (out_dir / "config.json").write_text(json.dumps(run_info, indent=2))
    with (out_dir / "log.txt").open("w") as log_file:

        def log(line: str) -> None:
            print(line, flush=True)
            log_file.write(line + "\n")
            log_file.flush()

        log(f"config {json.dumps(run_info)}")
        results = {}
        for dataset in datasets:
            per_seed: dict[str, list[float]] = {m: [] for m in METRICS}
            for i, seed in enumerate(seeds):
                density_path = out_dir / f"density_{dataset}.npz" if i == 0 else None
                metrics = run_one(cfg, dataset, seed, device, log, density_path)
                for m in METRICS:
                    per_seed[m].append(metrics[m])
            results[dataset] = summarise(per_seed)
    (out_dir / "final_info.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
