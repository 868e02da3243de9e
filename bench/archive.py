"""Time to list and to render the archive's index with 1,000 papers (aim: under 1 s each).

    .venv/bin/python bench/archive.py [--papers 1000] [--rounds 3] [--keep DIR]

Fills a fresh archive through the real `Archive.add` (tiny files, every write fsync'd,
no index render per paper), then times, best of `--rounds`:
  - list:   `Archive(root).list()`, all papers ranked by score, from a cold Archive object;
  - render: `Archive.render_html()`, index.html + last-night.html (paper pages exist already).
Also prints the fill rate, a full re-render of every paper page, and `ai-scientist archive
list --json` end to end (Python start-up and imports included) for reference.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.archive.store import Archive, PaperEntry

AIM_S = 1.0
TEMPLATES = ("2d_diffusion", "nanogpt", "grokking")
REVIEW_KEYS = (
    "originality",
    "quality",
    "clarity",
    "significance",
    "soundness",
    "presentation",
    "contribution",
)


def png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0\0\0\0"))
        + chunk(b"IEND", b"")
    )


def paper_dir(tmp: Path) -> Path:
    """One tiny paper (a stub PDF, a TeX file, a 1x1 PNG) shared by every synthetic entry."""
    folder = tmp / "paper"
    folder.mkdir()
    (folder / "paper.pdf").write_bytes(
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )
    (folder / "paper.tex").write_text("\\documentclass{article}\\begin{document}x\\end{document}\n")
    (folder / "loss.png").write_bytes(png_1x1())
    return folder


def entry(i: int, rng: random.Random, paper: Path) -> PaperEntry:
    overall = rng.randint(1, 10)
    decision = "Accept" if overall >= 6 else "Reject"
    review = {k: rng.randint(1, 4) for k in REVIEW_KEYS}
    review |= {
        "summary": f"Synthetic review {i}.",
        "strengths": ["s"],
        "weaknesses": ["w"],
        "questions": [],
        "limitations": [],
        "ethical_concerns": False,
        "overall": overall,
        "confidence": 3,
        "decision": decision,
    }
    name = f"idea_{i:05d}"
    return PaperEntry(
        run_id=f"bench-run-{i // 20:03d}",
        template=TEMPLATES[i % len(TEMPLATES)],
        scale="smoke",
        idea={
            "name": name,
            "title": f"Synthetic idea {i}",
            "hypothesis": "h",
            "experiment": "e",
            "interestingness": 5,
            "feasibility": 5,
            "novelty": 5,
            "knobs": ["lr"],
        },
        title=f"Synthetic paper {i}: does knob {i % 17} matter?",
        review={"meta": review, "reviews": [review], "faithfulness": {"ok": True}},
        overall=overall,
        decision=decision,
        brain="offline",
        model="offline",
        cost={"cost_usd": 0.0, "calls": 0},
        timings={"experiment": 30.0, "writeup": 5.0},
        faithful=True,
        paper_dir=paper,
        results={"run_0": {}},
        notes="notes",
        code_diff="--- a/experiment.py\n+++ b/experiment.py\n@@ -1 +1 @@\n-LR = 1e-3\n+LR = 3e-3\n",
        bundle_path=None,
    )


def best_of(rounds: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="build the archive here and keep it")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp_name:
        tmp = Path(tmp_name)
        root = args.keep or tmp / "archive"
        paper = paper_dir(tmp)
        rng = random.Random(0)
        t0 = datetime(2025, 1, 1, tzinfo=UTC)
        arch = Archive(root)
        started = time.perf_counter()
        for i in range(args.papers):
            arch.add(entry(i, rng, paper), render=False, created_at=t0 + timedelta(minutes=7 * i))
        fill = time.perf_counter() - started

        rows: list = []
        t_list = best_of(args.rounds, lambda: rows.__setitem__(slice(None), Archive(root).list()))
        assert len(rows) == args.papers, f"listed {len(rows)} of {args.papers} papers"
        t_render = best_of(args.rounds, arch.render_html)
        t_pages = best_of(1, lambda: arch.render_html(all_pages=True))
        size_kb = (root / "index.html").stat().st_size / 1024
        cli = [sys.executable, "-m", "agent.cli", "archive", "--archive", str(root), "list", "--json"]
        t_cli = best_of(args.rounds, lambda: subprocess.run(cli, check=True, capture_output=True))

    n = args.papers
    if args.json:
        print(json.dumps({"papers": n, "list_s": round(t_list, 4), "render_s": round(t_render, 4)}))
        return
    print(
        f"fill: {n} papers through Archive.add in {fill:.1f} s ({fill / n * 1e3:.1f} ms per paper, fsync'd)"
    )
    print(f"list   {n} papers: {t_list:.3f} s  (ratio to the {AIM_S:.0f} s aim: {t_list / AIM_S:.3f})")
    print(
        f"render index.html + last-night.html: {t_render:.3f} s  (ratio to the {AIM_S:.0f} s aim: "
        f"{t_render / AIM_S:.3f}); index.html is {size_kb:.0f} KiB"
    )
    print(f"re-render every paper page too (archive render): {t_pages:.2f} s")
    print(f"`ai-scientist archive list --json` end to end (start-up and imports included): {t_cli:.2f} s")


if __name__ == "__main__":
    main()
