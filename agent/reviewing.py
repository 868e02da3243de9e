"""Reviewing a paper: read its text, ask an ensemble of reviewers, combine them.

`review_paper` makes `reviewers` independent `brain.review` calls (in parallel for an LLM
brain, whose calls wait on the network) and one `brain.meta_review`, which writes the
meta-review and reflects on it. A user's PDF is untrusted input, so `pdftotext` runs in
the sandbox.
"""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel

from agent import sandbox
from agent.brain import Brain, Review
from agent.errors import ToolMissing, UserError

SUPPORTED = (".pdf", ".tex", ".txt", ".md")


class ReviewOutcome(BaseModel):
    """The ensemble's reviews and the meta-review that decides."""

    reviews: list[Review]
    meta: Review


def paper_text(path: Path) -> str:
    """The text of a paper file: .pdf (via sandboxed pdftotext), .tex, .txt or .md."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise UserError(f"{path}: unsupported file type {suffix or '(none)'}; give one of {', '.join(SUPPORTED)}")
    text = pdf_text(path) if suffix == ".pdf" else path.read_text(errors="replace")
    if not text.strip():
        raise UserError(f"{path}: no text found" + (" (a scanned PDF without a text layer?)" if suffix == ".pdf" else ""))
    return text


def pdf_text(pdf: Path) -> str:
    """`pdftotext` on a copy of `pdf` in a scratch folder, inside the sandbox."""
    if shutil.which("pdftotext") is None:
        raise ToolMissing("pdftotext is not installed; install it with `sudo apt-get install poppler-utils`")
    limits = sandbox.Limits(timeout_s=120, memory_mb=2048, disk_mb=256, max_procs=8, file_size_mb=128)
    with tempfile.TemporaryDirectory(prefix="ai-scientist-pdf-") as tmp:
        work = Path(tmp)
        shutil.copyfile(pdf, work / "paper.pdf")
        res = sandbox.run(["pdftotext", "-enc", "UTF-8", "paper.pdf", "paper.txt"], work, limits)
        out = work / "paper.txt"
        if not res.ok or not out.is_file():
            raise UserError(f"{pdf}: could not extract text: {res.error_tail(3).strip() or 'pdftotext failed'}")
        return out.read_text(errors="replace")


def review_paper(brain: Brain, text: str, reviewers: int = 3) -> ReviewOutcome:
    """`reviewers` reviews of `text` and their meta-review (with a reflection round)."""
    if reviewers < 1:
        raise UserError(f"--reviewers must be at least 1, got {reviewers}")
    if brain.info.kind == "llm" and reviewers > 1:
        with ThreadPoolExecutor(max_workers=reviewers) as pool:
            reviews = list(pool.map(lambda _: brain.review(text), range(reviewers)))
    else:
        reviews = [brain.review(text) for _ in range(reviewers)]
    return ReviewOutcome(reviews=reviews, meta=brain.meta_review(reviews))
