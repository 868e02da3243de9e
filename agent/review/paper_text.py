"""The text of a paper file to review: .pdf, .tex, .txt or .md. A user's PDF is untrusted
input, so `pdftotext` runs in the sandbox, on a copy in a scratch folder."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from agent.errors import ToolMissing, UserError
from agent.sandbox import files
from agent.sandbox import runner as sandbox
from agent.sandbox.limits import Limits

SUPPORTED = (".pdf", ".tex", ".txt", ".md")


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
    limits = Limits(timeout_s=120, memory_mb=2048, disk_mb=256, max_procs=8, file_size_mb=128)
    with tempfile.TemporaryDirectory(prefix="ai-scientist-pdf-") as tmp:
        work = Path(tmp)
        shutil.copyfile(pdf, work / "paper.pdf")
        res = sandbox.run(["pdftotext", "-enc", "UTF-8", "paper.pdf", "paper.txt"], work, limits)
        if not res.ok or not files.is_file(work, "paper.txt"):
            raise UserError(f"{pdf}: could not extract text: {res.error_tail(3).strip() or 'pdftotext failed'}")
        return files.read_text(work, "paper.txt", limit=files.JSON_LIMIT)
