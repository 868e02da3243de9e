"""Reading real conference PDFs for review: a test set the tests typeset themselves.

Three review-bench papers (human scores 8/10 accepted, 7/10 accepted, 4/10 rejected) are
typeset in three layouts with real latexmk: ICLR-like (small-caps headings, running header),
NeurIPS-like (single column, a notice at the foot of page one) and two-column (letter-spaced
headings, an author footnote, a running footer). Each PDF is read back through the sandboxed
reader; every section must come back in order, with no header, footer or footnote text in
the body, and the offline review must list no section the paper has as missing.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import NamedTuple

import matplotlib.pyplot as plt  # headless: matplotlib picks its Agg backend
import pytest
from rich.console import Console

from agent.analysis import analyze
from agent.brains import make_brain
from agent.brains.llm.ledger import Ledger
from agent.brains.offline import reviewer
from agent.brains.offline.brain import OfflineBrain
from agent.errors import UserError
from agent.models import IdeationContext, PaperContext
from agent.paper import latex
from agent.review import bench as rb
from agent.review import paper_text as reader
from agent.review import pdf_layouts as layouts
from agent.review.bench import default_data_dir
from agent.review.ensemble import review_paper
from agent.review.pdf_layout import Extraction, join_broken, structure
from agent.template.contract import list_templates, load_template
from tests.helpers import cli
from tests.test_offline_brain import PARTS, fake_results, paper, plan_all

BENCH = default_data_dir()
pytestmark = pytest.mark.slow  # real LaTeX builds of the test set: in `make test`, not `make check`
needs_bench = pytest.mark.skipif(
    not BENCH.is_dir(), reason="needs ../shared/review_bench (the calibration data)"
)
TEST_SET = list(zip(layouts.LAYOUTS, layouts.TEST_PAPERS, strict=True))  # one paper in each layout
AXIS_LABEL = "qzxaxislabel"  # text inside a vector figure, which must stay out of the body
CAPTIONS = ("Loss of the raster figure over training.", "The same curve drawn as vector graphics.")
LEAKS = (layouts.RUNNING_HEADER, layouts.RUNNING_FOOTER, layouts.NOTICE, layouts.FOOTNOTE, layouts.THANKS)


def norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def figures(folder: Path) -> list[tuple[str, str]]:
    """A raster (PNG) and a vector (PDF, with text inside) figure, as matplotlib writes them."""
    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.plot([0, 1, 2, 3], [3, 1, 2, 0.5])
    ax.set_xlabel(AXIS_LABEL)
    fig.savefig(folder / "curve.png", dpi=80, bbox_inches="tight")
    fig.savefig(folder / "curve_vector.pdf", bbox_inches="tight")
    plt.close(fig)
    return list(zip(("curve.png", "curve_vector.pdf"), CAPTIONS, strict=True))


class Built(NamedTuple):
    doc: layouts.Typeset  # what was typeset
    read: reader.Paper  # what was read back from the PDF
    source: str  # the review-bench text
    pdf: Path


@pytest.fixture(scope="module")
def test_set(tmp_path_factory) -> dict[str, Built]:
    out = {}
    for layout, pid in TEST_SET:
        folder = tmp_path_factory.mktemp(layout)
        text = (BENCH / "papers" / f"{pid}.txt").read_text(errors="replace")
        doc = layouts.write(text, layout, folder, figures(folder))
        built = latex.compile_pdf(folder)
        assert built.ok, built.problems
        out[layout] = Built(doc, reader.read_paper(built.pdf), text, built.pdf)
    return out


@needs_bench
@pytest.mark.parametrize("layout", layouts.LAYOUTS)
def test_every_section_is_found_in_order_with_no_running_text_in_the_body(test_set, layout):
    doc, read, _, _ = test_set[layout]
    assert [norm(s.heading) for s in read.sections] == [norm(f"{h.number} {h.title}") for h in doc.headings]
    assert [s.level for s in read.sections] == [h.level for h in doc.headings]
    assert norm(read.title) == norm(doc.title)
    body = "\n".join(s.text for s in read.sections)
    for leak in LEAKS:
        assert leak[:25] not in body, (layout, leak)
    assert any(layouts.FOOTNOTE[:25] in note for note in read.footnotes)  # found, and kept apart
    assert AXIS_LABEL not in body and AXIS_LABEL not in read.markdown()


@needs_bench
@pytest.mark.parametrize("layout", layouts.LAYOUTS)
def test_words_come_back_whole_hyphenation_and_ligatures_undone(test_set, layout):
    """Nearly every word read from the PDF is a word of the source text: no `experi-`/`ments`
    halves left by hyphenation, no `ﬁ` ligatures, no `I NTRODUCTION`."""
    _, read, source, _ = test_set[layout]
    vocab = {w.lower() for w in re.findall(r"[A-Za-z]{3,}", source + " ".join(CAPTIONS))}
    words = [w.lower() for s in read.sections for w in re.findall(r"[A-Za-z]{3,}", s.text)]
    unknown = [w for w in words if w not in vocab]
    assert len(unknown) <= 0.005 * len(words), unknown[:20]
    assert not re.search("[\ufb00-\ufb06]", read.markdown())


@needs_bench
@pytest.mark.parametrize("layout", layouts.LAYOUTS)
def test_figures_come_back_as_pngs_with_their_captions(test_set, layout):
    read = test_set[layout].read
    assert len(read.figures) == 2
    for fig, caption in zip(
        read.figures, ("Figure 1: Loss of the raster", "Figure 2: The same curve"), strict=True
    ):
        assert fig.png.startswith(b"\x89PNG") and len(fig.png) > 1000
        assert fig.caption.startswith(caption)


def present_kinds(doc: layouts.Typeset) -> set[str]:
    """Core sections the typeset paper has, by its own headings."""
    return {k for h in doc.headings for k in reviewer.heading_kinds(h.title)} | {"abstract"}


@needs_bench
@pytest.mark.parametrize("layout", layouts.LAYOUTS)
def test_the_offline_review_lists_no_present_section_as_missing(test_set, layout):
    doc, read, _, _ = test_set[layout]
    review = reviewer.review(read.text())
    assert review.summary.startswith(reviewer.SCOPE + "\n")
    assert reviewer.NOT_JUDGED in review.summary
    missing = set(reviewer.missing_sections(reviewer.extract(read.text())))
    assert not missing & present_kinds(doc), missing


def test_template_papers_are_read_with_every_section(tmp_path):
    """Issue 14: the offline reviewer reads our own papers correctly. Each shipped template's
    skeleton, written by the offline brain, compiled, read from the PDF: no section missing."""
    for name in list_templates():
        tpl = load_template(name)
        brain = OfflineBrain(seed=1)
        idea = brain.ideas(IdeationContext(template=tpl, archive=[], seed_ideas=[], num_ideas=1))[0]
        work = tmp_path / name
        shutil.copytree(tpl.path, work, ignore=shutil.ignore_patterns("run_*", "__pycache__"))
        rng = random.Random(0)

        def results(name, planned, tpl=tpl, rng=rng):
            return fake_results(tpl, rng, 0.0 if planned is None else 0.2)

        baseline, runs = plan_all(brain, tpl, idea, work, 3, results)
        ctx = PaperContext(
            idea=idea,
            template=tpl,
            scale="smoke",
            baseline=baseline,
            runs=runs,
            bib_keys=[],
            analysis=analyze(tpl, baseline, runs, scale="smoke").model_dump(),
        )
        figure = f"{tpl.primary.name}.png"
        ctx.figures = brain.describe_figures(ctx, [figure])
        sections = {p: brain.write_section(ctx, p, {}) for p in PARTS}
        folder = tmp_path / f"{name}-paper"
        folder.mkdir()
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([1, 2, 3])
        fig.savefig(folder / figure, dpi=60)
        plt.close(fig)
        tex = paper(tpl, sections)
        (folder / "paper.tex").write_text(tex)
        shutil.copy(tpl.path / "latex" / "references.bib", folder / "references.bib")
        built = latex.compile_pdf(folder)
        assert built.pdf is not None, (name, built.problems)
        read = reader.read_paper(built.pdf)
        headings = re.findall(r"\\section\{([^}]*)\}", tex)
        assert [s.title for s in read.sections if s.number] == headings, name
        kinds = {k for h in headings for k in reviewer.heading_kinds(h)} | {"abstract"}
        missing = set(reviewer.missing_sections(reviewer.extract(read.text())))
        assert not missing & kinds, (name, missing)


# ---------------------------------------------------------------- the CLI


@needs_bench
def test_cli_review_of_a_pdf_opens_with_what_the_rubric_judges(test_set):
    doc, pdf = test_set["iclr"].doc, test_set["iclr"].pdf
    human = cli("review", str(pdf), "--reviewers", "1")
    assert human.returncode == 0, human.stderr[-2000:]
    assert human.stdout.splitlines()[0].strip() == reviewer.SCOPE[: len(human.stdout.splitlines()[0].strip())]
    assert "Missing or unrecognised sections: abstract" not in human.stdout
    out = cli("review", str(pdf), "--reviewers", "1", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert data["scope"] == reviewer.SCOPE and data["meta"]["summary"].startswith(reviewer.SCOPE)
    assert [norm(s) for s in data["sections"]] == [norm(f"{h.number} {h.title}") for h in doc.headings]


@needs_bench
def test_the_llm_reviewer_reads_the_structure_and_is_handed_the_figures(test_set, tmp_path):
    """The real `openai` client against a loopback server: the review prompt holds the PDF's
    sections as Markdown headings, no running header, and each figure's page and caption."""
    from tests.llm_server import LoopbackLLM, review_shaped
    from tests.test_reviewing import make_review

    doc, read, _, _ = test_set["twocol"]
    brain_text = read.text()
    with LoopbackLLM(default=lambda stage, req: review_shaped(stage, make_review(5))) as srv:
        brain = make_brain("test-model", srv.url, ledger=Ledger(tmp_path / "usage.jsonl"))
        review_paper(brain, read, reviewers=1)
        prompt = srv.for_stage("review")[0].user
    assert all(f"## {s.heading}" in brain_text for s in read.sections)
    assert f"## {doc.headings[1].number} {doc.headings[1].title}" in prompt
    assert layouts.RUNNING_FOOTER not in prompt
    for fig in read.figures:
        assert f"- page {fig.page}: {fig.caption}" in prompt


@needs_bench
def test_cli_review_bench_as_pdf_reports_the_plain_text_figure_beside(tmp_path):
    out = cli("review-bench", "--data", str(BENCH), "--limit", "3", "--as-pdf", "--json", "--resamples", "50")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["as_pdf"] and report["n"] == 3 and report["failed"] == 0
    assert set(report["text_metrics"]) == set(report["metrics"])
    console = Console(record=True, width=160)
    console.print(rb.render(rb.BenchReport.model_validate(report)))
    shown = console.export_text()
    assert "Plain text" in shown and "Ours (PDF)" in shown and "read back from the PDF" in shown


# ---------------------------------------------------------------- hostile output of the reader


def test_the_readers_output_is_refused_when_malformed(tmp_path):
    """What the sandboxed script leaves is hostile: too deep, too large, wrong shape, a link."""
    cases = {
        "deep": "[" * 100_000 + "]" * 100_000,
        "shape": json.dumps({"pages": [{"width": 612, "height": 792, "words": [["x"]]}]}),
        "many": json.dumps({"pages": [{"width": 1, "height": 1, "words": []}] * 201}),
        "notjson": "not json",
    }
    for name, text in cases.items():
        work = tmp_path / name
        work.mkdir()
        (work / "words.json").write_text(text)
        with pytest.raises(UserError, match="output was refused"):
            reader._extraction(work, Path("p.pdf"))
    link = tmp_path / "link"
    link.mkdir()
    (tmp_path / "secret.json").write_text(json.dumps({"pages": []}))
    (link / "words.json").symlink_to(tmp_path / "secret.json")
    with pytest.raises(UserError, match="output was refused"):
        reader._extraction(link, Path("p.pdf"))


def test_a_pdf_the_reader_cannot_parse_is_one_clear_error(tmp_path):
    (tmp_path / "broken.pdf").write_bytes(
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF"
    )
    with pytest.raises(UserError, match="broken.pdf"):
        reader.read_paper(tmp_path / "broken.pdf")


# ---------------------------------------------------------------- the layout rules, on small cases


def test_hyphenation_is_undone_unless_the_document_keeps_the_hyphen():
    assert join_broken("we ran the experi-", "ments twice", set()) == "we ran the experiments twice"
    assert join_broken("a state-of-the-", "art model", {"state-of-the-art"}) == "a state-of-the-art model"
    assert join_broken("ends with a dash -", "Next", set()) == "ends with a dash - Next"


def word(
    x0: float, top: float, text: str, size: float = 10.0, bold: bool = False, width: float | None = None
):
    return [x0, top, x0 + (width or 5.0 * len(text)), top + size, size, bold, text]


def test_letter_spacing_numbers_and_columns_on_a_synthetic_page():
    """A two-column page: a spanning title, a letter-spaced heading in the left column, a
    number on its own line above a heading in the right column, lines at the same height,
    line numbers in the margin."""
    words = [word(150, 50, "A", 16), word(170, 50, "Title", 16, width=200)]
    words += [word(60, 100, "1", bold=True, width=5)]
    words += [word(75 + 8 * i, 100, c, bold=True, width=5) for i, c in enumerate("METHOD")]
    for row in range(30):
        top = 120 + 12 * row
        words += [word(60, top, f"left{row}", width=100), word(170, top, "text", width=100)]
        words += [word(320, top, f"right{row}", width=100), word(430, top, "text", width=100)]
        words += [word(30, top, f"{row + 7:03d}", 7, width=12)]  # a submission's line numbers
    words += [word(320, 500, "2", 12, bold=True, width=6), word(320, 516, "Results", 12, bold=True, width=60)]
    words += [word(320, 540, "closing", width=100)]
    page = {"width": 612, "height": 792, "words": words}
    paper = structure(Extraction.model_validate({"pages": [page]}))
    assert [s.heading for s in paper.sections] == ["1 METHOD", "2 Results"]
    text = paper.sections[0].text
    assert text.index("left29") < text.index("right0")  # the left column is read first
    assert paper.sections[1].text == "closing"
    assert not re.search(r"\b0\d\d\b", text)
