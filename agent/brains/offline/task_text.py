"""The template's `description` as source material for one run's paper.

The description is written for every scale and every declared dataset, and it defines the
metrics. A paper describes what its run did, so the description is cut into sentences and
sorted: sentences about another scale, or about datasets this run left out, are dropped (a
list after a colon keeps only the items this run used); sentences that define metrics are
left to the setup section, which lists the declared metrics; what remains is the task (one
sentence, for the introduction), the method (the others, for the method section) and what
the description says about this run's scale (for the setup section). No sentence is used
twice. Every piece is a substring of the description, so its numbers stay traceable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.template.contract import Template


@dataclass
class TaskText:
    lead: str = ""
    method: list[str] = field(default_factory=list)
    scale: list[str] = field(default_factory=list)


def split_top(text: str, seps: str) -> list[str]:
    """Split `text` at the regex `seps`, but never inside (), [] or {}."""
    return [part for part, _ in _split_keep(text, seps) if part]


def _split_keep(text: str, seps: str) -> list[tuple[str, str]]:
    """(part, the separator after it) at top level, parts stripped."""
    parts, depth, start = [], 0, 0
    for m in re.finditer(rf"[()\[\]{{}}]|{seps}", text):
        tok = m.group(0)
        if tok in "([{":
            depth += 1
        elif tok in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0:
            parts.append((text[start : m.start()].strip(), tok))
            start = m.end()
    parts.append((text[start:].strip(), ""))
    return parts


def _units(description: str) -> list[tuple[str, list[str]]]:
    """(sentence, bullets that follow it) in order; bullets are `- ` lines and their continuations."""
    units: list[tuple[str, list[str]]] = []
    prose: list[str] = []
    bullets: list[str] | None = None

    def flush() -> None:
        for s in split_top(" ".join(prose), r"(?<=[.!?])\s+(?=[A-Z`\"'(])"):
            units.append((s, []))
        prose.clear()

    for line in description.splitlines():
        stripped = line.strip()
        if re.match(r"[-*] ", stripped):
            if bullets is None:
                flush()
                if not units:
                    units.append(("", []))
                bullets = units[-1][1]
            bullets.append(stripped[2:].strip())
        elif not stripped:
            bullets = None
            flush()
        elif bullets is not None and line[:1].isspace():
            bullets[-1] += " " + stripped
        else:
            bullets = None
            prose.append(stripped)
    flush()
    return units


def _mentions(text: str, name: str) -> bool:
    words = {name, name.replace("_", " ")}
    return any(re.search(rf"(?<![\w]){re.escape(w)}(?![\w])", text, re.IGNORECASE) for w in words)


def _about_scale(clause: str, scales: list[str]) -> str | None:
    """The scale profile a clause is about: the first one it names next to the word `scale`."""
    if not re.search(r"\bscales?\b", clause, re.IGNORECASE):
        return None
    found = [
        (m.start(), s) for s in scales if (m := re.search(rf"\b{re.escape(s)}\b", clause, re.IGNORECASE))
    ]
    return min(found)[1] if found else None


def _item_datasets(item: str, names: list[str]) -> set[str]:
    """Datasets a list item is about: those named in parentheses if any, else those it names."""
    paren = {n for n in names if re.search(rf"\(\s*{re.escape(n)}\s*[,)]", item, re.IGNORECASE)}
    return paren or {n for n in names if _mentions(item, n)}


def _list_items(tail: str, names: list[str]) -> list[str]:
    """The items of a list such as `a ring (circle), two half circles (moons) and a spiral
    (spiral)` or `two_moons, checkerboard (uniform on 8 cells) and pinwheel`. A piece that names
    no dataset belongs to the item its dataset closes (first style: `rectangles and discs
    (shapes)`) or opens (second style), so a list item may itself contain `and`."""
    pieces = _split_keep(tail, r",\s+(?:and\s+|or\s+)?|\s+and\s+|\s+or\s+")
    closes = any(
        re.search(rf"\(\s*{re.escape(n)}\s*\)$", part, re.IGNORECASE) for part, _ in pieces for n in names
    )
    items: list[str] = []
    pending = ""
    for part, sep in pieces:
        if closes:
            pending += part
            if _item_datasets(part, names):
                items.append(pending)
                pending = ""
            else:
                pending += sep
        elif _item_datasets(part, names) or not items:
            items.append(part + sep)
        else:
            items[-1] += part + sep
    if pending and items:
        items[-1] += pending if items[-1].endswith(" ") else " " + pending
    elif pending:
        items.append(pending)
    return [re.sub(r"(?:,|\s+and|\s+or)?\s*$", "", i).strip() for i in items]


def _keep_datasets(sentence: str, run: list[str], declared: list[str]) -> str | None:
    """The sentence without the datasets this run left out, or None when that cannot be done:
    a list after a colon keeps the items about datasets that ran (or about none), then a
    parenthesis about a left-out dataset goes ("(S_4 for permutation)")."""
    left_out = [d for d in declared if d not in run]

    def about_left_out(text: str) -> bool:
        return any(_mentions(text, d) for d in left_out)

    if not about_left_out(sentence):
        return sentence
    head_tail = split_top(sentence, r":\s")
    if len(head_tail) == 2:
        head, tail = head_tail
        end = tail[-1] if tail[-1] in ".!?" else ""
        items = _list_items(tail.rstrip(".!?"), declared)
        kept = [i for i in items if not _item_datasets(i, declared) or _item_datasets(i, declared) & set(run)]
        if kept:
            listed = kept[0] if len(kept) == 1 else ", ".join(kept[:-1]) + " and " + kept[-1]
            sentence = f"{head}: {listed}{end}"
    sentence = re.sub(
        r"\s*\([^()]*\)",
        lambda m: (
            ""
            if about_left_out(m.group(0)) and not any(_mentions(m.group(0), d) for d in run)
            else m.group(0)
        ),
        sentence,
    )
    return None if about_left_out(sentence) else sentence


def task_text(template: Template, scale: str, datasets: list[str]) -> TaskText:
    """Sort the description's sentences into what the paper's sections may use."""
    metric_names = [m.name for m in template.metrics]
    scales = list(template.scale)
    out = TaskText()
    for sentence, bullets in _units(template.description):
        if any(_mentions(b, n) for b in bullets for n in metric_names) or sentence.endswith(":"):
            continue  # a list of metric definitions, or the lead-in of one
        for text in [sentence, *bullets]:
            if (
                not text
                or re.search(r"\bmetrics?\b", text, re.IGNORECASE)
                or any(_mentions(text, n) for n in metric_names)
            ):
                continue
            clauses = split_top(text, r";\s+")
            about = [_about_scale(c, scales) for c in clauses]
            mine = [c for c, s in zip(clauses, about, strict=True) if s == scale]
            general = [c for c, s in zip(clauses, about, strict=True) if s is None]
            for part, bucket in ((mine, out.scale), (general, None)):
                if not part:
                    continue
                joined = "; ".join(c.rstrip(".") for c in part) + "."
                kept = _keep_datasets(joined, datasets, template.datasets)
                if kept is None:
                    continue
                kept = kept[0].upper() + kept[1:]
                if bucket is not None:
                    bucket.append(kept)
                elif not out.lead:
                    out.lead = kept
                else:
                    out.method.append(kept)
    return out
