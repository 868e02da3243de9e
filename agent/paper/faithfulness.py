"""Every number a paper prints must come from its results.

`check(tex, results)` finds the numbers in the paper's prose and tables (not in LaTeX
markup: labels, references, citations, file names, lengths, column specs, the preamble or
the bibliography) and looks each one up among all the numbers of `results`, walked
recursively (means, per-seed lists, the analysis, configs). A printed number matches a
value that rounds to it at the precision shown: `0.123` matches 0.12349, `1.2e-3` and
`$1.2\\times10^{-3}$` match 0.00118, `1200` (two significant digits) matches 1234.

Also accepted: a percentage followed by `\\%` that is a value times 100, a value already in
percent, or a relative change between two values of the same quantity (same key); an
absolute difference of two such values; `2.5x` as their ratio; signs are ignored, since
"a drop of 0.12" and a delta of -0.12 are the same claim. Small integers (counts, "3
seeds", "Figure 2") pass, as do years next to an author name and numbers right after
"Section", "Table", "Figure" and the like.

Positions are kept by blanking markup with spaces instead of deleting it, so every bad
number is reported with its context from the original source.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

# Thresholds any statistics text quotes ("p < 0.05", "95% CI") without them being results.
CONVENTIONAL = (0.05, 0.01, 0.001, 95.0, 99.0, 100.0)
MAX_GROUP = 200  # pairwise deltas only within groups this small (n^2 pairs)


class BadNumber(BaseModel):
    text: str
    value: float
    context: str

    def __str__(self) -> str:
        return f"{self.text} in '…{self.context}…'"


class FaithfulnessReport(BaseModel):
    ok: bool
    checked: int
    bad: list[BadNumber]

    def summary(self) -> str:
        if self.ok:
            return f"all {self.checked} numbers match the results"
        return f"{len(self.bad)} of {self.checked} numbers match no result: " + "; ".join(map(str, self.bad))


# ---------------------------------------------------------------- blanking the markup

# Commands whose first N mandatory arguments are names, lengths or colours, never claims.
NAME_ARGS: dict[str, int] = {
    **dict.fromkeys(
        "label ref eqref cref Cref autoref pageref nameref cite citep citet citealp citealt citeauthor "
        "citeyear nocite includegraphics input include url href bibliography bibliographystyle usepackage "
        "documentclass vspace hspace vskip hskip graphicspath color pagecolor textcolor colorbox cline "
        "cmidrule linespread captionsetup scalebox raisebox parbox begin end".split(), 1),
    **dict.fromkeys("setlength addtolength setcounter addtocounter fontsize resizebox multicolumn multirow "
                    "newcommand renewcommand rule".split(), 2),
    "definecolor": 3,
}
# Commands whose `[...]` is an option (placement, width, spacing). Any other `[` is text,
# such as the interval in `$\\in [0.1, 0.9]$`.
OPT_ARGS = {*NAME_ARGS, "\\", "item", "newline", "linebreak", "pagebreak", "bibitem", "makebox", "framebox"}
# Environments whose opening takes widths or column specs right after `\\begin{env}`.
SPEC_ENVS = {"tabular", "tabular*", "tabularx", "tabulary", "array", "longtable", "minipage",
             "wrapfigure", "wraptable", "subfigure", "multicols", "adjustbox"}
# Glued units only (`2pt`), so prose such as "0.5 in each run" is still checked.
LENGTH = re.compile(
    r"-?\d*\.?\d+(?:(?:pt|em|ex|cm|mm|in|bp|pc|sp|mu)(?![A-Za-z])"
    r"|\s*\\(?:linewidth|textwidth|columnwidth|textheight|hsize|baselineskip)(?![A-Za-z]))"
)


class _Masker:
    """The source with markup overwritten by spaces (newlines kept), same length."""

    def __init__(self, tex: str):
        self.tex = tex
        self.chars = list(tex)

    def blank(self, a: int, b: int) -> None:
        for i in range(a, min(b, len(self.chars))):
            if self.chars[i] != "\n":
                self.chars[i] = " "

    def text(self) -> str:
        return "".join(self.chars)


def _group_end(s: str, i: int) -> int:
    """Index after the `{...}`, `[...]` or `(...)` group opening at `s[i]` (nesting counted)."""
    opener = s[i]
    closer = {"{": "}", "[": "]", "(": ")"}[opener]
    depth = 0
    j = i
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return len(s)


def _blank_command_args(m: _Masker) -> None:
    s = m.tex
    for cm in re.finditer(r"\\([A-Za-z]+|\\)\*?", s):
        name = cm.group(1)
        if name not in OPT_ARGS:
            continue
        want = NAME_ARGS.get(name, 0)
        j = cm.end()
        env = ""
        blank_to = j if want else None
        while j < len(s):
            k = j
            while k < len(s) and s[k] in " \t":
                k += 1
            c = s[k] if k < len(s) else ""
            if c == "[" or (c == "(" and name == "cmidrule"):
                j = blank_to = _group_end(s, k)
            elif c == "{" and want > 0:
                end = _group_end(s, k)
                if name == "begin":
                    env = s[k + 1:end - 1].strip()
                want -= 1
                j = blank_to = end
            elif c == "{" and env in SPEC_ENVS and k == j:
                j = blank_to = _group_end(s, k)  # column spec or width, glued to \begin{env}
            else:
                break
        if blank_to is not None:
            # only the counted arguments go: `\multicolumn{2}{c}{0.12}` keeps its 0.12
            m.blank(cm.start(), blank_to)


def masked(tex: str) -> str:
    """`tex` with everything but prose, tables and math overwritten by spaces."""
    m = _Masker(tex)
    begin = tex.find("\\begin{document}")
    if begin != -1:
        m.blank(0, begin + len("\\begin{document}"))
    end = tex.find("\\end{document}")
    if end != -1:
        m.blank(end, len(tex))
    for r in (
        re.compile(r"(?<!\\)%.*"),
        re.compile(r"\\begin\{thebibliography\}.*?\\end\{thebibliography\}", re.S),
        LENGTH,
    ):
        for x in r.finditer(tex):
            m.blank(x.start(), x.end())
    args = _Masker(m.text())
    _blank_command_args(args)
    return args.text()


# ---------------------------------------------------------------- finding printed numbers

_NUM = re.compile(
    r"(?<![A-Za-z_\\\d.])"
    r"(?P<int>\d{1,3}(?:(?:,|\{,\}|\\,)\d{3})+(?!\d)|\d+)"
    r"(?:\.(?P<frac>\d+))?"
    r"(?:[eE](?P<e1>[-+−]?\d+)"
    r"|\s*(?:\\times|\\cdot|×)\s*10\s*\^\s*\{?\s*(?P<e2>[-+−]?\s*\d+)\s*\}?"
    r"|(?<=10)\s*\^\s*\{?\s*(?P<pow>[-+−]?\s*\d+)\s*\}?)?"
)
_PERCENT = re.compile(r"\s*(?:\\%|%|~?percent)")
_TIMES = re.compile(r"\s*(?:\$?\s*\\times\s*\$?(?!\s*10)|×|x\b|-?fold\b)")
_STRUCTURAL = re.compile(
    r"(?:Section|Sec\.|Sections|Table|Tab\.|Tables|Figure|Fig\.|Figures|Eq\.|Eqs\.|Equation|Appendix|"
    r"Algorithm|Line|Lines|Step|Theorem|Lemma|Definition|Corollary|Chapter|Part|Proposition)[~\s]*\(?$"
)
_YEAR_BEFORE = re.compile(r"(?:et\s+al\.?|[A-Z][A-Za-z\-]+)[,~\s]*\(?$")


@dataclass(frozen=True)
class Printed:
    """One number as the paper shows it."""

    text: str
    value: float
    tol: float
    start: int
    end: int
    percent: bool = False
    times: bool = False
    integer: bool = False


def _tolerance(int_part: str, frac: str | None, exp: int) -> float:
    if frac:
        step = 10.0 ** -len(frac)
    else:
        digits = int_part.lstrip("0") or "0"
        zeros = len(digits) - len(digits.rstrip("0"))
        # 1200 shows two significant digits (±50); 100 or 1000 could be exact, so they are
        sig = len(digits) - zeros
        step = 10.0 ** zeros if sig >= 2 and zeros else 1.0
    return 0.5 * step * 10.0 ** exp


def printed_numbers(tex: str, text: str | None = None) -> list[Printed]:
    """Every number in the paper's prose and tables, with the rounding it was printed at.
    `text` is `masked(tex)` when the caller already has it."""
    text = masked(tex) if text is None else text
    found = []
    for m in _NUM.finditer(text):
        after = text[m.end():m.end() + 12]
        times = bool(_TIMES.match(after))
        if re.match(r"[A-Za-z]", after) and not times:
            continue  # glued to a word: 2D, 3rd, 10k
        before = text[max(0, m.start() - 8):m.start()]
        if re.search(r"[A-Za-z]-$", before):
            continue  # CIFAR-10, GPT-4
        int_part = re.sub(r"\D", "", m.group("int"))
        frac = m.group("frac")
        power = m.group("pow") is not None and int_part == "10" and not frac
        e = m.group("e1") or m.group("e2") or (m.group("pow") if power else None)
        exp = int(e.replace("−", "-").replace(" ", "")) if e else 0
        if power:
            value, tol = 10.0 ** exp, 0.0  # a bare power of ten, 10^{-3}
        else:
            value = float(f"{int_part}.{frac or '0'}") * 10.0 ** exp
            tol = _tolerance(int_part, frac, exp)
        sign = re.search(r"(?:-|−)\$?\s*$", before)
        if sign and not re.search(r"[\w)\]]$", before[:sign.start()].rstrip("$")):
            value = -value  # -0.12, $-$0.12; not the dash of a range such as 0.1-0.2
        found.append(Printed(
            text=tex[m.start():m.end()].strip(), value=value, tol=tol + 1e-9 * abs(value),
            start=m.start(), end=m.end(), percent=bool(_PERCENT.match(after)), times=times,
            integer=frac is None and not e,
        ))
    return found


# ---------------------------------------------------------------- the known values


def _as_number(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int | float):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, str):
        try:
            v = float(x.strip())
        except ValueError:
            return None
        return v if math.isfinite(v) else None
    return None


def _walk(obj: Any, key: tuple[str, str], values: list[float], groups: dict[tuple[str, str], list[float]]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if (kv := _as_number(k)) is not None:
                values.append(kv)
            _walk(v, (key[1], str(k)), values, groups)
    elif isinstance(obj, list | tuple):
        values.append(float(len(obj)))
        for v in obj:
            if (n := _as_number(v)) is not None:
                values.append(n)
            else:
                _walk(v, key, values, groups)
    elif hasattr(obj, "model_dump"):
        _walk(obj.model_dump(), key, values, groups)
    elif (n := _as_number(obj)) is not None:
        values.append(n)
        groups.setdefault(key, []).append(n)


class Known:
    """The numbers of `results` and what may be derived from them, as sorted magnitudes."""

    def __init__(self, results: Any, extra: Iterable[float] = ()):
        values: list[float] = list(extra)
        groups: dict[tuple[str, str], list[float]] = {}
        _walk(results, ("", ""), values, groups)
        deltas, rel_pct, ratios = [], [], []
        for vs in groups.values():
            vs = list(dict.fromkeys(vs))[:MAX_GROUP]
            for a, b in itertools.permutations(vs, 2):
                deltas.append(a - b)
                if b != 0:
                    rel_pct.append(100 * (a - b) / b)
                    ratios.append(a / b)
        self.values = _sorted_abs(values)
        self.percent = _sorted_abs([v * 100 for v in values] + values + rel_pct + [d * 100 for d in deltas])
        self.plain = _sorted_abs(values + deltas)
        self.ratios = _sorted_abs(values + ratios)

    def matches(self, p: Printed) -> bool:
        pool = self.percent if p.percent else self.ratios if p.times else self.plain
        return _near(pool, abs(p.value), p.tol)


def _sorted_abs(xs: Iterable[float]) -> list[float]:
    return sorted({abs(x) for x in xs})


def _near(pool: list[float], x: float, tol: float) -> bool:
    i = bisect.bisect_left(pool, x - tol)
    return i < len(pool) and pool[i] <= x + tol


# ---------------------------------------------------------------- the check


def _exempt(p: Printed, text_before: str, allowed_ints: int) -> bool:
    if p.integer and not p.percent and not p.times and abs(p.value) <= allowed_ints:
        return True  # counts: "3 seeds", "Figure 2", "2 datasets"
    if _STRUCTURAL.search(text_before):
        return True  # Section 4.2, Table 3
    return p.integer and 1900 <= p.value <= 2099 and bool(_YEAR_BEFORE.search(text_before))


def _context(tex: str, p: Printed, width: int = 60) -> str:
    return " ".join(tex[max(0, p.start - width):p.end + width].split())


def check(
    tex: str, results: Any, *, allowed_ints: int = 20, extra: Iterable[float] = CONVENTIONAL
) -> FaithfulnessReport:
    """Every number in `tex` against every number in `results` (any JSON-like value).

    `allowed_ints`: non-negative integers up to this pass as counts. `extra`: further
    values a paper may print (by default the conventional 0.05, 0.01, 0.001, 95, 99, 100).
    """
    known = Known(results, extra)
    text = masked(tex)
    printed = printed_numbers(tex, text)
    bad = [
        BadNumber(text=p.text, value=p.value, context=_context(tex, p))
        for p in printed
        if not _exempt(p, text[max(0, p.start - 40):p.start], allowed_ints) and not known.matches(p)
    ]
    return FaithfulnessReport(ok=not bad, checked=len(printed), bad=bad)
