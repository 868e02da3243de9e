"""A small, forgiving BibTeX reader and writer: enough to list a template's references,
check which keys exist, and synthesize entries for search results that came without one.

It reads `@type{key, field = {value} | "value" | number | macro # ..., ...}` with nested
braces, skips `@comment`, `@preamble` and `@string`, and drops a malformed entry instead
of failing on the whole file (a half-written bib should still yield its good entries).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

_SKIPPED_TYPES = {"comment", "preamble", "string"}
_KEY_STOP = {
    "a", "an", "the", "on", "of", "for", "in", "to", "and", "with", "via", "by", "from",
    "towards", "toward", "is", "are", "at", "as", "into", "using", "what", "how", "why", "do", "does",
}


@dataclass
class BibEntry:
    """One parsed entry. `fields` maps lower-case field names to their raw (braced) text."""

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


class _Malformed(Exception):
    pass


def parse(text: str) -> list[BibEntry]:
    """Every well-formed entry of a .bib file, in file order."""
    entries: list[BibEntry] = []
    pos = 0
    while (at := text.find("@", pos)) != -1:
        try:
            entry, pos = _entry_at(text, at)
        except _Malformed:
            pos = at + 1
            continue
        if entry is not None:
            entries.append(entry)
    return entries


def _entry_at(text: str, at: int) -> tuple[BibEntry | None, int]:
    m = re.compile(r"@\s*([A-Za-z]+)\s*([{(])").match(text, at)
    if not m:
        raise _Malformed
    kind, opener = m.group(1).lower(), m.group(2)
    closer = "}" if opener == "{" else ")"
    end = _matching(text, m.end() - 1, opener, closer)
    if kind in _SKIPPED_TYPES:
        return None, end + 1
    body = text[m.end():end]
    key, _, rest = body.partition(",")
    key = key.strip()
    if not key or re.search(r"[\s{}\"]", key):
        raise _Malformed
    return BibEntry(kind, key, _fields(rest), text[at:end + 1]), end + 1


def _matching(text: str, start: int, opener: str, closer: str) -> int:
    """Index of the bracket closing `text[start]`, counting nested braces."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        i += 1
        if c == "\\":
            i += 1  # an escaped brace or paren does not nest
            continue
        if c == "{" or (c == opener and opener == "("):
            depth += 1
        elif c == "}" or (c == closer and closer == ")"):
            depth -= 1
            if depth == 0:
                return i - 1
            if depth < 0:
                break
    raise _Malformed


def _fields(body: str) -> dict[str, str]:
    out: dict[str, str] = {}
    i, n = 0, len(body)
    name_re = re.compile(r"\s*,?\s*([A-Za-z][\w\-:.+]*)\s*=\s*")
    while i < n:
        m = name_re.match(body, i)
        if not m:
            break
        name, i = m.group(1).lower(), m.end()
        parts: list[str] = []
        while i < n:
            i, part = _value_part(body, i)
            parts.append(part)
            j = _skip_space(body, i)
            if j < n and body[j] == "#":
                i = _skip_space(body, j + 1)
                continue
            i = j
            break
        out[name] = "".join(parts)  # `#` concatenates
    return out


def _value_part(body: str, i: int) -> tuple[int, str]:
    c = body[i]
    if c == "{":
        end = _matching(body, i, "{", "}")
        return end + 1, body[i + 1:end]
    if c == '"':
        depth, j = 0, i + 1
        while j < len(body):
            if body[j] == "{":
                depth += 1
            elif body[j] == "}":
                depth -= 1
            elif body[j] == '"' and depth == 0 and body[j - 1] != "\\":
                return j + 1, body[i + 1:j]
            j += 1
        raise _Malformed
    m = re.compile(r"[\w\-:.+/]+").match(body, i)
    if not m:
        raise _Malformed
    return m.end(), m.group()


def _skip_space(s: str, i: int) -> int:
    while i < len(s) and s[i].isspace():
        i += 1
    return i


# ---------------------------------------------------------------- text helpers


def plain(value: str) -> str:
    """BibTeX field text as a reader would see it: `{\\'E}cole~{N}ormale` -> `Ecole Normale`."""
    s = re.sub(r"\\(?:textit|textbf|emph|textsc|texttt|mathrm|url)\b\s*", "", value)
    s = re.sub(r"\\[`'^\"~=.]\s*\{?(\w)\}?", r"\1", s)  # accents keep their letter
    s = re.sub(r"\\[uvHtcdbr](?:\s+|\{)(\w)\}?", r"\1", s)
    s = re.sub(r"\\(?:[A-Za-z]+)\s*", "", s)  # other commands (\\em, \\it, ...) carry no text
    s = re.sub(r"\\([&%$#_])", r"\1", s).replace("~", " ").replace("{", "").replace("}", "")
    return " ".join(s.split())


def split_authors(value: str) -> list[str]:
    """`Ho, Jonathan and Ajay Jain` -> `['Jonathan Ho', 'Ajay Jain']`."""
    names = []
    for part in re.split(r"\s+and\s+", plain(value)):
        part = part.strip()
        if not part:
            continue
        if "," in part:
            last, _, first = part.partition(",")
            part = f"{first.strip()} {last.strip()}".strip()
        names.append(part)
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
    key = key or make_key(authors, year, title)
    lines = [f"  title = {{{{{_escape(title)}}}}}"]  # double braces keep the title's capitals
    if authors:
        lines.append(f"  author = {{{' and '.join(_escape(a) for a in authors)}}}")
    if year:
        lines.append(f"  year = {{{year}}}")
    if venue:
        lines.append(f"  journal = {{{_escape(venue)}}}")
    if doi:
        lines.append(f"  doi = {{{_escape(doi)}}}")
    if url and not doi:
        lines.append(f"  howpublished = {{\\url{{{url}}}}}")
    kind = "article" if venue else "misc"
    return f"@{kind}{{{key},\n" + ",\n".join(lines) + "\n}"


def rekey(bibtex: str, key: str) -> str:
    """The same entry under another key (to make keys unique in one bibliography)."""
    return re.sub(r"^(\s*@\s*\w+\s*[{(])\s*[^,\s]+\s*,", lambda m: f"{m.group(1)}{key},", bibtex, count=1)
