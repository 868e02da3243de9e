"""
Character-level GPT on text every machine already has: the Python standard library.

A small GPT (causal self-attention blocks with learned positional embeddings, as in
nanoGPT's shakespeare_char) learns to predict the next character. We report validation and
training loss in bits per character, and training throughput in tokens (characters) per second.

Smoke (CPU, one call for every smoke seed and dataset, about 35 s on an idle 2-core machine):
    python experiment.py --out_dir run_0 --scale smoke --seeds 0,1 --datasets stdlib,stdlib_docs

Full (one GPU; nanoGPT's shakespeare_char setting: 6 layers, 6 heads, 384 wide, 5000 iters):
    python experiment.py --out_dir run_0 --scale full --seeds 0,1,2 --datasets stdlib,stdlib_docs

Your own text file instead of the built-in corpora (reported under the file's stem):
    python experiment.py --out_dir run_0 --scale smoke --data input.txt

Any field of `Config` can be overridden on the command line, e.g. `--learning_rate 3e-3`.
Outputs in --out_dir: final_info.json (metrics), config.json (every setting and a hash of each
corpus), log.txt (progress), curves.json (loss curves for plot.py).
"""

import argparse
import ast
import hashlib
import json
import math
import os
import platform
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------- constants
# Knobs changed by editing these lines (declared as `constant` knobs in template.toml).
LR_SCHEDULE = 'cosine'  # after warmup: cosine | linear (both decay to min_lr) | constant
ACTIVATION = 'gelu'  # MLP nonlinearity: gelu | relu | silu
TIE_WEIGHTS = True  # share the token embedding with the output head (Press & Wolf, 2017)

BUILTIN_DATASETS = ("stdlib", "stdlib_docs")
EVAL_SEED = 1337  # evaluation batches are the same for every run, seed and eval step


# ----------------------------------------------------------------------------- config
@dataclass
class Config:
    # data
    corpus_chars: int = 1_000_000  # cap on each corpus, in characters
    val_fraction: float = 0.1  # the last 10% of the text is the validation split
    # model
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256  # context length, in characters
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * n_embd
    dropout: float = 0.2
    bias: bool = False  # biases in Linear and LayerNorm layers
    # optimisation (AdamW)
    batch_size: int = 64
    max_iters: int = 5000
    learning_rate: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # the schedule decays to learning_rate * min_lr_ratio
    warmup_iters: int = 100  # linear warmup from 0
    weight_decay: float = 0.1  # on matrices only, not on gains or biases
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    # evaluation
    eval_interval: int = 250  # iterations between loss estimates (for the curves)
    eval_iters: int = 200  # batches per loss estimate
    # system
    device: str = "auto"  # "auto" = cuda when available, else cpu
    dtype: str = "auto"  # "auto" = bfloat16 autocast on cuda (if supported), float32 on cpu
    cpu_threads: int = 1  # torch threads on a CPU; 0 = one per core. Small models gain little from
    # more, and spinning OpenMP threads slow down many times over when other jobs share the cores.


# Per-scale overrides of the defaults above; the defaults are the `full` (GPU) setting.
SCALES: dict[str, dict] = {
    "smoke": dict(  # about 35 s of one CPU core for 2 seeds x 2 datasets
        n_layer=2,
        n_head=4,
        n_embd=64,
        block_size=64,
        batch_size=16,
        max_iters=200,
        warmup_iters=20,
        eval_interval=50,
        eval_iters=8,
    ),
    "full": dict(),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_dir", required=True, help="folder for final_info.json and logs, e.g. run_0")
    p.add_argument("--scale", default="smoke", choices=sorted(SCALES))
    p.add_argument("--seeds", default="0,1,2", help="comma-separated integer seeds")
    p.add_argument(
        "--datasets", default=None, help=f"comma-separated; built-in: {','.join(BUILTIN_DATASETS)}"
    )
    p.add_argument("--data", default=None, help="a UTF-8 text file to train on, named by its stem")
    scaled = {k for overrides in SCALES.values() for k in overrides}
    for f in fields(Config):
        default = getattr(Config, f.name)
        kind = _parse_bool if isinstance(default, bool) else type(default)
        # Settings that differ per scale default to None (= the scale's value); the rest to their own.
        if f.name in scaled:
            per_scale = ", ".join(f"{s}: {SCALES[s].get(f.name, default)}" for s in SCALES)
            p.add_argument(f"--{f.name}", type=kind, default=None, help=f"default per scale ({per_scale})")
        else:
            p.add_argument(f"--{f.name}", type=kind, default=default, help=f"default: {default}")
    return p.parse_args(argv)


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes"):
        return True
    if s.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def make_config(args: argparse.Namespace) -> Config:
    """Defaults, then the scale's overrides, then explicit command-line values."""
    cfg = replace(Config(), **SCALES[args.scale])
    explicit = {f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name) is not None}
    return replace(cfg, **explicit)


# ----------------------------------------------------------------------------- data
def stdlib_modules() -> list[Path]:
    """Public top-level modules of the standard library, sorted by name.

    Private modules (leading underscore) are skipped because they include platform- and
    distribution-specific files (_sysconfigdata_*, _distutils_system_mod), as are
    site/user customisation hooks. The result is the same on any machine with the same Python
    minor version, up to patch-level edits; config.json records the corpus hash either way.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"sitecustomize.py", "usercustomize.py"}
    files = sorted(p for p in root.glob("*.py") if not p.name.startswith("_") and p.name not in skip)
    if not files:
        raise FileNotFoundError(
            f"no standard-library sources under {root}; pass --data PATH to use your own text"
        )
    return files


def build_stdlib(cap: int) -> str:
    """Source code of the standard library's modules, concatenated in name order, first `cap` chars."""
    parts, total = [], 0
    for path in stdlib_modules():
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(f"# file: {path.name}\n{text}\n")
        total += len(parts[-1])
        if total >= cap:
            break
    return "".join(parts)[:cap]


def build_stdlib_docs(cap: int) -> str:
    """The docstrings (module, class, function) of the same modules: English prose, not code."""
    parts, total = [], 0
    for path in stdlib_modules():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    parts.append(doc + "\n\n")
                    total += len(parts[-1])
        if total >= cap:
            break
    return "".join(parts)[:cap]


def load_text(name: str, cfg: Config, user_files: dict[str, Path]) -> tuple[str, str]:
    """The text of one dataset and a short description of where it came from."""
    if name in user_files:
        return user_files[name].read_text(encoding="utf-8", errors="replace"), str(user_files[name])
    if name == "stdlib":
        return build_stdlib(cfg.corpus_chars), "stdlib sources"
    if name == "stdlib_docs":
        return build_stdlib_docs(cfg.corpus_chars), "stdlib docstrings"
    shipped = Path(__file__).resolve().parent / "data" / f"{name}.txt"
    if shipped.is_file():
        return shipped.read_text(encoding="utf-8", errors="replace"), str(shipped)
    raise ValueError(
        f"unknown dataset {name!r}: use one of {', '.join(BUILTIN_DATASETS)}, pass --data PATH, "
        f"or put a text file at data/{name}.txt next to experiment.py"
    )


@dataclass
class Corpus:
    train: torch.Tensor  # (N_train,) int64 character ids
    val: torch.Tensor  # (N_val,)
    vocab_size: int
    info: dict


def make_corpus(name: str, cfg: Config, user_files: dict[str, Path]) -> Corpus:
    text, source = load_text(name, cfg, user_files)
    chars = sorted(set(text))  # the vocabulary spans both splits, as in nanoGPT
    stoi = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n_val = int(len(ids) * cfg.val_fraction)
    if len(ids) - n_val <= cfg.block_size + 1 or n_val <= cfg.block_size + 1:
        raise ValueError(f"dataset {name!r} has {len(ids)} chars: too short for block_size={cfg.block_size}")
    info = {
        "source": source,
        "n_chars": len(text),
        "n_train": len(ids) - n_val,
        "n_val": n_val,
        "vocab_size": len(chars),
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }
    return Corpus(
        train=ids[: len(ids) - n_val], val=ids[len(ids) - n_val :], vocab_size=len(chars), info=info
    )


def get_batch(
    data: torch.Tensor, cfg: Config, gen: torch.Generator, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    starts = torch.randint(len(data) - cfg.block_size - 1, (cfg.batch_size,), generator=gen)  # (B,)
    idx = starts[:, None] + torch.arange(cfg.block_size)  # (B, T)
    x, y = data[idx], data[idx + 1]  # (B, T) inputs and next-character targets
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


# ----------------------------------------------------------------------------- model
class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0, "n_embd must be divisible by n_head"
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (
            t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)
        )  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


class MLP(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        if ACTIVATION not in ACTIVATIONS:
            raise ValueError(f"ACTIVATION={ACTIVATION!r}; choose one of {sorted(ACTIVATIONS)}")
        self.c_fc = nn.Linear(cfg.n_embd, cfg.mlp_ratio * cfg.n_embd, bias=cfg.bias)
        self.act = ACTIVATIONS[ACTIVATION]()
        self.c_proj = nn.Linear(cfg.mlp_ratio * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class GPT(nn.Module):
    def __init__(self, cfg: Config, vocab_size: int):
        super().__init__()
        self.block_size = cfg.block_size
        self.wte = nn.Embedding(vocab_size, cfg.n_embd)  # token embedding
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)  # learned positional embedding
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, vocab_size, bias=False)
        if TIE_WEIGHTS:
            self.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats per character) of predicting `targets` from `idx`."""
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        return F.cross_entropy(logits.view(B * T, -1).float(), targets.view(B * T))


def make_optimizer(model: GPT, cfg: Config, device: str) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]  # matrices and embeddings
    no_decay = [p for p in model.parameters() if p.dim() < 2]  # LayerNorm gains, biases
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), fused=device.startswith("cuda")
    )


def lr_at(it: int, cfg: Config) -> float:
    """Linear warmup, then LR_SCHEDULE from learning_rate down to learning_rate * min_lr_ratio."""
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    min_lr = cfg.learning_rate * cfg.min_lr_ratio
    progress = (it - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters)  # 0 -> 1
    if LR_SCHEDULE == "cosine":
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.learning_rate - min_lr)
    if LR_SCHEDULE == "linear":
        return cfg.learning_rate - progress * (cfg.learning_rate - min_lr)
    if LR_SCHEDULE == "constant":
        return cfg.learning_rate
    raise ValueError(f"LR_SCHEDULE={LR_SCHEDULE!r}; choose cosine, linear or constant")


# ----------------------------------------------------------------------------- training
BITS_PER_NAT = 1.0 / math.log(2.0)


class Logger:
    def __init__(self, path: Path):
        self.file = path.open("a")

    def __call__(self, msg: str) -> None:
        print(msg, flush=True)
        self.file.write(msg + "\n")
        self.file.flush()


def resolve_device(cfg: Config) -> tuple[str, torch.dtype | None]:
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    if cfg.dtype == "auto":
        use_bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
        return device, torch.bfloat16 if use_bf16 else None
    return device, {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.dtype]


def autocast(device: str, amp: torch.dtype | None) -> torch.autocast:
    """Mixed precision when `amp` is set (bfloat16 on GPUs), plain float32 otherwise."""
    return torch.autocast(
        device_type=device.split(":")[0], dtype=amp or torch.float32, enabled=amp is not None
    )


@torch.no_grad()
def estimate_loss(model: GPT, data: torch.Tensor, cfg: Config, device: str, amp: torch.dtype | None) -> float:
    """Mean loss in bits per character over `eval_iters` fixed batches (the same for every run)."""
    model.eval()
    gen = torch.Generator().manual_seed(EVAL_SEED)
    total = 0.0
    for _ in range(cfg.eval_iters):
        x, y = get_batch(data, cfg, gen, device)
        with autocast(device, amp):
            total += model(x, y).item()
    model.train()
    return total / cfg.eval_iters * BITS_PER_NAT


def train_one(
    corpus: Corpus, seed: int, cfg: Config, device: str, amp: torch.dtype | None, log: Logger
) -> dict:
    """Train one model from scratch; return final metrics and the loss curve."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)  # training batches
    model = GPT(cfg, corpus.vocab_size).to(device)
    opt = make_optimizer(model, cfg, device)
    curve: dict[str, list[float]] = {"iter": [], "train_loss": [], "val_loss": [], "lr": []}
    train_time = 0.0
    for it in range(cfg.max_iters + 1):
        if it % cfg.eval_interval == 0 or it == cfg.max_iters:
            train_loss = estimate_loss(model, corpus.train, cfg, device, amp)
            val_loss = estimate_loss(model, corpus.val, cfg, device, amp)
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                raise FloatingPointError(
                    f"training diverged: loss is {val_loss} at iter {it} "
                    f"(learning_rate={cfg.learning_rate}); try a lower --learning_rate"
                )
            for key, value in zip(curve, (it, train_loss, val_loss, lr_at(it, cfg)), strict=True):
                curve[key].append(value)
            log(
                f"  iter {it:5d}  train {train_loss:.4f}  val {val_loss:.4f} bits/char  ({train_time:.1f}s train)"
            )
        if it == cfg.max_iters:
            break
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(it, cfg)
        x, y = get_batch(corpus.train, cfg, gen, device)  # (B, T), (B, T)
        with autocast(device, amp):
            loss = model(x, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training diverged: loss is {loss.item()} at iter {it} "
                f"(learning_rate={cfg.learning_rate}); try a lower --learning_rate"
            )
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        train_time += time.perf_counter() - t0
    tokens = cfg.max_iters * cfg.batch_size * cfg.block_size
    return {
        "metrics": {
            "val_loss": curve["val_loss"][-1],
            "train_loss": curve["train_loss"][-1],
            "tokens_per_s": tokens / max(train_time, 1e-9),
        },
        "curve": curve,
        "n_params": model.num_params(),
    }


def summarize(per_seed: dict[str, list[float]]) -> dict:
    """means, stderrs (sample std / sqrt(n); 0 for one seed) and per_seed values of each metric."""
    out: dict[str, dict] = {"means": {}, "stderrs": {}, "per_seed": per_seed}
    for metric, values in per_seed.items():
        arr = np.asarray(values, dtype=float)
        out["means"][metric] = float(arr.mean())
        out["stderrs"][metric] = float(arr.std(ddof=1) / math.sqrt(len(arr))) if len(arr) > 1 else 0.0
    return out


def write_json(path: Path, obj: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)  # atomic: readers never see half a file


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = make_config(args)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    user_files = {Path(args.data).stem: Path(args.data)} if args.data else {}
    if args.datasets:
        datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    else:
        datasets = list(user_files) or list(BUILTIN_DATASETS)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = Logger(out_dir / "log.txt")
    device, amp = resolve_device(cfg)
    if cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    corpora = {name: make_corpus(name, cfg, user_files) for name in datasets}
    run_config = {  # flat, as nanoGPT saves its config: every setting, then what the run used
        **asdict(cfg),
        "LR_SCHEDULE": LR_SCHEDULE,
        "ACTIVATION": ACTIVATION,
        "TIE_WEIGHTS": TIE_WEIGHTS,
        "scale": args.scale,
        "seeds": seeds,
        "datasets": datasets,
        "corpora": {name: c.info for name, c in corpora.items()},
        "device": device,
        "amp_dtype": str(amp) if amp else "float32",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "argv": sys.argv,
    }
    write_json(out_dir / "config.json", run_config)
    log(f"scale={args.scale} device={device} seeds={seeds} datasets={datasets}")

    final_info, curves = {}, {}
    for name, corpus in corpora.items():
        per_seed: dict[str, list[float]] = {"val_loss": [], "train_loss": [], "tokens_per_s": []}
        curves[name] = {}
        for seed in seeds:
            log(f"dataset={name} seed={seed} vocab={corpus.vocab_size} chars={corpus.info['n_chars']}")
            result = train_one(corpus, seed, cfg, device, amp, log)
            for metric, value in result["metrics"].items():
                per_seed[metric].append(value)
            curves[name][str(seed)] = result["curve"]
            m = result["metrics"]
            log(
                f"dataset={name} seed={seed} params={result['n_params']} val_loss={m['val_loss']:.4f} "
                f"train_loss={m['train_loss']:.4f} tokens_per_s={m['tokens_per_s']:.0f}"
            )
        final_info[name] = summarize(per_seed)
    write_json(out_dir / "curves.json", curves)
    write_json(out_dir / "final_info.json", final_info)
    log(f"wrote {out_dir / 'final_info.json'}")


if __name__ == "__main__":
    main()
