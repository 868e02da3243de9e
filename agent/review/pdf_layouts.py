"""A paper's text typeset as a real conference PDF, in one of three layouts.

The PDF test set and `review-bench --as-pdf` need PDFs whose structure is known: each
Markdown-like review-bench text (`../shared/review_bench/`) becomes a LaTeX document whose
sections are exactly the headings found here, so what the PDF reader finds can be checked
against them. The layouts cover what makes conference PDFs hard to read back:

- `iclr`: Times, small-caps headings (the ICLR style's `\\large\\sc`), a running header on
  every page, a footnote in the introduction;
- `neurips`: single column, bold headings, a submission notice at the foot of page one;
- `twocol`: Palatino in two columns, letter-spaced capital headings, an author footnote (`\\thanks`) and
  a footnote in the introduction, a running footer.

Plain LaTeX only (no titlesec), so TeX Live's base and recommended packages suffice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pylatexenc.latexencode import UnicodeToLatexEncoder

Layout = Literal["iclr", "neurips", "twocol"]
LAYOUTS: tuple[Layout, ...] = ("iclr", "neurips", "twocol")
# The PDF test set's review-bench papers: human scores 8/10 (accepted), 7/10 (accepted), 4/10 (rejected).
TEST_PAPERS = ("ccWaPGl9Hq", "NH29920YEmj", "d2XZsOT-_U_")

# Text that must never reach a section's body when read back: the tests look for it.
RUNNING_HEADER = "Under review as a conference paper at ICLR 2022"
RUNNING_FOOTER = "Preprint in a two-column layout"
NOTICE = "Submitted to the Conference on Neural Information Processing Systems. Do not distribute."
FOOTNOTE = "Equal contribution; the order of the authors was decided by a coin toss."
THANKS = "Work done while visiting the Institute of Example Studies."

_PREAMBLES: dict[Layout, str] = {
    "iclr": r"""\documentclass[10pt]{article}
\usepackage[T1]{fontenc}
\usepackage{times}
\usepackage[letterpaper,textwidth=5.5in,textheight=9in,top=1in,headsep=0.3in]{geometry}
\usepackage{fancyhdr,graphicx,amssymb,textcomp}
\pagestyle{fancy}\fancyhf{}\lhead{HEADER}\cfoot{\thepage}
\makeatletter
\renewcommand\section{\@startsection{section}{1}{\z@}{-2.0ex plus -0.5ex minus -.2ex}%
  {1.5ex plus 0.3ex minus .2ex}{\large\scshape\raggedright}}
\renewcommand\subsection{\@startsection{subsection}{2}{\z@}{-1.8ex plus -0.5ex minus -.2ex}%
  {0.8ex plus .2ex}{\normalsize\scshape\raggedright}}
\renewcommand\subsubsection{\@startsection{subsubsection}{3}{\z@}{-1.5ex plus -0.5ex minus -.2ex}%
  {0.5ex plus .2ex}{\normalsize\scshape\raggedright}}
\makeatother
""".replace("HEADER", RUNNING_HEADER),
    "neurips": r"""\documentclass[10pt]{article}
\usepackage[T1]{fontenc}
\usepackage{times}
\usepackage[letterpaper,textwidth=5.5in,textheight=9in,top=1in]{geometry}
\usepackage{graphicx,amssymb,textcomp}
\makeatletter
\renewcommand\section{\@startsection{section}{1}{\z@}{-2.0ex plus -0.5ex minus -.2ex}%
  {1.5ex plus 0.3ex minus .2ex}{\large\bfseries\raggedright}}
\renewcommand\subsection{\@startsection{subsection}{2}{\z@}{-1.8ex plus -0.5ex minus -.2ex}%
  {0.8ex plus .2ex}{\normalsize\bfseries\raggedright}}
\makeatother
""",
    "twocol": r"""\documentclass[10pt,twocolumn]{article}
\usepackage[T1]{fontenc}
\usepackage{mathpazo}
\usepackage[letterpaper,margin=0.75in,columnsep=0.25in]{geometry}
\usepackage[letterspace=300,expansion=false]{microtype}
\usepackage{fancyhdr,graphicx,amssymb,textcomp}
\pagestyle{fancy}\fancyhf{}\renewcommand{\headrulewidth}{0pt}
\lfoot{FOOTER}\rfoot{\thepage}
\makeatletter
\renewcommand\section{\@startsection{section}{1}{\z@}{-2.0ex plus -0.5ex minus -.2ex}%
  {1.2ex plus 0.3ex minus .2ex}{\normalsize\bfseries\lsstyle\raggedright}}
\renewcommand\subsection{\@startsection{subsection}{2}{\z@}{-1.5ex plus -0.5ex minus -.2ex}%
  {0.6ex plus .2ex}{\normalsize\bfseries\itshape\raggedright}}
\makeatother
""".replace("FOOTER", RUNNING_FOOTER),
}

# A heading of the review-bench texts: a number (or an appendix letter) and capitals, or one
# of the unnumbered headings papers use; see ../shared/review_bench/README.md.
_NUMBER = r"(?P<num>\d{1,2}(?:\.\d{1,2}){0,2}|[A-H](?:\.\d{1,2}){0,2})\.?\s+"
_NUMBERED = re.compile(_NUMBER + r"(?P<title>[A-Z][^a-z]{2,90})$")  # `2.1 MACHINE LEARNING FAIRNESS`
_NUMBERED_TITLE_CASE = re.compile(_NUMBER + r"(?P<title>[A-Z][\w ,:&'()/\-]{1,80}[\w)])$")  # `3 Related Work`
_UNNUMBERED = re.compile(r"^(?P<title>[A-Z][A-Z \-&:]{4,60})$")  # `INTRODUCTION`, as the bench texts set them
_CAPS_CONTINUATION = re.compile(r"^[A-Z][^a-z]{2,90}$")
_ENCODER = UnicodeToLatexEncoder(unknown_char_policy="ignore", unknown_char_warning=False)


class Heading(BaseModel):
    """A section as LaTeX numbers it, so a reader of the PDF can be checked against it."""

    number: str = Field(description="'1', '2.1', 'A', 'A.1'; empty for unnumbered headings")
    title: str
    level: int = Field(ge=1, le=3)


class Typeset(BaseModel):
    """A paper in a layout: the LaTeX source and the sections it has, in order."""

    tex: str
    title: str
    headings: list[Heading] = Field(description="abstract first, then every section in order")


def _escape(text: str) -> str:
    """Text as LaTeX: markup of the Markdown-like source dropped (bold marks, link targets),
    special characters escaped, long tokens (URLs) breakable so they never run over a column."""
    text = re.sub(r"\[([^\]]*)\]\([^)\s]*\)", r"\1", text.replace("**", ""))
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text)
    latex = _ENCODER.unicode_to_latex(text)
    return re.sub(r"\S{25,}", lambda m: re.sub(r"(?<=[/.\-])(?=\S)", r"\\hspace{0pt}", m[0]), latex)


def _title_case(caps: str) -> str:
    """`MACHINE LEARNING FAIRNESS` -> `Machine Learning Fairness` (small caps need lower case)."""
    return " ".join(w[:1] + w[1:].lower() for w in caps.split())


def _heading(line: str) -> re.Match[str] | None:
    """A heading line of a bench text: numbered in capitals or in title case, or unnumbered in
    capitals (the forms the reviewer's own heading finder reads in the plain text)."""
    if m := _NUMBERED.match(line):
        return m
    if (m := _UNNUMBERED.match(line)) and len(line.split()) <= 8 and re.search(r"[A-Z]{4}", line):
        return m  # not a row of acronyms (`KL LOO`)
    m = _NUMBERED_TITLE_CASE.match(line)
    words = m["title"].split() if m else []
    long_words = [w for w in words if len(w) >= 4]
    if (
        m
        and len(words) <= 12
        and long_words
        and sum(w[0].isupper() for w in long_words) * 2 >= len(long_words)
    ):
        return m
    return None


def _title(lines: list[str]) -> str:
    """The `#` line, else the capitals before the abstract (past a running header)."""
    if hashed := next((ln for ln in lines if ln.startswith("#")), None):
        return re.sub(r"\s*#+\s*", " ", hashed).strip()
    caps = []
    for ln in lines[:12]:
        text = ln.strip()
        if _CAPS_CONTINUATION.match(text) and not _is_abstract(text):
            caps.append(text)
        elif caps:
            break
    return " ".join(caps) or next((ln.strip() for ln in lines if ln.strip()), "")


def _is_abstract(line: str) -> bool:
    return line.strip("#*_ ").lower() == "abstract"


def _blocks(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The title, then ('heading', number|title) and ('para', text) blocks of a bench text."""
    lines = text.splitlines()
    for i in range(len(lines) - 1):  # `1` on a line of its own above `INTRODUCTION`
        if re.fullmatch(r"\d{1,2}(?:\.\d{1,2}){0,2}", lines[i].strip()) and _UNNUMBERED.match(
            lines[i + 1].strip()
        ):
            lines[i], lines[i + 1] = "", f"{lines[i].strip()} {lines[i + 1].strip()}"
    title = _title(lines) or "Untitled"
    start = next((i for i, ln in enumerate(lines) if _is_abstract(ln)), 0)
    blocks: list[tuple[str, str]] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(("para", " ".join(para)))
            para.clear()

    for raw in lines[start:]:
        line = raw.strip()
        bare = line.strip("#* ")
        if _is_abstract(line):
            flush()
            blocks.append(("abstract", ""))
        elif m := _heading(bare):
            flush()
            blocks.append(("heading", f"{m.groupdict().get('num') or ''}\t{m['title']}"))
        elif (
            blocks
            and blocks[-1][0] == "heading"
            and not blocks[-1][1].startswith("\t")
            and not para
            and _CAPS_CONTINUATION.match(line)
        ):
            blocks[-1] = ("heading", blocks[-1][1] + " " + line)  # a numbered heading that wrapped
        elif not line or line.startswith("|") or line.startswith("!["):
            flush()  # tables and images of the text version are not typeset
        else:
            para.append(line)
    flush()
    return title, blocks


def _numbering(number: str, counters: list[int], appendix: bool) -> tuple[str, int]:
    """LaTeX's own number for a heading the text numbered `number` (numbers restart, so the
    text's own may skip), and its level."""
    level = min(3, number.count(".") + 1)
    counters[level - 1] += 1
    for i in range(level, 3):
        counters[i] = 0
    first = chr(ord("A") + counters[0] - 1) if appendix else str(counters[0])
    return ".".join([first, *map(str, counters[1:level])]), level


def typeset(text: str, layout: Layout, figures: Sequence[tuple[str, str]] = ()) -> Typeset:
    """`text` (a review-bench paper) as a LaTeX document in `layout`. `figures` are
    (file name, caption) pairs placed in the first section; the files go next to the .tex."""
    title, blocks = _blocks(text)
    caps = layout == "twocol"  # letter-spaced capitals; the others set small caps from lower case
    out = [_PREAMBLES[layout], r"\begin{document}"]
    author = r"Anonymous authors\\Paper under double-blind review"
    if layout == "twocol":
        author = r"Anonymous authors\thanks{" + _escape(THANKS) + "}"
    title_font = {"iclr": r"\LARGE\scshape", "neurips": r"\LARGE\bfseries", "twocol": r"\Large\bfseries"}[
        layout
    ]
    shown_title = title if caps else _title_case(title)
    out.append(r"\title{" + title_font + " " + _escape(shown_title) + r"}\author{" + author + r"}\date{}")
    out.append(r"\maketitle")
    if layout == "neurips":
        out.append(r"{\let\thefootnote\relax\footnotetext{" + _escape(NOTICE) + "}}")
    if layout == "iclr":
        out.append(r"\thispagestyle{fancy}")
    headings: list[Heading] = []
    counters, appendix, in_abstract, in_refs, first_para_of = [0, 0, 0], False, False, False, ""
    footnote_done, figures_done = False, not figures
    for kind, body in blocks:
        if kind == "abstract":
            head = {
                "iclr": r"{\large\scshape Abstract}",
                "neurips": r"{\large\bfseries Abstract}",
                "twocol": r"{\bfseries\lsstyle ABSTRACT}",
            }[layout]
            out.append(r"\begin{center}" + head + r"\end{center}" + "\n" + r"\begin{quote}")
            headings.append(Heading(number="", title="Abstract", level=1))
            in_abstract = True
            continue
        if kind == "heading":
            if in_abstract:
                out.append(r"\end{quote}")
                in_abstract = False
            number, raw_title = body.split("\t")
            shown = raw_title if caps else _title_case(raw_title)
            if not number:
                out.append(r"\section*{" + _escape(shown) + "}")
                headings.append(Heading(number="", title=shown, level=1))
                in_refs = raw_title.upper() == "REFERENCES"
                if in_refs:
                    out.append(r"\small")
                continue
            if number[0].isalpha() and not appendix:
                appendix, counters = True, [0, 0, 0]
                out.append(r"\normalsize\appendix")
            latex_number, level = _numbering(number, counters, appendix)
            command = ("section", "subsection", "subsubsection")[level - 1]
            out.append(rf"\{command}{{" + _escape(shown) + "}")
            headings.append(Heading(number=latex_number, title=shown, level=level))
            in_refs, first_para_of = False, latex_number
            continue
        para = _escape(body)
        if first_para_of == "1" and not footnote_done:  # the first paragraph of the introduction
            mark = r"\footnote{" + _escape(FOOTNOTE) + "}"
            para = re.sub(
                r"(?<=[a-z)]\.)(?=\s|$)", lambda _, m=mark: m, para, count=1
            )  # after the first sentence
            para += "" if mark in para else mark
            footnote_done = True
        out.append(para + "\n")
        if first_para_of == "1" and not figures_done:
            out += [_figure(name, caption, layout) for name, caption in figures]
            figures_done = True
    if in_abstract:
        out.append(r"\end{quote}")
    out.append(r"\end{document}")
    return Typeset(tex="\n\n".join(out) + "\n", title=shown_title, headings=headings)


def _figure(name: str, caption: str, layout: Layout) -> str:
    width = r"\columnwidth" if layout == "twocol" else r"0.6\linewidth"
    return (
        r"\begin{figure}[t]\centering\includegraphics[width="
        + width
        + "]{"
        + name
        + r"}\caption{"
        + _escape(caption)
        + r"}\end{figure}"
    )


def write(text: str, layout: Layout, folder: Path, figures: Sequence[tuple[str, str]] = ()) -> Typeset:
    """Typeset `text` into `folder/paper.tex` (compile it with `agent.paper.latex.compile_pdf`)."""
    doc = typeset(text, layout, figures)
    (folder / "paper.tex").write_text(doc.tex)
    return doc
