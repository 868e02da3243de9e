"""Seconds per `experiment.py` call of each template, in the sandbox, at smoke scale (and at
full scale where a GPU is present, or with --full).

    .venv/bin/python bench/templates.py [--full] [--templates a,b] [--json]

Each call is exactly what the pipeline runs for a baseline: all seeds and datasets of the
scale profile, in a fresh copy of the template. The aim at smoke scale is about 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.sandbox.executors import LocalExecutor  # noqa: E402
from agent.template.contract import list_templates, load_template  # noqa: E402
from agent.template.run import experiment_cmd, limits_for  # noqa: E402

SMOKE_AIM_S = 60.0


def gpu_present() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def time_call(name: str, scale: str) -> dict:
    """One sandboxed experiment.py call; seconds, and whether it succeeded."""
    tpl = load_template(name)
    prof = tpl.profile(scale)
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        work = Path(tmp) / name
        shutil.copytree(tpl.path, work, ignore=shutil.ignore_patterns("__pycache__", "run_*"))
        started = time.perf_counter()
        result = LocalExecutor().run(experiment_cmd(tpl, scale, "run_0"), work, limits_for(tpl, scale),
                                     cpus=prof.cpus, gpus=prof.gpus, log_name="run_0")
        seconds = time.perf_counter() - started
    return {"template": name, "scale": scale, "seconds": round(seconds, 1), "ok": result.ok,
            "seeds": len(tpl.seeds_for(scale)), "datasets": len(tpl.datasets_for(scale)),
            "error": "" if result.ok else result.error_tail(3)}


def measure(templates: list[str], full: bool) -> list[dict]:
    rows = [time_call(t, "smoke") for t in templates]
    if full:
        rows += [time_call(t, "full") for t in templates]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="also time the full scale (default: only with a GPU)")
    p.add_argument("--templates", default="", help="comma-separated (default: all)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    names = [t for t in args.templates.split(",") if t] or list_templates()
    rows = measure(names, args.full or gpu_present())
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'template':14} {'scale':6} {'seeds×datasets':>15} {'seconds':>8}  vs {SMOKE_AIM_S:.0f} s aim")
    for r in rows:
        ratio = f"{r['seconds'] / SMOKE_AIM_S:.2f}" if r["scale"] == "smoke" else "-"
        status = "" if r["ok"] else f"  FAILED: {r['error']}"
        print(f"{r['template']:14} {r['scale']:6} {r['seeds']:>7}×{r['datasets']:<7} {r['seconds']:>8.1f}  {ratio}{status}")
    if not (args.full or gpu_present()):
        print("full scale: not timed (no GPU here; pass --full to time it on the CPU anyway)")


if __name__ == "__main__":
    main()
