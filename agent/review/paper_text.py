"""A paper file read for review: .pdf, .tex, .txt or .md.

A user's PDF is hostile input, so its parser never runs here: `pdf_script.py` (pdfplumber)
runs in the sandbox on a copy of the PDF in a scratch folder, and writes the words of each
page, with font sizes, weights and boxes, plus each figure as a PNG. This process reads that
JSON with a size cap and a depth bound, validates it with pydantic, and finds the structure
(`agent.review.pdf_layout`): sections in reading order, without running headers, footers
or footnotes.

Why pdfplumber and not `pdftotext`, measured by `bench/pdf_reading.py` on the PDF test set
(the 3 papers of `pdf_layouts.TEST_PAPERS`, each in the 3 layouts: 9 PDFs, 156 sections), as
the offline reviewer sees the text (its own heading finder on each reader's output):

| reader              | sections found, in order | PDFs with header/footer/footnote text in the body | PDFs with a present section reported missing |
|---------------------|--------------------------|------------------|------------------|
| pdftotext           | 80 / 156 (51%); ICLR-like layout 4 / 52 | 9 / 9 | 4 / 9 |
| pdfplumber + layout | 156 / 156 (100%)         | 0 / 9            | 0 / 9            |

pdftotext splits small caps (`I NTRODUCTION`), puts section numbers on lines of their own and
keeps running headers and footnotes in the text; its plain text has no font sizes to tell
them apart by. PyMuPDF would serve as well but is AGPL-licensed; pdfplumber (MIT) over
pdfminer.six and pypdfium2 is not.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import tempfile
from pathlib import Path

from pydantic import ValidationError

from agent import safe_json
from agent.errors import ToolMissing, UserError
from agent.models import PaperFigure
from agent.review.pdf_layout import Extraction, Paper, figure_captions, structure
from agent.sandbox import files
from agent.sandbox import runner as sandbox
from agent.sandbox.limits import Limits

SUPPORTED = (".pdf", ".tex", ".txt", ".md")
SCRIPT = (Path(__file__).with_name("pdf_script.py")).read_text()
MAX_JSON_BYTES = 48 * 2**20
MAX_PNG_BYTES = 4 * 2**20
LIMITS = Limits(timeout_s=180, memory_mb=3072, disk_mb=256, max_procs=16, file_size_mb=64, gpus=False)


def read_paper(path: Path) -> Paper:
    """The paper in `path`: structured from a PDF's layout, or a .tex/.txt/.md file's own text
    (the reviewers read LaTeX and Markdown headings themselves)."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise UserError(
            f"{path}: unsupported file type {suffix or '(none)'}; give one of {', '.join(SUPPORTED)}"
        )
    if suffix == ".pdf":
        paper = read_pdf(path)
        if not (paper.title or paper.front.strip() or paper.sections):
            raise UserError(f"{path}: no text found (a scanned PDF without a text layer?)")
        return paper
    return Paper(source=_text(path))


def paper_text(path: Path) -> str:
    """The text both reviewers read: a PDF's structure as Markdown, other files as they are."""
    return read_paper(path).text()


def _text(path: Path) -> str:
    text = path.read_text(errors="replace")
    if not text.strip():
        raise UserError(f"{path}: no text found")
    return text


def read_pdf(pdf: Path) -> Paper:
    """Run the extraction script on a copy of `pdf` in the sandbox and structure its output."""
    if importlib.util.find_spec("pdfplumber") is None:
        raise ToolMissing("pdfplumber is not installed; install it with `pip install pdfplumber` (or `make setup`)")
    with tempfile.TemporaryDirectory(prefix="ai-scientist-pdf-") as tmp:
        work = Path(tmp)
        shutil.copyfile(pdf, work / "paper.pdf")
        (work / "figures").mkdir()
        cmd = [sandbox.python_executable(), "-I", "-c", SCRIPT, "paper.pdf", "words.json", "figures"]
        res = sandbox.run(cmd, work, LIMITS, log_name="pdf")
        if not res.ok:
            reason = res.message or _last_line(res.error_tail(3)) or "the PDF reader failed"
            raise UserError(f"{pdf}: could not read the PDF: {reason}")
        ex = _extraction(work, pdf)
        paper = structure(ex)
        paper.figures = _figures(work, ex)
        return paper


def _last_line(tail: str) -> str:
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def _extraction(work: Path, pdf: Path) -> Extraction:
    try:
        raw = files.read_bytes(work, "words.json", limit=MAX_JSON_BYTES)
        return Extraction.model_validate(safe_json.loads(raw, max_bytes=MAX_JSON_BYTES, what="words.json"))
    except (OSError, ValueError, files.UnsafeFile, ValidationError) as e:
        raise UserError(
            f"{pdf}: the PDF reader's output was refused: {str(e).splitlines()[0][:200]}"
        ) from None


def _figures(work: Path, ex: Extraction) -> list[PaperFigure]:
    """The PNGs the script rendered, each with its caption."""
    captions = figure_captions(ex)
    out = []
    for number, page in enumerate(ex.pages, 1):
        for *_box, name in page.figures:
            if not re.fullmatch(r"p\d+-\d+\.png", name):
                continue
            try:
                png = files.read_bytes(work, f"figures/{name}", limit=MAX_PNG_BYTES)
            except (OSError, files.UnsafeFile):
                continue
            if png.startswith(b"\x89PNG\r\n\x1a\n"):
                out.append(PaperFigure(page=number, png=png, caption=captions.get(name, "")))
    return out
