"""
Grokking: a small transformer learns a binary operation from part of its table.

Each example is the token sequence `a o b =` and the target is `c = a o b`: addition,
subtraction or division modulo a prime p, or composition in the permutation group S_k.
The model sees a fraction of all (a, b) pairs; validation accuracy on the other pairs
often rises long after training accuracy saturated (Power et al. 2022). The data is the
whole operation table, built in code.

Smoke (2 CPU cores, about 45 s; p = 47, S_4, width 64, 1200 steps):
    python experiment.py --out_dir run_0 --scale smoke --seeds 0,1 --datasets x_plus_y,x_minus_y

Full (one GPU, the AI-Scientist grokking settings: p = 97, S_5, width 128, 7500 steps, batch 512):
    python experiment.py --out_dir run_0 --scale full --seeds 0,1,2 \
        --datasets x_plus_y,x_minus_y,x_div_y,permutation

Outputs in --out_dir: final_info.json (metrics per dataset), config.json (every
hyperparameter), log.txt (progress) and curves.json (step, train acc, val acc, train loss,
val loss at every evaluation, per dataset and seed). mean_val_acc is the validation accuracy
averaged over all evaluations. A run that never reaches 99% validation accuracy reports
step_val_acc_99 = num_train_steps (and likewise step_train_acc_99).
"""

import argparse
import itertools
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
OPTIMIZER = "adamw"  # adamw | adam: decoupled weight decay, or weight decay as an L2 term in Adam
INIT_SCALE = 1.0  # multiplies the 0.02 std of every initial weight matrix (cf. Liu et al. 2023, Omnigrok)


@dataclass
class Config:
    # knobs: the same defaults at every scale (template.toml declares them as flags)
    learning_rate: float = 1e-3  # peak learning rate after linear warmup
    weight_decay: float = 0.5
    train_fraction: float = 0.5  # share of all (a, b) pairs used for training
    num_layers: int = 2  # transformer blocks
    dropout: float = 0.0
    # size and budget: set per scale in SCALES
    prime: int = 97  # modulus of the x_plus_y, x_minus_y and x_div_y tables
    perm_k: int = 5  # permutation dataset: composition in S_k
    dim_model: int = 128
    num_heads: int = 4
    batch_size: int = 512
    num_train_steps: int = 7_500
    warmup_steps: int = 50
    eval_every: int = 10  # steps between evaluations on the full train and val sets
    threads: int = 0  # torch CPU threads; 0 = torch's default


# Per-scale overrides of the sizes above. Knobs are never overridden here, so that a knob's
# default means the same thing at every scale.
SCALES = {
    # one thread: these small matmuls run faster on one core than split over two (measured)
    "smoke": dict(prime=47, perm_k=4, dim_model=64, batch_size=64, num_train_steps=1_200, eval_every=50,
                  threads=1),
    "full": dict(),
}
DATASETS = ("x_plus_y", "x_minus_y", "x_div_y", "permutation")
SPLIT_SEED = 1234  # the train/val split is the same in every run; --seeds vary init and batches

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


# -----------------------------------------------------------------------------
# data: the whole table of the operation, as token ids

def operation_table(name: str, cfg: Config) -> tuple[torch.Tensor, torch.Tensor, int]:
    """All equations `a o b = c` as inputs (N, 4) and targets (N,), and the element count."""
    if name == "permutation":
        perms = list(itertools.permutations(range(cfg.perm_k)))
        index = {q: i for i, q in enumerate(perms)}
        pairs = [(i, j, index[tuple(a[b[k]] for k in range(cfg.perm_k))])
                 for i, a in enumerate(perms) for j, b in enumerate(perms)]
        n = len(perms)
    else:
        p = cfg.prime
        ops = {
            "x_plus_y": (range(p), lambda a, b: (a + b) % p),
            "x_minus_y": (range(p), lambda a, b: (a - b) % p),
            "x_div_y": (range(1, p), lambda a, b: a * pow(b, p - 2, p) % p),  # Fermat inverse
        }
        if name not in ops:
            raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
        bs, op = ops[name]
        pairs = [(a, b, op(a, b)) for a in range(p) for b in bs]
        n = p
    t = torch.tensor(pairs)  # (N, 3)
    op_tok, eq_tok = n, n + 1  # element ids are 0..n-1
    x = torch.stack([t[:, 0], torch.full_like(t[:, 0], op_tok), t[:, 1],
                     torch.full_like(t[:, 0], eq_tok)], dim=1)  # (N, 4)
    return x, t[:, 2], n


def split(x: torch.Tensor, y: torch.Tensor, fraction: float):
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_train = max(1, min(len(x) - 1, int(len(x) * fraction)))
    tr, va = perm[:n_train], perm[n_train:]
    return (x[tr].to(device), y[tr].to(device)), (x[va].to(device), y[va].to(device))


# -----------------------------------------------------------------------------
# model: a nanoGPT-style decoder (pre-norm), reading the answer off the last position

class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.n_head = cfg.num_heads
        self.qkv = nn.Linear(cfg.dim_model, 3 * cfg.dim_model)
        self.proj = nn.Linear(cfg.dim_model, cfg.dim_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (z.view(B, T, self.n_head, hs).transpose(1, 2) for z in (q, k, v))  # (B, H, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, hs)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        d = cfg.dim_model
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = CausalSelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.drop(self.mlp(self.ln2(x)))


class Transformer(nn.Module):
    def __init__(self, cfg: Config, n_elements: int, seq_len: int = 4):
        super().__init__()
        self.tok = nn.Embedding(n_elements + 2, cfg.dim_model)  # elements, then `o` and `=`
        self.pos = nn.Embedding(seq_len, cfg.dim_model)
        self.blocks = nn.Sequential(*[Block(cfg) for _ in range(cfg.num_layers)])
        self.ln_f = nn.LayerNorm(cfg.dim_model)
        self.head = nn.Linear(cfg.dim_model, n_elements)
        for name, w in self.named_parameters():  # nanoGPT's init, times INIT_SCALE
            if name.endswith("weight") and w.dim() == 2:  # embeddings and linear maps
                nn.init.normal_(w, mean=0.0, std=0.02 * INIT_SCALE)
            elif name.endswith("bias"):
                nn.init.zeros_(w)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # idx: (B, T)
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))  # (B, T, C)
        x = self.ln_f(self.blocks(x))  # (B, T, C)
        return self.head(x[:, -1])  # (B, n_elements): logits for the answer


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    if OPTIMIZER == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.98),
                                 weight_decay=cfg.weight_decay)
    if OPTIMIZER == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.98),
                                weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown OPTIMIZER {OPTIMIZER!r}; use adamw or adam")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 8192) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) over a whole split."""
    model.eval()
    correct, loss = 0.0, 0.0
    for i in range(0, len(x), chunk):
        logits = model(x[i:i + chunk])  # (b, n_elements)
        correct += (logits.argmax(-1) == y[i:i + chunk]).sum().item()
        loss += F.cross_entropy(logits, y[i:i + chunk], reduction="sum").item()
    model.train()
    return correct / len(x), loss / len(x)


# -----------------------------------------------------------------------------
# one training run

def train_one(cfg: Config, dataset: str, seed: int, log) -> tuple[dict, list]:
    x, y, n = operation_table(dataset, cfg)
    (x_tr, y_tr), (x_va, y_va) = split(x, y, cfg.train_fraction)

    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = Transformer(cfg, n).to(device)
    opt = make_optimizer(model, cfg)
    warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / cfg.warmup_steps, 1.0))

    curve, steps = [], cfg.num_train_steps
    step_train_99 = step_val_99 = steps  # "never reached" is reported as the full budget
    t0 = time.time()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(x_tr), (cfg.batch_size,), generator=gen, device=device)
        loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])  # logits (B, n_elements)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        warmup.step()
        if step % cfg.eval_every == 0 or step == steps:
            tr_acc, tr_loss = evaluate(model, x_tr, y_tr)
            va_acc, va_loss = evaluate(model, x_va, y_va)
            curve.append((step, tr_acc, va_acc, tr_loss, va_loss))
            if tr_acc >= 0.99 and step_train_99 == steps:
                step_train_99 = step
            if va_acc >= 0.99 and step_val_99 == steps:
                step_val_99 = step
            if step % (10 * cfg.eval_every) == 0 or step == steps:
                log(f"{dataset} seed={seed} step={step} train_acc={tr_acc:.3f} val_acc={va_acc:.3f} "
                    f"train_loss={tr_loss:.4f} val_loss={va_loss:.4f}")
    _, tr_acc, va_acc, tr_loss, va_loss = curve[-1]
    metrics = {
        "mean_val_acc": float(np.mean([c[2] for c in curve])),  # area under the val-acc curve / steps
        "final_train_acc": tr_acc,
        "final_val_acc": va_acc,
        "final_train_loss": tr_loss,
        "final_val_loss": va_loss,
        "step_train_acc_99": step_train_99,
        "step_val_acc_99": step_val_99,
        "train_time": time.time() - t0,
    }
    log(f"{dataset} seed={seed} " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return metrics, curve


def summarize(per_seed: dict[str, list[float]]) -> dict:
    """means, stderrs (sample std / sqrt(n)) and per_seed values of each metric."""
    means = {k: float(np.mean(v)) for k, v in per_seed.items()}
    stderrs = {k: float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
               for k, v in per_seed.items()}
    return {"means": means, "stderrs": stderrs, "per_seed": per_seed}


KNOB_FLAGS = ("learning_rate", "weight_decay", "train_fraction", "num_layers", "dropout")


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
    if not 0 < cfg.train_fraction < 1:
        p.error("--train_fraction must be strictly between 0 and 1")
    return cfg, a.out_dir, [int(s) for s in a.seeds.split(",") if s], datasets


def main() -> None:
    cfg, out_dir, seeds, datasets = parse_args()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    os.makedirs(out_dir, exist_ok=True)
    config = {**asdict(cfg), "OPTIMIZER": OPTIMIZER, "INIT_SCALE": INIT_SCALE,
              "seeds": seeds, "datasets": datasets, "device": str(device)}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    log_file = open(os.path.join(out_dir, "log.txt"), "w")

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    final_info, curves = {}, {}
    for ds in datasets:
        per_seed: dict[str, list[float]] = {}
        for seed in seeds:
            metrics, curve = train_one(cfg, ds, seed, log)
            for k, v in metrics.items():
                per_seed.setdefault(k, []).append(float(v))
            curves.setdefault(ds, {})[str(seed)] = curve
        final_info[ds] = summarize(per_seed)

    with open(os.path.join(out_dir, "curves.json"), "w") as f:
        json.dump(curves, f)
    with open(os.path.join(out_dir, "final_info.json"), "w") as f:
        json.dump(final_info, f, indent=2)
    log_file.close()


if __name__ == "__main__":
    main()
