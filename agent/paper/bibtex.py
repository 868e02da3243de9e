"""BibTeX on bibtexparser (v2): list a template's references, check which keys exist, and
synthesize entries for search results that came without one.

BibTeX from an LLM or a search API is hostile. bibtexparser's splitter never raises on
junk (it turns what it cannot read into failed blocks); on top of it an entry is kept only
with a plain key and type, so a half-written bib still yields its good entries and a
malformed one is dropped, never fatal. `@comment`, `@preamble` and `@string` are skipped;
macros are not expanded (a `nips # " 33"` venue reads as `nips 33`).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field

import bibtexparser
from bibtexparser.library import Library
from bibtexparser.middlewares.names import (
    InvalidNameError,
    parse_single_name_into_parts,
    split_multiple_persons_names,
)
from bibtexparser.model import DuplicateFieldKeyBlock, Entry, Field
from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

log = logging.getLogger(__name__)

_KEY_STOP = {
    "a", "an", "the", "on", "of", "for", "in", "to", "and", "with", "via", "by", "from",
    "towards", "toward", "is", "are", "at", "as", "into", "using", "what", "how", "why", "do", "does",
}
_TYPE = re.compile(r"[A-Za-z]+")
_BAD_KEY = re.compile(r"[\s{}\"]")

_latex_db = get_default_latex_context_db()
_latex_db.add_context_category("bib", prepend=True, macros=[MacroTextSpec("url", simplify_repl="%(1)s")])
_TO_TEXT = LatexNodes2Text(latex_context=_latex_db, math_mode="text", strict_latex_spaces=False)

_FORMAT = bibtexparser.BibtexFormat()
_FORMAT.indent = "  "


@dataclass
class BibEntry:
    """One parsed entry. `fields` maps lower-case field names to their text as written, with
    the outer braces or quotes removed and `#` concatenations joined."""

    type: str
    key: str
    fields: dict[str, str] = field(default_factory=dict)
    raw: str = ""

    def text(self, name: str) -> str:
        """A field as plain text: braces, accents commands and extra spaces removed."""
        return plain(self.fields.get(name, ""))

    @property
    def authors(self) -> list[str]:
        return split_authors(self.fields.get("author", ""))

    @property
    def year(self) -> int | None:
        m = re.search(r"\d{4}", self.fields.get("year", ""))
        return int(m.group()) if m else None


def parse(text: str) -> list[BibEntry]:
    """Every well-formed entry of a .bib file, in file order."""
    library = bibtexparser.parse_string(text, parse_stack=[])  # values as written; `_value` reads them
    entries: list[BibEntry] = []
    for block in library.blocks:
        if isinstance(block, DuplicateFieldKeyBlock):
            block = block.ignore_error_block  # a repeated field is no reason to lose the entry
        if not isinstance(block, Entry) or not _TYPE.fullmatch(block.entry_type):
            continue
        key = block.key.strip()
        if not key or _BAD_KEY.search(key):
            continue
        fields = {f.key.lower(): _value(f.value) for f in block.fields}  # a repeated field: the last wins
        entries.append(BibEntry(block.entry_type.lower(), key, fields, block.raw.strip()))
    return entries


def _value(raw: str) -> str:
    """`{a} # "b" # c` -> `abc`: bibtexparser (2.1) keeps a concatenation as written, so its
    parts are split at top-level `#` here and each loses its braces or quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, c in enumerate(raw):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == '"' and depth == 0:
            quoted = not quoted
        elif c == "#" and depth == 0 and not quoted:
            parts.append(raw[start:i])
            start = i + 1
    parts.append(raw[start:])
    out = []
    for part in (p.strip() for p in parts):
        if len(part) >= 2 and (part[0], part[-1]) in (("{", "}"), ('"', '"')):
            part = part[1:-1]
        out.append(part)
    return "".join(out)


# ---------------------------------------------------------------- text helpers


def _fold(text: str) -> str:
    """Accented letters as their base letter (`Schölkopf` -> `Scholkopf`), spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def plain(value: str) -> str:
    """BibTeX field text as a reader would see it: `{\\'E}cole~{N}ormale` -> `Ecole Normale`."""
    try:
        text = _TO_TEXT.latex_to_text(value)
    except (RecursionError, ValueError, IndexError, KeyError) as e:  # pylatexenc recurses per brace level
        log.debug("bibtex: %s in LaTeX text; braces and commands dropped instead", type(e).__name__)
        text = re.sub(r"\\[A-Za-z]+\s*|[{}\\]", "", value)
    return _fold(text)


def split_authors(value: str) -> list[str]:
    """`Ho, Jonathan and Ajay Jain` -> `['Jonathan Ho', 'Ajay Jain']`."""
    names = []
    for person in split_multiple_persons_names(value):
        try:
            name = parse_single_name_into_parts(person, strict=False).merge_first_name_first
        except InvalidNameError:
            name = person
        if name := plain(name):
            names.append(name)
    return names


def _ascii_word(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode().lower())


def make_key(authors: list[str], year: int | None, title: str) -> str:
    """A stable citation key: first author's last name, year, first significant title word
    (`smith2020diffusion`). Same inputs, same key."""
    last = _ascii_word(authors[0].replace(",", " ").split()[-1]) if authors and authors[0].split() else ""
    words = [_ascii_word(w) for w in re.split(r"[\s\-:/]+", title)]
    first = next((w for w in words if len(w) > 2 and w[0].isalpha() and w not in _KEY_STOP), "")
    key = f"{last or 'anon'}{year or ''}{first}"
    return key if key[0].isalpha() else f"ref{key}"


def _escape(value: str) -> str:
    # Inside {...} only unbalanced braces and TeX specials can break a bib file.
    s = value.replace("{", "").replace("}", "").replace("\\", "")
    return re.sub(r"([&%$#_])", r"\\\1", " ".join(s.split()))


def synthesize(
    *, title: str, authors: list[str], year: int | None, venue: str = "", key: str | None = None,
    doi: str = "", url: str = "",
) -> str:
    """A valid BibTeX entry: `@article` when there is a venue, else `@misc`."""
    fields = [Field("title", f"{{{_escape(title)}}}")]  # double braces keep the title's capitals
    if authors:
        fields.append(Field("author", " and ".join(_escape(a) for a in authors)))
    if year:
        fields.append(Field("year", str(year)))
    if venue:
        fields.append(Field("journal", _escape(venue)))
    if doi:
        fields.append(Field("doi", _escape(doi)))
    if url and not doi:
        fields.append(Field("howpublished", f"\\url{{{url}}}"))
    entry = Entry("article" if venue else "misc", key or make_key(authors, year, title), fields)
    return bibtexparser.write_string(Library([entry]), bibtex_format=_FORMAT).strip()


def rekey(bibtex: str, key: str) -> str:
    """The same entry under another key (to make keys unique in one bibliography)."""
    return re.sub(r"^(\s*@\s*\w+\s*[{(])\s*[^,\s]+\s*,", lambda m: f"{m.group(1)}{key},", bibtex, count=1)
