"""Compact text views of what a brain is given, so prompts stay small.

The archive becomes its top entries (title, knobs, score), results become mean ± stderr per
metric, logs become tails, literature becomes short abstracts. Numbers a paper may print
keep 6 significant digits (PAPER_DIGITS), so that the model's own rounding to 2-3 digits
agrees with the faithfulness check's rounding of the true value; elsewhere 4 suffice.
"""

from __future__ import annotations

import json
import math
from typing import Any

from agent.models import ArchivedIdea, Idea, LiteratureHit, RunRecord
from agent.template.contract import Knob, Template

ARCHIVE_TOP = 15
HITS_TOP = 10
ABSTRACT_CHARS = 300
PAPER_DIGITS = 6


def sig(x: float, digits: int = 4) -> float | int:
    """`x` rounded to `digits` significant digits (ints stay ints)."""
    if isinstance(x, bool) or isinstance(x, int) or not math.isfinite(x) or x == 0:
        return x
    return float(f"{x:.{digits}g}")


def rounded(obj: Any, digits: int = 4) -> Any:
    """A copy of a JSON-like value with every float rounded to `digits` significant digits."""
    if isinstance(obj, float):
        return sig(obj, digits)
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [rounded(v, digits) for v in obj]
    return obj


def compact_json(obj: Any, digits: int = 4) -> str:
    return json.dumps(rounded(obj, digits), separators=(",", ":"), ensure_ascii=False, default=str)


def tail(text: str, chars: int) -> str:
    return text if len(text) <= chars else "..." + text[-chars:]


# ------------------------------------------------------------------ template


def knob_line(k: Knob) -> str:
    space = f"values {k.values}" if k.values is not None else f"range {list(k.range or ())}{' log' if k.log else ''}"
    via = f"flag {k.flag}" if k.flag else f"constant {k.constant} (code edit)"
    return f"- {k.name} ({k.type}; {space}; default {k.default!r}; {via}): {k.description}"


def knobs_table(tpl: Template) -> str:
    return "\n".join(knob_line(k) for k in tpl.knobs)


def metrics_line(tpl: Template) -> str:
    return "; ".join(
        f"{m.name} ({m.direction}{', primary' if m.primary else ''}){': ' + m.description if m.description else ''}"
        for m in tpl.metrics
    )


def template_brief(tpl: Template, scale: str | None = None) -> str:
    datasets = tpl.datasets_for(scale) if scale else tpl.datasets
    seeds = tpl.seeds_for(scale) if scale else tpl.seeds
    return (
        f"TEMPLATE {tpl.name}: {tpl.title}\n{tpl.description.strip()}\n"
        f"METRICS: {metrics_line(tpl)}\nDATASETS: {', '.join(datasets)}; SEEDS: {seeds}\n"
        f"KNOBS:\n{knobs_table(tpl)}"
    )


# ------------------------------------------------------------------ ideas and archive


def idea_brief(idea: Idea) -> str:
    knobs = f" Knobs: {', '.join(idea.knobs)}." if idea.knobs else ""
    return f"{idea.title} [{idea.name}]\nHypothesis: {idea.hypothesis}\nExperiment: {idea.experiment}{knobs}"


def archive_brief(archive: list[ArchivedIdea], template: str, top: int = ARCHIVE_TOP) -> str:
    """This template's archived ideas, best first, one line each. The researcher's own score
    outranks the automated review's, and their note and mark come with it."""
    mine = [a for a in archive if a.template == template]
    if not mine:
        return "(empty: nothing tested yet)"
    mine.sort(key=lambda a: a.best_score if a.best_score is not None else -1.0, reverse=True)
    lines = [f"- {a.name}: {a.title} | knobs {','.join(a.knobs) or '-'} | {_scores(a)}" for a in mine[:top]]
    if len(mine) > top:
        lines.append(f"(+{len(mine) - top} more, lower scored: {', '.join(a.name for a in mine[top:])})")
    return "\n".join(lines)


def _scores(a: ArchivedIdea) -> str:
    review = f"review {a.score if a.score is not None else '?'} {a.decision or ''}".rstrip()
    if a.human_score is None:
        return review
    mark = {"follow-up": "; marked follow-up", "discard": "; DISCARDED, never propose again"}.get(a.mark or "", "")
    note = f'; note: "{tail(a.note, 300)}"' if a.note.strip() else ""
    return f"researcher {a.human_score:g}/10{mark}{note} ({review})"


def follow_ups_brief(follow_ups: list[ArchivedIdea]) -> str:
    """The papers to continue first, with what the researcher said of them."""
    if not follow_ups:
        return "(none)"
    return "\n".join(f"- paper {a.paper_id}: {a.name}: {a.title} | knobs {','.join(a.knobs) or '-'} | "
                     f"{_scores(a)} | hypothesis: {tail(a.hypothesis, 300)}" for a in follow_ups)


def hits_brief(hits: list[LiteratureHit], top: int = HITS_TOP, chars: int = ABSTRACT_CHARS) -> str:
    if not hits:
        return "(none found)"
    best = sorted(hits, key=lambda h: h.score, reverse=True)[:top]
    out = []
    for i, h in enumerate(best, 1):
        meta = ", ".join(str(x) for x in (h.year, h.venue, h.source) if x)
        abstract = h.abstract[:chars] + ("..." if len(h.abstract) > chars else "")
        knobs = f" [varied: {', '.join(h.knobs)}]" if h.knobs else ""  # what a novelty judge compares
        out.append(f"[{i}] {h.title} ({meta}) {abstract}".rstrip() + knobs)
    return "\n".join(out)


# ------------------------------------------------------------------ results


def results_brief(results: dict[str, Any] | None, digits: int = 4) -> str:
    """`final_info.json` as `dataset: metric=mean±stderr, ...` (per-seed values dropped)."""
    if not results:
        return "(no results)"
    parts = []
    for ds, block in results.items():
        if not isinstance(block, dict):
            continue
        means, errs = block.get("means", {}), block.get("stderrs", {})
        cells = [
            f"{m}={sig(v, digits)}±{sig(errs.get(m, 0.0), digits)}" for m, v in means.items() if isinstance(v, int | float)
        ]
        parts.append(f"{ds}: {', '.join(cells)}")
    return "; ".join(parts)


def run_line(r: RunRecord) -> str:
    args = " ".join(f"{k} {v}" for k, v in r.planned.args.items()) or "-"
    edits = f"; {len(r.planned.edits)} code edit(s)" if r.planned.edits else ""
    head = f"- {r.name}: {r.planned.description} | args {args}{edits}"
    if r.ok:
        return f"{head} | {results_brief(r.results)}"
    first = (r.error or "failed").strip().splitlines()
    return f"{head} | FAILED after {r.fixes} fix(es): {first[-1][:200] if first else 'failed'}"


def history_brief(history: list[RunRecord]) -> str:
    return "\n".join(run_line(r) for r in history) or "(none yet)"


def edits_brief(history: list[RunRecord], chars: int = 600) -> str:
    """The code changes of successful runs, as short SEARCH -> REPLACE excerpts."""
    out = []
    for r in history:
        for e in r.planned.edits if r.ok else []:
            out.append(f"{r.name} {e.path}:\n- {e.search.strip()[:chars]}\n+ {e.replace.strip()[:chars]}")
    return "\n".join(out) or "(no code edits: runs differ by flags only)"


# In a comparison: the baseline summary it repeats, and the absolute interval of the change where
# the relative one (the one papers print) is there.
_REPEATED = {"baseline"}
_ABSOLUTE_CI = {"delta_ci_low", "delta_ci_high"}


def _prune(obj: Any) -> Any:
    """Drop None values and what a comparison repeats (see above)."""
    if isinstance(obj, dict):
        drop = set()
        if "delta" in obj:
            drop = _REPEATED | (_ABSOLUTE_CI if obj.get("delta_pct_ci_low") is not None else set())
        return {k: _prune(v) for k, v in obj.items() if v is not None and k not in drop}
    if isinstance(obj, list):
        return [_prune(v) for v in obj]
    return obj


def analysis_brief(analysis: dict[str, Any]) -> str:
    """`agent.analysis` output as compact JSON: no Nones, no repeated baselines, no template
    description (the prompt has it), 6 significant digits."""
    if not analysis:
        return "(none)"
    slim = _prune(analysis)
    if isinstance(slim.get("setup"), dict):
        slim["setup"] = {k: v for k, v in slim["setup"].items() if k not in ("description", "title")}
    return compact_json(slim, PAPER_DIGITS)
