"""
A denoising diffusion probabilistic model (DDPM, Ho et al. 2020) on 2-D point clouds.

An MLP with sinusoidal embeddings of the coordinates and of the timestep learns to predict
the noise added to points of a 2-D dataset; ancestral sampling then draws new points, which
are compared with held-out data. Data is generated in code, nothing is downloaded.

Smoke (2 CPU cores, about 40 s):
    python experiment.py --out_dir run_0 --scale smoke --seeds 0,1,2 --datasets circle,moons

Full (one GPU, the AI-Scientist 2d_diffusion settings: 10k steps, batch 256, width 256):
    python experiment.py --out_dir run_0 --scale full --seeds 0,1,2 \
        --datasets circle,moons,line,spiral,gaussians

Outputs in --out_dir: final_info.json (metrics per dataset), config.json (every
hyperparameter), log.txt (progress), curves.json (training loss per dataset and seed) and
samples.npz (generated points of the first seed, per dataset).
"""

import argparse
import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# -----------------------------------------------------------------------------
# Design choices changed by editing code (declared as `constant` knobs in template.toml).
BETA_SCHEDULE = "linear"  # linear | quadratic | cosine: how the noise variance grows over t
INPUT_EMBEDDING = "sinusoidal"  # sinusoidal | identity: how the 2-D coordinates enter the MLP


@dataclass
class Config:
    # knobs: the same defaults at every scale (template.toml declares them as flags)
    learning_rate: float = 3e-4  # AdamW peak learning rate, cosine-annealed to 0
    num_timesteps: int = 100  # diffusion steps T
    hidden_layers: int = 3  # residual blocks in the denoiser
    ema_decay: float = 0.995  # per-step EMA of the weights used for eval and sampling; 0 = off
    input_scale: float = 25.0  # frequency scale of the sinusoidal coordinate embedding
    # size and budget: set per scale in SCALES
    hidden_size: int = 256  # width of the residual MLP
    embedding_dim: int = 128  # size of each sinusoidal embedding (x, y and t)
    num_train_steps: int = 10_000
    train_batch_size: int = 256
    n_train: int = 100_000  # training points per dataset
    n_eval: int = 5_000  # held-out points, and generated samples, per dataset and seed
    beta_start: float = 1e-4  # linear/quadratic schedule endpoints
    beta_end: float = 0.02
    grad_clip: float = 0.5
    log_every: int = 100  # steps between logged training-loss points
    threads: int = 0  # torch CPU threads; 0 = torch's default


# Per-scale overrides of the sizes above. Knobs are never overridden here, so that a knob's
# default means the same thing at every scale.
SCALES = {
    # one thread: these small matmuls run faster on one core than split over two (measured)
    "smoke": dict(hidden_size=128, embedding_dim=64, num_train_steps=1200, n_train=20_000,
                  n_eval=2_000, threads=1),
    "full": dict(),
}
DATASETS = ("circle", "moons", "line", "spiral", "gaussians")
DATA_SEED = 1234  # data is the same in every run; --seeds vary init, batches and sampling

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


# -----------------------------------------------------------------------------
# data: each generator returns (n, 2) float32 points, roughly within [-2, 2]^2

def make_points(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if name == "circle":  # a thin ring
        theta = rng.uniform(0, 2 * np.pi, n)
        r = 1.5 + 0.03 * rng.standard_normal(n)
        x = np.stack([r * np.cos(theta), r * np.sin(theta)], 1)
    elif name == "moons":  # two interleaved half circles
        theta = rng.uniform(0, np.pi, n)
        upper = rng.random(n) < 0.5
        x = np.where(upper[:, None],
                     np.stack([np.cos(theta), np.sin(theta)], 1),
                     np.stack([1 - np.cos(theta), 0.5 - np.sin(theta)], 1))
        x = (x - [0.5, 0.25]) * 1.5 + 0.03 * rng.standard_normal((n, 2))
    elif name == "line":  # a diagonal segment: a 1-D manifold
        t = rng.uniform(-1.5, 1.5, n)
        x = np.stack([t, 0.5 * t], 1) + 0.02 * rng.standard_normal((n, 2))
    elif name == "spiral":  # one arm of an Archimedean spiral
        t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi + 0.5
        x = np.stack([t * np.cos(t), t * np.sin(t)], 1) / 5 + 0.03 * rng.standard_normal((n, 2))
    elif name == "gaussians":  # eight Gaussians on a circle
        k = rng.integers(0, 8, n)
        centers = 1.5 * np.stack([np.cos(k * np.pi / 4), np.sin(k * np.pi / 4)], 1)
        x = centers + 0.1 * rng.standard_normal((n, 2))
    else:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return x.astype(np.float32)


# -----------------------------------------------------------------------------
# model

class SinusoidalEmbedding(nn.Module):
    """Maps a scalar per row to `dim` sines and cosines of geometrically spaced frequencies."""

    def __init__(self, dim: int, scale: float = 1.0):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half) / max(half - 1, 1))
        self.register_buffer("freqs", freqs)  # (dim/2,)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B,)
        args = (x.float() * self.scale)[:, None] * self.freqs[None, :]  # (B, dim/2)
        return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)  # (B, dim)


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.ff = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ff(F.relu(x))


class MLPDenoiser(nn.Module):
    """Predicts the noise in x_t from (x_t, t)."""

    def __init__(self, cfg: Config):
        super().__init__()
        e = cfg.embedding_dim
        self.time_emb = SinusoidalEmbedding(e)
        if INPUT_EMBEDDING == "sinusoidal":
            # high-frequency features let a small MLP represent thin, sharp structures
            self.x_emb = SinusoidalEmbedding(e, scale=cfg.input_scale)
            in_dim = 3 * e
        elif INPUT_EMBEDDING == "identity":
            self.x_emb = None
            in_dim = 2 + e
        else:
            raise ValueError(f"unknown INPUT_EMBEDDING {INPUT_EMBEDDING!r}; use sinusoidal or identity")
        self.net = nn.Sequential(
            nn.Linear(in_dim, cfg.hidden_size),
            *[ResidualBlock(cfg.hidden_size) for _ in range(cfg.hidden_layers)],
            nn.ReLU(),
            nn.Linear(cfg.hidden_size, 2),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # x: (B, 2), t: (B,)
        if self.x_emb is None:
            xe = x  # (B, 2)
        else:
            xe = torch.cat([self.x_emb(x[:, 0]), self.x_emb(x[:, 1])], dim=-1)  # (B, 2E)
        h = torch.cat([xe, self.time_emb(t)], dim=-1)  # (B, in_dim)
        return self.net(h)  # (B, 2)


# -----------------------------------------------------------------------------
# diffusion

def make_betas(cfg: Config) -> torch.Tensor:
    T = cfg.num_timesteps
    if BETA_SCHEDULE == "linear":
        betas = torch.linspace(cfg.beta_start, cfg.beta_end, T)
    elif BETA_SCHEDULE == "quadratic":
        betas = torch.linspace(cfg.beta_start ** 0.5, cfg.beta_end ** 0.5, T) ** 2
    elif BETA_SCHEDULE == "cosine":  # Nichol & Dhariwal 2021
        s = 0.008
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        alpha_bar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999).float()
    else:
        raise ValueError(f"unknown BETA_SCHEDULE {BETA_SCHEDULE!r}; use linear, quadratic or cosine")
    return betas.to(device)


class NoiseScheduler:
    """The forward process q(x_t | x_0) and one reverse step of ancestral sampling."""

    def __init__(self, cfg: Config):
        self.T = cfg.num_timesteps
        self.betas = make_betas(cfg)  # (T,)
        self.alphas = 1.0 - self.betas
        self.alpha_bar = torch.cumprod(self.alphas, 0)
        self.alpha_bar_prev = F.pad(self.alpha_bar[:-1], (1, 0), value=1.0)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bar[t][:, None]  # (B, 1)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        ab, ab_prev, beta = self.alpha_bar[t], self.alpha_bar_prev[t], self.betas[t]
        x0 = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
        mean = (beta * ab_prev.sqrt() * x0 + (1 - ab_prev) * self.alphas[t].sqrt() * x_t) / (1 - ab)
        if t == 0:
            return mean
        var = (beta * (1 - ab_prev) / (1 - ab)).clamp(min=1e-20)
        z = torch.randn(x_t.shape, generator=gen, device=device)
        return mean + var.sqrt() * z


@torch.no_grad()
def sample(model: nn.Module, sched: NoiseScheduler, n: int, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn((n, 2), generator=gen, device=device)  # (N, 2), x_T
    for t in reversed(range(sched.T)):
        tt = torch.full((n,), t, device=device, dtype=torch.long)
        x = sched.step(model(x, tt), t, x, gen)
    return x  # (N, 2), x_0


# -----------------------------------------------------------------------------
# metrics

@torch.no_grad()
def eval_loss(model: nn.Module, sched: NoiseScheduler, x0: torch.Tensor) -> float:
    """Noise-prediction MSE on held-out points, with noise and t fixed across runs."""
    gen = torch.Generator(device=device).manual_seed(DATA_SEED)
    t = torch.randint(0, sched.T, (len(x0),), generator=gen, device=device)
    noise = torch.randn(x0.shape, generator=gen, device=device)
    return F.mse_loss(model(sched.add_noise(x0, noise, t), t), noise).item()


def mmd_rbf(x: torch.Tensor, y: torch.Tensor, bandwidths=(0.05, 0.1, 0.2, 0.5, 1.0)) -> float:
    """Unbiased squared MMD with a sum of RBF kernels; about 0 when x and y match."""
    def k(a, b):
        d2 = torch.cdist(a, b).pow(2)  # (N, M)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)
    n, m = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return (sxx + syy - 2 * kxy.mean()).item()


def knn_kl(p: torch.Tensor, q: torch.Tensor, k: int = 5) -> float:
    """k-NN estimate of KL(p || q) from samples (Wang, Kulkarni & Verdu 2009), in nats."""
    n, m, d = len(p), len(q), p.shape[1]
    rho = torch.cdist(p, p).topk(k + 1, largest=False).values[:, k]  # (N,) skip self at 0
    nu = torch.cdist(p, q).topk(k, largest=False).values[:, k - 1]  # (N,)
    ratio = nu.clamp(min=1e-12) / rho.clamp(min=1e-12)
    return (d * ratio.log().mean() + math.log(m / (n - 1))).item()


# -----------------------------------------------------------------------------
# one training run

def train_one(cfg: Config, dataset: str, seed: int, log) -> tuple[dict, list, np.ndarray]:
    rng = np.random.default_rng(DATA_SEED + DATASETS.index(dataset))
    train = torch.from_numpy(make_points(dataset, cfg.n_train, rng)).to(device)  # (n_train, 2)
    held_out = torch.from_numpy(make_points(dataset, cfg.n_eval, rng)).to(device)  # (n_eval, 2)

    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = MLPDenoiser(cfg).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    sched = NoiseScheduler(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.num_train_steps)

    curve, running, t0 = [], torch.zeros((), device=device), time.time()
    for step in range(cfg.num_train_steps):
        idx = torch.randint(0, len(train), (cfg.train_batch_size,), generator=gen, device=device)
        x0 = train[idx]  # (B, 2)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        t = torch.randint(0, sched.T, (len(x0),), generator=gen, device=device)  # (B,)
        loss = F.mse_loss(model(sched.add_noise(x0, noise, t), t), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        lr_sched.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1 - cfg.ema_decay)
        running += loss.detach()  # summed on the device: no per-step sync
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.num_train_steps:
            mean_loss = running.item() / ((step % cfg.log_every) + 1)
            running.zero_()
            curve.append((step + 1, mean_loss))
            log(f"{dataset} seed={seed} step={step + 1} loss={mean_loss:.4f}")
    train_time = time.time() - t0

    ema.eval()
    t0 = time.time()
    samples = sample(ema, sched, cfg.n_eval, gen)  # (n_eval, 2)
    if device.type == "cuda":
        torch.cuda.synchronize()  # kernels run asynchronously: wait before reading the clock
    inference_time = time.time() - t0
    metrics = {
        "mmd": mmd_rbf(samples, held_out),
        "kl_divergence": knn_kl(held_out, samples),
        "eval_loss": eval_loss(ema, sched, held_out),
        "train_time": train_time,
        "inference_time": inference_time,
    }
    log(f"{dataset} seed={seed} " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return metrics, curve, samples.cpu().numpy()


def summarize(per_seed: dict[str, list[float]]) -> dict:
    """means, stderrs (sample std / sqrt(n)) and per_seed values of each metric."""
    means = {k: float(np.mean(v)) for k, v in per_seed.items()}
    stderrs = {k: float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
               for k, v in per_seed.items()}
    return {"means": means, "stderrs": stderrs, "per_seed": per_seed}


KNOB_FLAGS = ("learning_rate", "num_timesteps", "hidden_layers", "ema_decay", "input_scale")


def parse_args() -> tuple[Config, str, list[int], list[str]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_dir", default="run_0")
    p.add_argument("--scale", default="smoke", choices=sorted(SCALES))
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, from {DATASETS}")
    defaults = Config()
    for name in KNOB_FLAGS:
        value = getattr(defaults, name)
        p.add_argument(f"--{name}", type=type(value), default=value)
    a = p.parse_args()
    cfg = Config(**{**asdict(defaults), **SCALES[a.scale], **{k: getattr(a, k) for k in KNOB_FLAGS}})
    datasets = [d for d in a.datasets.split(",") if d]
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        p.error(f"unknown datasets {unknown}; known: {', '.join(DATASETS)}")
    return cfg, a.out_dir, [int(s) for s in a.seeds.split(",") if s], datasets


def main() -> None:
    cfg, out_dir, seeds, datasets = parse_args()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    os.makedirs(out_dir, exist_ok=True)
    config = {**asdict(cfg), "BETA_SCHEDULE": BETA_SCHEDULE, "INPUT_EMBEDDING": INPUT_EMBEDDING,
              "seeds": seeds, "datasets": datasets, "device": str(device)}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    log_file = open(os.path.join(out_dir, "log.txt"), "w")

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    final_info, curves, samples = {}, {}, {}
    for ds in datasets:
        per_seed: dict[str, list[float]] = {}
        for seed in seeds:
            metrics, curve, pts = train_one(cfg, ds, seed, log)
            for k, v in metrics.items():
                per_seed.setdefault(k, []).append(float(v))
            curves.setdefault(ds, {})[str(seed)] = curve
            if seed == seeds[0]:
                samples[ds] = pts
        final_info[ds] = summarize(per_seed)

    with open(os.path.join(out_dir, "curves.json"), "w") as f:
        json.dump(curves, f)
    np.savez_compressed(os.path.join(out_dir, "samples.npz"), **samples)
    with open(os.path.join(out_dir, "final_info.json"), "w") as f:
        json.dump(final_info, f, indent=2)
    log_file.close()


if __name__ == "__main__":
    main()
