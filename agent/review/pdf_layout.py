"""From the words of a PDF's pages (boxes, font sizes, weights) to a paper's structure: its
title, its sections with their headings in reading order, its footnotes and figures.

What it handles, and how:

- **columns**: a page is two-column when a vertical gutter near its middle is crossed by
  almost no word; lines that cross it (a title, a wide figure's caption) span the page, and
  between two spanning lines the left column is read before the right one;
- **running headers and footers**: the first and last two lines of a page whose text, digits
  aside, repeats on at least 40% of the pages, and lone page numbers there; a submission's
  line numbers in the margins;
- **footnotes**: the lines below a footnote rule (a short rule at a column's left edge) that
  are set smaller than the body; raised footnote marks are dropped by the extraction script;
- **headings**: short lines set larger than the body, or bold, or in capitals, that carry a
  section number or a section name; a number on a line of its own joins the heading after it,
  and a heading that wraps joins its next line;
- **letter-spaced and small-caps headings**: small caps come out whole from pdfplumber's word
  grouping (`A BSTRACT` is pdftotext's doing); letter-spaced runs of single letters are joined
  on the gaps between them;
- **hyphenation**: a word broken at a line end is joined, unless the document elsewhere
  writes it with its hyphen (`state-of-the-art`); **ligatures** are expanded by pdfplumber.

All of it is arithmetic on validated data; the PDF itself is only ever parsed in the sandbox.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable

from pydantic import BaseModel, Field

from agent.models import PaperFigure

# ---------------------------------------------------------------- what the sandbox wrote

Word = tuple[float, float, float, float, float, bool, str]  # x0, top, x1, bottom, size, bold, text


class PageWords(BaseModel):
    width: float = Field(gt=0, le=10_000)
    height: float = Field(gt=0, le=10_000)
    words: list[Word] = Field(max_length=50_000)
    rules: list[tuple[float, float, float]] = Field(default_factory=list, max_length=5_000)
    figures: list[tuple[float, float, float, float, str]] = Field(default_factory=list, max_length=50)


class Extraction(BaseModel):
    pages: list[PageWords] = Field(max_length=200)


# ---------------------------------------------------------------- the structure


class Section(BaseModel):
    number: str = Field(default="", description="'1', '2.1', 'A'; empty when unnumbered")
    title: str
    level: int = 1
    text: str = ""

    @property
    def heading(self) -> str:
        return f"{self.number} {self.title}".strip()


class Paper(BaseModel):
    """A paper read for review: the structured text both reviewers get, and its figures."""

    title: str = ""
    front: str = Field(
        default="",
        description="text before the first heading: authors, or all of a document that has no headings",
    )
    sections: list[Section] = Field(default_factory=list)
    footnotes: list[str] = Field(default_factory=list)
    figures: list[PaperFigure] = Field(default_factory=list)
    source: str = Field(default="", description="the file's own text, when it was not a PDF")

    def text(self) -> str:
        """What the reviewers read: a .tex/.txt/.md file as it is, a PDF's structure as Markdown."""
        return self.source or self.markdown()

    def markdown(self) -> str:
        """The text as the reviewers read it: `#` title, `##`/`###` headings, paragraphs."""
        out = [f"# {self.title}"] if self.title else []
        if self.front:
            out.append(self.front)
        for s in self.sections:
            out.append(f"{'#' * min(4, s.level + 1)} {s.heading}")
            if s.text:
                out.append(s.text)
        if self.footnotes:
            out += ["## Footnotes", "\n".join(self.footnotes)]
        return "\n\n".join(out) + "\n"


# ---------------------------------------------------------------- lines


class Line(BaseModel):
    page: int
    x0: float
    top: float
    x1: float
    bottom: float
    size: float = Field(description="the size most of its characters are set in")
    bold: bool
    text: str
    column: int = Field(0, description="0 spanning or single column, 1 left, 2 right")


def _join_words(words: list[Word]) -> str:
    """Words of one line as text; a letter-spaced run (`A B S T R A C T`) is joined on the
    gaps between its letters, which are narrower than those between its words."""
    singles = [i for i, w in enumerate(words) if len(w[6]) == 1 and w[6].isalpha()]
    spaced = (
        len(singles) >= 4 and len(singles) * 2 >= len(words) or len(words) >= 2 and len(singles) == len(words)
    )
    if not spaced:
        return " ".join(w[6] for w in words)
    gaps = [words[i + 1][0] - words[i][2] for i in range(len(words) - 1)]
    letter_gaps = [gaps[i] for i in singles if i + 1 < len(words) and i + 1 in singles]
    if not letter_gaps:
        return " ".join(w[6] for w in words)
    limit = 1.5 * statistics.median(letter_gaps)
    text = words[0][6]
    for gap, w in zip(gaps, words[1:], strict=True):
        text += ("" if gap <= limit else " ") + w[6]
    return text


LIGATURES = str.maketrans(
    {
        "\ufb00": "ff",
        "\ufb01": "fi",
        "\ufb02": "fl",
        "\ufb03": "ffi",
        "\ufb04": "ffl",
        "\ufb05": "st",
        "\ufb06": "st",
    }
)  # those pdfplumber's expansion leaves


def _clean(text: str) -> str:
    """Ligatures pdfplumber's expansion leaves, and `(cid:12)`: glyphs with no Unicode mapping."""
    return re.sub(r"\(cid:\d+\)", "", text.translate(LIGATURES))


def _line(page: int, words: list[Word], column: int) -> Line:
    words = sorted(words, key=lambda w: w[0])
    weight = Counter()
    for w in words:
        weight[round(w[4] * 2) / 2] += len(w[6])
    bold = sum(len(w[6]) for w in words if w[5]) >= 0.8 * sum(len(w[6]) for w in words)
    return Line(
        page=page,
        x0=words[0][0],
        top=min(w[1] for w in words),
        x1=max(w[2] for w in words),
        bottom=max(w[3] for w in words),
        size=max(w[4] for w in words) if len(words) <= 12 else weight.most_common(1)[0][0],
        bold=bold,
        text=_clean(_join_words(words)),
        column=column,
    )


def _rows(words: list[Word]) -> list[list[Word]]:
    """Words grouped into physical lines: those whose vertical extents mostly overlap."""
    rows: list[list[Word]] = []
    for w in sorted(words, key=lambda w: (w[3], w[0])):
        if rows:
            last = rows[-1]
            top, bottom = min(x[1] for x in last), max(x[3] for x in last)
            overlap = min(bottom, w[3]) - max(top, w[1])
            if overlap > 0.5 * min(bottom - top, w[3] - w[1]):
                last.append(w)
                continue
        rows.append([w])
    return rows


def gutter(page: PageWords) -> tuple[float, float] | None:
    """The x-interval between two columns, if the page has two: near the middle, crossed by
    at most 8% of the lines (a title, a page number), with text on both sides."""
    if len(page.words) < 50:
        return None
    rows = _rows(page.words)
    lo, hi = int(page.width * 0.3), int(page.width * 0.7)
    cover = [0] * (hi - lo)
    for row in rows:
        crossed = set()
        for w in row:
            for x in range(max(lo, int(w[0])), min(hi, int(w[2]) + 1)):
                crossed.add(x - lo)
        for x in crossed:
            cover[x] += 1
    limit = max(3, int(0.08 * len(rows)))
    best: tuple[int, int] | None = None
    start = None
    for i, c in enumerate([*cover, limit + 1]):
        if c <= limit and start is None:
            start = i
        elif c > limit and start is not None:
            if best is None or i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    if best is None or best[1] - best[0] < 6:
        return None
    left, right = lo + best[0], lo + best[1]
    n_left = sum(1 for w in page.words if w[2] <= left + 1)
    n_right = sum(1 for w in page.words if w[0] >= right - 1)
    if min(n_left, n_right) < 0.2 * len(page.words):
        return None
    return float(left), float(right)


def _margin_numbers(words: list[Word]) -> set[int]:
    """Indices of the line numbers a submission prints in its margins (`042`): digit-only words
    left of the text block's left edge or right of its right edge."""
    starts = Counter(round(w[0]) for w in words if not w[6].isdigit())  # lines start at the left edge
    ends = Counter(round(w[2]) for w in words if not w[6].isdigit())  # justified lines end at the right
    edges = [x for x, n in starts.items() if n >= 5], [x for x, n in ends.items() if n >= 5]
    if not edges[0] or not edges[1]:
        return set()
    left, right = min(edges[0]), max(edges[1])
    return {i for i, w in enumerate(words) if w[6].isdigit() and (w[2] < left - 3 or w[0] > right + 3)}


def page_lines(number: int, page: PageWords) -> list[Line]:
    """The page's lines in reading order; figure-internal text and margin line numbers left out."""
    boxes = [f[:4] for f in page.figures]
    margin = _margin_numbers(page.words)
    words = [w for i, w in enumerate(page.words) if i not in margin and not any(_inside(w, b) for b in boxes)]
    gap = gutter(page.model_copy(update={"words": words}))
    if gap is None:
        return [_line(number, row, 0) for row in _rows(words)]
    left, right = gap
    middle, width = (left + right) / 2, right - left
    rows = _rows(words)
    # A row spans the page when a word crosses most of the gutter, unless text goes on in both
    # columns just above and below it: then it is an overfull column line (a long URL).
    spans = [any(min(w[2], right) - max(w[0], left) >= 0.6 * width for w in row) for row in rows]
    sides = [[(w[0] + w[2]) / 2 >= middle for w in row] for row in rows]
    for i, row in enumerate(rows):
        if spans[i]:
            top, bottom = min(w[1] for w in row), max(w[3] for w in row)
            near = [
                j
                for j, r in enumerate(rows)
                if j != i
                and not spans[j]
                and (
                    top - 1.5 * (bottom - top) < max(w[3] for w in r) <= top
                    or bottom <= min(w[1] for w in r) < bottom + 1.5 * (bottom - top)
                )
            ]
            above = {side for j in near if max(w[3] for w in rows[j]) <= top for side in sides[j]}
            below = {side for j in near if min(w[1] for w in rows[j]) >= bottom for side in sides[j]}
            spans[i] = not (above == below == {False, True})
    ordered: list[Line] = []
    band: list[Line] = []
    for row, span, side in zip(rows, spans, sides, strict=True):
        if span:
            ordered.extend(sorted(band, key=lambda ln: (ln.column, ln.top)))
            band.clear()
            ordered.append(_line(number, row, 0))
            continue
        for column, right_side in ((1, False), (2, True)):
            part = [w for w, s in zip(row, side, strict=True) if s == right_side]
            if part:
                band.append(_line(number, part, column))
    ordered.extend(sorted(band, key=lambda ln: (ln.column, ln.top)))
    return ordered


def _inside(w: Word, box: Iterable[float]) -> bool:
    x0, top, x1, bottom = box
    cx, cy = (w[0] + w[2]) / 2, (w[1] + w[3]) / 2
    return x0 - 2 <= cx <= x1 + 2 and top - 2 <= cy <= bottom + 2


# ---------------------------------------------------------------- what is not body text


def _shape(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"\d+", "", text.lower())).strip()


PAGE_NUMBER = re.compile(r"^(?:page\s*)?(?:\d{1,4}|[ivxlc]{1,6})(?:\s*(?:of|/)\s*\d{1,4})?$", re.IGNORECASE)


def running_lines(pages: list[list[Line]]) -> set[tuple[int, float]]:
    """(page, top) of running headers, footers and page numbers."""

    def edges(lines: list[Line]) -> list[Line]:
        by_top = sorted(lines, key=lambda ln: ln.top)
        return by_top[:2] + by_top[-2:] if len(by_top) > 4 else by_top

    seen = Counter(s for lines in pages for s in {_shape(ln.text) for ln in edges(lines)})
    need = max(2, int(0.4 * len(pages) + 0.5))
    out = set()
    for lines in pages:
        for ln in edges(lines):
            if (seen[_shape(ln.text)] >= need and len(pages) >= 2) or PAGE_NUMBER.match(ln.text.strip()):
                out.add((ln.page, ln.top))
    return out


def footnote_lines(
    lines: list[Line], page: PageWords, body: float, gap: tuple[float, float] | None
) -> set[tuple[int, float]]:
    """(column, top) of the lines below a footnote rule: a short rule at the left edge of a column,
    with only lines smaller than the body under it."""
    out: set[tuple[int, float]] = set()
    for column in (0, 1, 2):
        col = [ln for ln in lines if ln.column == column]
        if not col:
            continue
        left_edge = min(ln.x0 for ln in col)
        width = (max(ln.x1 for ln in col) - left_edge) or 1.0
        if gap and column == 0:
            continue
        for x0, top, x1 in sorted(page.rules, key=lambda r: -r[1]):
            if abs(x0 - left_edge) > 4 or not 0.08 <= (x1 - x0) / width <= 0.5 or top < page.height / 3:
                continue
            below = [ln for ln in col if ln.top > top]
            if below and all(ln.size < 0.95 * body for ln in below):
                out.update((column, ln.top) for ln in below)
            break
    return out


# ---------------------------------------------------------------- headings

NUMBERED = re.compile(r"^(?P<num>\d{1,2}(?:\.\d{1,2}){0,3}|[A-Z](?:\.\d{1,2}){0,3})\.?\s+(?P<title>\S.*)$")
NAMED = re.compile(
    r"^(?:abstract|references|bibliography|acknowledge?ments?|appendix|appendices|conclusions?|introduction|"
    r"related work|limitations|broader impacts?(?: statement)?|ethics(?: statement)?|reproducibility(?: statement)?|"
    r"discussion)$",
    re.IGNORECASE,
)
LONE_NUMBER = re.compile(r"^(?:\d{1,2}(?:\.\d{1,2}){0,3}|[A-Z])\.?$")


def _is_heading(ln: Line, body: float) -> bool:
    text = ln.text.strip()
    words = text.split()
    m = NUMBERED.match(text)
    if (
        not 1 <= len(words) <= 14
        or len(text) > 120
        or text[-1] in ",;:"
        or not re.search(r"[A-Za-z]{2}", text)
    ):
        return False
    if text[-1] == "." and not m:  # a sentence, or a run-in heading (`Limitations.`) with its paragraph
        return False
    title = m["title"] if m else text
    if m and not re.match(r"[A-Za-z(]", title):  # `1 0.52 0.61` is a table row
        return False
    letters = re.sub(r"[^A-Za-z]", "", title)
    caps = len(letters) >= 3 and letters.isupper()
    larger = ln.size >= 1.12 * body
    return bool(
        (larger and (m or caps or ln.bold or NAMED.match(title)))
        or ((ln.bold or caps) and (m or NAMED.match(title)))
    )


def _continues(heading: Line, nxt: Line | None, body: float) -> bool:
    """Whether `nxt` is the second line of a heading that wrapped: set alike, just below it."""
    if nxt is None or nxt.page != heading.page or nxt.column != heading.column:
        return False
    text = nxt.text.strip()
    alike = abs(nxt.size - heading.size) < 0.3 and nxt.bold == heading.bold
    caps_alike = text.isupper() == re.sub(r"^[\d.A-Z]+\s+", "", heading.text.strip()).isupper()
    return (
        alike
        and caps_alike
        and len(text.split()) <= 10
        and not NUMBERED.match(text)
        and 0 <= nxt.top - heading.bottom < 0.6 * body
        and text[-1:] not in ",;"
    )


def _level(number: str) -> int:
    return min(3, number.count(".") + 1) if number else 1


# ---------------------------------------------------------------- paragraphs


def _vocabulary(lines: list[Line]) -> set[str]:
    """Words of the document (lower case), hyphenated compounds as they are, for `join_broken`."""
    return {w.strip(".,;:()[]\"'").lower() for ln in lines for w in ln.text.split()}


def join_broken(before: str, after: str, vocab: set[str]) -> str:
    """Two lines as one text. A word hyphenated at the line end is joined (`experi-` `ments`),
    but the hyphen stays where the document writes the compound with it elsewhere, or where
    both halves are words of the document and the joined form is not (`home-` `field`)."""
    m = re.search(r"(\S*?)([A-Za-z]+)-$", before)
    nxt = re.match(r"[a-z]+|[A-Z]+\b", after)
    if not (m and nxt) or (nxt[0].isupper() and not m[2].isupper()):
        return f"{before} {after}"
    head, tail = m[2].lower(), nxt[0].lower()
    token = re.sub(r"^\W+", "", m[1] + m[2]).lower()
    joined = head + tail
    keep = f"{token}-{tail}" in vocab or (
        joined not in vocab and len(head) >= 3 and len(tail) >= 3 and head in vocab and tail in vocab
    )
    return (before if keep else before[:-1]) + after


def _join_lines(lines: list[Line], vocab: set[str]) -> str:
    """Lines into paragraphs (a break at a wider gap or an indented first line), with words
    hyphenated at line ends put back together."""
    paras: list[str] = []
    current = ""
    prev: Line | None = None
    for ln in lines:
        new_para = False  # a paragraph goes on across columns and pages
        if prev is not None and ln.page == prev.page and ln.column == prev.column:
            spacing = ln.top - prev.bottom
            new_para = (
                spacing > 0.9 * (prev.bottom - prev.top) or ln.x0 > prev.x0 + 8 and prev.x1 < ln.x1 - 30
            )
        if new_para and current:
            paras.append(current)
            current = ""
        text = ln.text.strip()
        if not current:
            current = text
            prev = ln
            continue
        current = join_broken(current, text, vocab)
        prev = ln
    if current:
        paras.append(current)
    return "\n\n".join(paras)


# ---------------------------------------------------------------- the whole paper


def body_size(pages: list[list[Line]]) -> float:
    weight: Counter[float] = Counter()
    for lines in pages:
        for ln in lines:
            weight[round(ln.size * 2) / 2] += len(ln.text)
    return weight.most_common(1)[0][0] if weight else 10.0


def structure(ex: Extraction) -> Paper:
    """The paper's title, its sections in order and its footnotes (figures are added by the
    caller, which reads the PNGs: `figure_captions` gives their captions)."""
    pages = [page_lines(i + 1, p) for i, p in enumerate(ex.pages)]
    body = body_size(pages)
    running = running_lines(pages)
    footnotes: list[str] = []
    kept: list[Line] = []
    for lines, page in zip(pages, ex.pages, strict=True):
        lines = [ln for ln in lines if (ln.page, ln.top) not in running]
        notes = footnote_lines(lines, page, body, gutter(page))
        foot = [ln for ln in lines if (ln.column, ln.top) in notes]
        if foot:
            footnotes.append(_join_lines(foot, set()))
        kept += [ln for ln in lines if (ln.column, ln.top) not in notes]
    vocab = _vocabulary(kept)
    title, start = _title(kept, body)
    sections: list[Section] = []
    front: list[Line] = []  # lines before the first heading
    pending: list[Line] = []  # lines of the current section
    i = start
    while i < len(kept):
        ln = kept[i]
        text = ln.text.strip()
        nxt = kept[i + 1] if i + 1 < len(kept) else None
        if (
            LONE_NUMBER.match(text)
            and nxt
            and nxt.page == ln.page
            and _is_heading(nxt.model_copy(update={"text": f"{text} {nxt.text}"}), body)
            and (ln.bold or ln.size >= 1.12 * body)
            and nxt.top - ln.bottom < 2 * body
        ):
            ln = nxt.model_copy(update={"text": f"{text} {nxt.text}"})  # `1` above `Introduction`
            i += 1
            nxt = kept[i + 1] if i + 1 < len(kept) else None
        if _is_heading(ln, body):
            heading = ln.text.strip()
            while _continues(ln, nxt, body):
                heading = join_broken(heading, nxt.text.strip(), vocab)  # a heading that wrapped
                i += 1
                ln, nxt = nxt, kept[i + 1] if i + 1 < len(kept) else None
            if sections:
                sections[-1].text = _join_lines(pending, vocab)
            pending = []
            m = NUMBERED.match(heading)
            number, name = (m["num"], m["title"]) if m else ("", heading)
            sections.append(Section(number=number, title=name, level=_level(number)))
        else:
            (pending if sections else front).append(ln)
        i += 1
    if sections:
        sections[-1].text = _join_lines(pending, vocab)
    skipped = [
        ln for ln in kept[:start] if not (title and ln.page == kept[0].page and ln.text.strip() in title)
    ]
    return Paper(
        title=title, front=_join_lines(skipped + front, vocab), sections=sections, footnotes=footnotes
    )


CAPTION = re.compile(r"^(?:Figure|Fig\.)\s*\d+\s*[:.]")


def figure_captions(ex: Extraction) -> dict[str, str]:
    """Each figure's caption: the `Figure N:` line nearest below it on its page (or above it,
    where a style puts captions on top), with the lines that continue it."""
    out = {}
    for number, page in enumerate(ex.pages, 1):
        lines = sorted(page_lines(number, page), key=lambda ln: ln.top)
        for x0, top, x1, bottom, name in page.figures:

            def overlaps(ln: Line, x0: float = x0, x1: float = x1) -> bool:
                return ln.x0 < x1 and ln.x1 > x0

            below = [
                ln
                for ln in lines
                if CAPTION.match(ln.text) and overlaps(ln) and 0 <= ln.top - bottom + 2 < 80
            ]
            above = [
                ln for ln in lines if CAPTION.match(ln.text) and overlaps(ln) and 0 <= top - ln.bottom < 80
            ]
            first = below[0] if below else (above[-1] if above else None)
            if first is None:
                continue
            text, prev = first.text, first
            for ln in [ln for ln in lines if ln.column == first.column and ln.top > first.top]:
                if ln.top - prev.bottom > 0.5 * (prev.bottom - prev.top) or len(text) > 600:
                    break
                text, prev = join_broken(text, ln.text, set()), ln
            out[name] = text
    return out


def _title(lines: list[Line], body: float) -> tuple[str, int]:
    """The largest text on page one above the first heading, and where the front matter ends."""
    first = [ln for ln in lines if ln.page == lines[0].page] if lines else []
    if not first:
        return "", 0
    top_size = max(ln.size for ln in first[:15])
    if top_size < 1.2 * body:
        return "", 0
    idx = [i for i, ln in enumerate(first[:15]) if abs(ln.size - top_size) < 0.3]
    if re.match(r"\d+(?:\.\d+)*\.?\s", first[idx[0]].text.strip()):  # the largest text is `1 Introduction`
        return "", 0
    run = [idx[0]]
    while run[-1] + 1 in idx:  # the title's lines, one after another
        run.append(run[-1] + 1)
    title = " ".join(first[i].text.strip() for i in run)
    rest = run[-1] + 1
    for j in range(rest, len(first)):  # skip authors up to the first heading
        text = first[j].text.strip()
        if _is_heading(first[j], body) and (NAMED.match(text) or NUMBERED.match(text)):
            return title, j
    return title, rest
