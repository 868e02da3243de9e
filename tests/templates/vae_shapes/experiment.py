"""A small VAE on 8x8 binary images drawn in code.

Smoke (CPU, seconds):  python experiment.py --out_dir run_0 --scale smoke --seeds 0,1 --datasets shapes,strokes
Full:                  python experiment.py --out_dir run_0 --scale full

Writes, in --out_dir: final_info.json (metrics per dataset), config.json (every setting, knobs
included), log.txt (a progress line every LOG_EVERY steps) and samples.npz (images decoded
from prior samples, first seed, for plot.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

PRIOR = "gaussian"  # "gaussian": N(0, I); "mog": a fixed mixture of four unit Gaussians
LOG_EVERY = 50  # steps between progress lines in log.txt
SIDE = 8  # images are SIDE x SIDE pixels
N_STRIP = 8  # decoded prior samples kept for plot.py


@dataclass
class Config:
    beta: float = 1.0  # weight of the KL term
    latent_dim: int = 8  # latent dimensions
    kl_warmup: int = 0  # steps of linear KL warm-up (0: none)
    learning_rate: float = 3e-3  # Adam step size
    hidden: int = 64  # width of the encoder and decoder MLPs
    steps: int = 300  # optimisation steps
    batch_size: int = 64
    n_train: int = 512  # training images per dataset
    n_test: int = 256  # test images per dataset


SCALES = {
    "smoke": {},
    "full": {"steps": 5000, "batch_size": 128, "n_train": 8192, "n_test": 2048},
}


# ---------------------------------------------------------------- data


def draw_shapes(rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((SIDE, SIDE))
    if rng.random() < 0.5:  # a filled rectangle
        x0, y0 = rng.integers(0, SIDE - 2, size=2)
        w, h = rng.integers(2, SIDE - max(x0, y0) + 1, size=2)
        img[y0 : y0 + h, x0 : x0 + w] = 1
    else:  # a filled disc
        cx, cy = rng.uniform(2, SIDE - 2, size=2)
        r = rng.uniform(1.2, 3.0)
        yy, xx = np.mgrid[:SIDE, :SIDE]
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = 1
    return img


def draw_strokes(rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((SIDE, SIDE))
    i = rng.integers(SIDE)
    kind = rng.integers(3)
    if kind == 0:
        img[i, :] = 1
    elif kind == 1:
        img[:, i] = 1
    else:
        np.fill_diagonal(img if rng.random() < 0.5 else np.fliplr(img), 1)
    return img


def draw_checkers(rng: np.random.Generator) -> np.ndarray:
    cell = rng.integers(1, 4)
    dx, dy = rng.integers(0, cell + 1, size=2)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    return (((xx + dx) // cell + (yy + dy) // cell) % 2).astype(float)


DATASETS = {"shapes": draw_shapes, "strokes": draw_strokes, "checkers": draw_checkers}


def images(name: str, n: int, split: int) -> torch.Tensor:
    """(n, SIDE*SIDE) binary images, the same in every run (seeded by dataset and split only)."""
    rng = np.random.default_rng([sorted(DATASETS).index(name), split])
    return torch.tensor(np.stack([DATASETS[name](rng).ravel() for _ in range(n)]), dtype=torch.float32)


# ---------------------------------------------------------------- model


def mixture_means(latent_dim: int) -> torch.Tensor:
    """(4, latent_dim): the mixture prior's component means, at +-2 on the first two axes."""
    means = torch.zeros(4, latent_dim)
    for k, (axis, sign) in enumerate([(0, 1), (0, -1), (1, 1), (1, -1)]):
        means[k, axis % latent_dim] = 2.0 * sign
    return means


class VAE(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        d = SIDE * SIDE
        self.encoder = nn.Sequential(
            nn.Linear(d, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 2 * cfg.latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, d)
        )
        self.register_buffer("means", mixture_means(cfg.latent_dim))

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """(B,) log p(z)."""
        norm = -0.5 * z.shape[1] * math.log(2 * math.pi)
        if PRIOR == "gaussian":
            return norm - 0.5 * (z**2).sum(1)
        comp = norm - 0.5 * ((z[:, None, :] - self.means) ** 2).sum(2)  # (B, 4)
        return torch.logsumexp(comp, 1) - math.log(len(self.means))

    def losses(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) reconstruction cross-entropy and KL(q(z|x) || p(z)), nats per image."""
        mu, log_var = self.encoder(x).chunk(2, dim=1)  # (B, L) each
        std = (0.5 * log_var).exp()
        z = mu + std * torch.randn_like(std)
        logits = self.decoder(z)  # (B, SIDE*SIDE)
        recon = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
        if PRIOR == "gaussian":
            kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(1)
        else:  # one-sample estimate: log q(z|x) - log p(z)
            log_q = (-0.5 * ((z - mu) / std) ** 2 - 0.5 * log_var - 0.5 * math.log(2 * math.pi)).sum(1)
            kl = log_q - self.log_prior(z)
        return recon, kl

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """(n, SIDE*SIDE) pixel probabilities decoded from prior samples."""
        z = torch.randn(n, self.means.shape[1], generator=gen)
        if PRIOR == "mog":
            z = z + self.means[torch.randint(len(self.means), (n,), generator=gen)]
        return torch.sigmoid(self.decoder(z))


def train(cfg: Config, dataset: str, seed: int, log) -> tuple[dict[str, float], np.ndarray]:
    torch.manual_seed(seed)
    train_x, test_x = images(dataset, cfg.n_train, 0), images(dataset, cfg.n_test, 1)
    model = VAE(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    gen = torch.Generator().manual_seed(seed)
    started = time.time()
    for step in range(1, cfg.steps + 1):
        batch = train_x[torch.randint(cfg.n_train, (cfg.batch_size,), generator=gen)]
        weight = cfg.beta * (min(1.0, step / cfg.kl_warmup) if cfg.kl_warmup else 1.0)
        recon, kl = model.losses(batch)
        loss = (recon + weight * kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % LOG_EVERY == 0 or step == cfg.steps:
            log.write(
                f"dataset={dataset} seed={seed} step={step} loss={loss.item():.4f} "
                f"recon={recon.mean().item():.4f} kl={kl.mean().item():.4f}\n"
            )
            log.flush()
    train_time = time.time() - started
    with torch.no_grad():
        recon, kl = model.losses(test_x)
        strip = model.sample(N_STRIP, gen).numpy().reshape(N_STRIP, SIDE, SIDE)
    metrics = {
        "recon": recon.mean().item(),
        "kl": kl.mean().item(),
        "neg_elbo": (recon + kl).mean().item(),
        "train_time": train_time,
    }
    return metrics, strip


def summarize(per_seed: dict[str, list[float]]) -> dict:
    n = len(next(iter(per_seed.values())))
    means = {m: sum(v) / n for m, v in per_seed.items()}
    sd = {
        m: math.sqrt(sum((x - means[m]) ** 2 for x in v) / (n - 1)) if n > 1 else 0.0
        for m, v in per_seed.items()
    }
    return {"means": means, "stderrs": {m: s / math.sqrt(n) for m, s in sd.items()}, "per_seed": per_seed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out_dir", default="run_0")
    p.add_argument("--scale", default="smoke", choices=SCALES)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--datasets", default=",".join(DATASETS))
    defaults = Config()
    p.add_argument("--beta", type=float, default=defaults.beta)
    p.add_argument("--latent_dim", type=int, default=defaults.latent_dim)
    p.add_argument("--kl_warmup", type=int, default=defaults.kl_warmup)
    p.add_argument("--learning_rate", type=float, default=defaults.learning_rate)
    a = p.parse_args()
    knobs = {k: getattr(a, k) for k in ("beta", "latent_dim", "kl_warmup", "learning_rate")}
    cfg = Config(**{**asdict(defaults), **SCALES[a.scale], **knobs})
    torch.set_num_threads(1)  # a tiny model: one thread is faster than two
    seeds = [int(s) for s in a.seeds.split(",")]
    names = a.datasets.split(",")
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(
            {**asdict(cfg), "PRIOR": PRIOR, "scale": a.scale, "seeds": seeds, "datasets": names}, f, indent=2
        )
    results, strips = {}, {}
    with open(os.path.join(a.out_dir, "log.txt"), "w") as log:
        for name in names:
            runs = [train(cfg, name, s, log) for s in seeds]
            results[name] = summarize({m: [r[0][m] for r in runs] for m in runs[0][0]})
            strips[name] = runs[0][1]
    np.savez_compressed(os.path.join(a.out_dir, "samples.npz"), **strips)
    with open(os.path.join(a.out_dir, "final_info.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
