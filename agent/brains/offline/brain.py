"""The offline brain: narrow but real science inside a template's declared knobs, with no
key and no network. It is the default when no model is configured.

- Ideation: the template's seed ideas first, while the archive has not tested their knobs;
  then hypotheses about one knob, or the interaction of two, ranked so that knob sets the
  archive already tested come last and knobs next to high-scoring papers come first.
- Runs: a sweep over `Knob.candidates()` (a small grid for two knobs), written as the same
  flag and SEARCH/REPLACE edits an LLM would make; experiment.py itself covers the seeds.
  With `--search tree` its moves in the search tree are in `explore`.
- Writing and review live in `offline_writer` and `offline_reviewer`.

The strategy and the review rubric are documented in docs/offline_brain.md.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from collections.abc import Sequence
from typing import Any

from agent import models
from agent.brains.base import BrainInfo
from agent.brains.llm.summaries import notebook_facts
from agent.brains.offline import explore
from agent.brains.offline import reviewer as offline_reviewer
from agent.brains.offline import writer as offline_writer
from agent.brains.offline.writer import lower_first, plural
from agent.literature import LiteratureSearch
from agent.numbers import fmt_value
from agent.paper import bibtex
from agent.template.contract import Knob, Template
from agent.template.knobs import constant_edit, flag_text, run_settings, settings_label

DEFAULT_MAX_RUNS = 5  # the pipeline's --max-runs default; ideation plans for it
NIGHT_BUDGET_S = 3600  # worst-case smoke wall time per idea that ideation treats as feasible
# Knobs whose larger values cost more compute: sweeping them up risks smoke timeouts.
COSTLY = re.compile(r"width|hidden|size|layer|depth|step|iter|epoch|batch|embd|head|n_|num_|block|context")


def _stable_seed(*parts: Any) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _slug(text: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9_]", "_", text.lower())).strip("_") or "knob"


def _phrase(knob: Knob) -> str:
    """The knob's description as a noun phrase: first clause, no final period."""
    text = re.split(r"[.;:(]", knob.description, maxsplit=1)[0].strip() or knob.name.replace("_", " ")
    return lower_first(text)


def _better(template: Template) -> str:
    return "lower is better" if template.primary.direction == "minimize" else "higher is better"


# ---------------------------------------------------------------- the run plan of an idea


def _spread(values: list[Any], k: int) -> list[Any]:
    """`k` values spread evenly over `values` (all of them when k >= len)."""
    if k >= len(values):
        return list(values)
    if k <= 1:
        return values[len(values) // 2: len(values) // 2 + 1]
    return [values[round(i * (len(values) - 1) / (k - 1))] for i in range(k)]


def sweep(knobs: list[Knob], max_runs: int) -> list[dict[str, Any]]:
    """The settings to run, in order: one knob's candidates, or a small two-knob grid
    (each knob alone, then together) around the defaults, never more than `max_runs`."""
    if not knobs or max_runs < 1:
        return []
    if len(knobs) == 1:
        k = knobs[0]
        return [{k.name: v} for v in _spread(k.candidates(), max_runs)]
    a, b = knobs[:2]
    ca, cb = a.candidates(), b.candidates()
    # the largest, then most balanced, grid of ka x kb values with (ka+1)(kb+1)-1 runs <= max_runs
    fits = [(ka, kb) for ka, kb in itertools.product(range(1, len(ca) + 1), range(1, len(cb) + 1))
            if (ka + 1) * (kb + 1) - 1 <= max_runs]
    ka, kb = max(fits, key=lambda f: (f[0] * f[1], -abs(f[0] - f[1])), default=(1, 1))
    va, vb = _spread(ca, ka), _spread(cb, kb)
    grid = [{a.name: x, b.name: b.default} for x in va] + [{a.name: a.default, b.name: y} for y in vb]
    grid += [{a.name: x, b.name: y} for x in va for y in vb]
    return grid[:max_runs]


def plan_for(ctx_code: str, template: Template, settings: dict[str, Any], description: str) -> models.PlannedRun:
    """Flags for flag knobs; one edit per constant knob (even when unchanged, so the plan
    says every value it relies on: edits persist in the workdir across runs)."""
    args, edits = {}, []
    for name, value in settings.items():
        knob = template.knob(name)
        if knob.flag:
            args[knob.flag] = flag_text(knob, value)
        else:
            edits.append(constant_edit(ctx_code, knob, value))
    return models.PlannedRun(description=description, args=args, edits=edits, knobs=settings)


def idea_knobs(template: Template, idea: models.Idea) -> list[Knob]:
    """The template knobs an idea varies; for an idea that lists none (e.g. one written by an
    LLM), the knobs its text names, at most two."""
    names = {k.name for k in template.knobs}
    listed = [template.knob(n) for n in idea.knobs if n in names]
    if listed:
        return listed[:2]
    text = f"{idea.title} {idea.hypothesis} {idea.experiment}".lower()
    named = [k for k in template.knobs
             if re.search(rf"\b({re.escape(k.name)}|{re.escape(k.name.replace('_', ' '))})\b", text)]
    return named[:2]


# ---------------------------------------------------------------- ideation


def _archive_stats(ctx: models.IdeationContext) -> tuple[set[frozenset[str]], dict[str, int], dict[str, list[float]]]:
    """Knob sets already tested for this template, how often each knob was, and their scores."""
    tested: set[frozenset[str]] = set()
    count: dict[str, int] = {}
    scores: dict[str, list[float]] = {}
    for a in ctx.archive:
        if a.template != ctx.template.name or not a.knobs:
            continue
        tested.add(frozenset(a.knobs))
        for k in a.knobs:
            count[k] = count.get(k, 0) + 1
            if a.score is not None:
                scores.setdefault(k, []).append(a.score)
    return tested, count, scores


def _feasibility(template: Template, knobs: list[Knob]) -> int:
    runs = len(sweep(knobs, DEFAULT_MAX_RUNS))
    timeout = template.scale["smoke"].timeout_s
    score = 9 - (runs > 4)
    if (runs + 1) * timeout > NIGHT_BUDGET_S:
        score -= 2
    for k in knobs:  # sweeping a size-like knob upward makes runs slower than the baseline
        ups = [v for v in k.candidates() if isinstance(v, int | float) and not isinstance(v, bool)
               and isinstance(k.default, int | float) and v > k.default]
        if COSTLY.search(k.name) and ups:
            score -= 2
    return max(1, min(10, score))


def _interest(knobs: list[Knob], count: dict[str, int], scores: dict[str, list[float]]) -> int:
    score = 6
    if len(knobs) == 2:  # interactions are worth more once each main effect has been studied
        score += 1 if all(count.get(k.name) for k in knobs) else -3
    for k in knobs:
        if k.type in ("choice", "bool"):
            score += 1  # qualitative alternatives make a clearer story than a dial
        past = scores.get(k.name)
        if past:  # adjacent to past papers: follow the promising ones, avoid the weak
            mean = sum(past) / len(past)
            score += 2 if mean >= 6 else (-1 if mean < 4 else 0)
        elif not count.get(k.name):
            score += 1
    return max(1, min(10, score))


def _novelty(knobs: list[Knob], count: dict[str, int], tested: bool) -> int:
    if tested:
        return 1
    return max(2, min(10, 9 - 2 * sum(count.get(k.name, 0) for k in knobs)))


# Titles name knobs by name, not description: descriptions may start with a verb ("Share
# the embedding ..."), which no title pattern can absorb.
TITLES_ONE = (
    "Does the choice of {knob} matter? A sweep in {title}",
    "How {knob} shapes {metric} in {title}",
    "Is the default {knob} right? A seed-controlled sweep for {title}",
    "Sensitivity of {metric} to {knob} in {title}",
)
TITLES_TWO = (
    "Do {a} and {b} interact? A factorial study in {title}",
    "{A} meets {b}: joint effects on {metric}",
    "Are the effects of {a} and {b} additive in {title}?",
)


def _title(rng: random.Random, template: Template, knobs: list[Knob]) -> str:
    """A title from seeded phrasings; number-free, since titles are printed in the paper."""
    fields = dict(title=lower_first(template.title.rstrip(".")), metric=template.primary.name.replace("_", " "))
    if len(knobs) == 1:
        fields |= dict(knob=knobs[0].name.replace("_", " "))
        text = rng.choice(TITLES_ONE).format(**fields)
    else:
        a, b = knobs
        fields |= dict(a=a.name.replace("_", " "), b=b.name.replace("_", " "))
        fields["A"] = fields["a"][:1].upper() + fields["a"][1:]
        text = rng.choice(TITLES_TWO).format(**fields)
    return text[:1].upper() + text[1:]


def _values_text(knob: Knob) -> str:
    vals = [fmt_value(v) for v in knob.candidates()]
    return ", ".join(vals[:-1]) + (" or " if len(vals) > 1 else "") + vals[-1] if vals else "other values"


def _hypothesis(rng: random.Random, template: Template, knobs: list[Knob]) -> str:
    metric, better = template.primary.name, _better(template)
    if len(knobs) == 2:
        a, b = knobs
        return rng.choice((
            f"The effect of {a.name} ({_phrase(a)}) on {metric} ({better}) depends on {b.name} "
            f"({_phrase(b)}): changing both from their defaults differs from the sum of changing each alone.",
            f"The knobs {a.name} and {b.name} are not independent design choices: their joint change moves {metric} "
            f"({better}) by more than either change alone predicts.",
        ))
    k = knobs[0]
    if k.type in ("choice", "bool"):
        return rng.choice((
            f"Replacing the default {k.name}={fmt_value(k.default)} ({_phrase(k)}) by {_values_text(k)} "
            f"changes {metric} ({better}) by more than seed-to-seed noise on at least one dataset.",
            f"The choice of {_phrase(k)} ({k.name}) is not neutral: at least one alternative to "
            f"{fmt_value(k.default)} moves {metric} ({better}) beyond the spread across seeds.",
        ))
    shape = "non-monotonic, with an optimum inside the range" if k.log else "monotonic over the tested range"
    return rng.choice((
        f"We expect {metric} ({better}) to depend on {k.name} ({_phrase(k)}): moving it from {fmt_value(k.default)} to "
        f"{_values_text(k)} shows a dependence that is {shape}.",
        f"The default {k.name}={fmt_value(k.default)} is not the best choice for {metric} ({better}): "
        f"one of {_values_text(k)} does measurably better or worse across seeds.",
    ))


def _experiment(template: Template, knobs: list[Knob]) -> str:
    runs = sweep(knobs, DEFAULT_MAX_RUNS)
    how = "; ".join(f"{k.name} via {'flag ' + k.flag if k.flag else 'a code edit of ' + str(k.constant)}"
                    for k in knobs)
    design = "one run per value" if len(knobs) == 1 else "each knob alone and both together"
    return (f"Sweep {how}: {plural(len(runs), 'run')} ({design}), each over every seed and dataset of the scale, "
            f"compared with the baseline by Welch t-tests on {template.primary.name}.")


def _make_idea(rng: random.Random, template: Template, knobs: list[Knob], interest: int, novelty: int,
               feasibility: int) -> models.Idea:
    name = "_x_".join(_slug(k.name) for k in knobs) + ("_sweep" if len(knobs) == 1 else "")
    return models.Idea(
        name=name[:48].strip("_"), title=_title(rng, template, knobs), hypothesis=_hypothesis(rng, template, knobs),
        experiment=_experiment(template, knobs), interestingness=interest, feasibility=feasibility,
        novelty=novelty, knobs=[k.name for k in knobs],
    )


def _candidates(ctx: models.IdeationContext, rng: random.Random) -> list[models.Idea]:
    tested, count, scores = _archive_stats(ctx)
    knobs = ctx.template.knobs
    sets = [[k] for k in knobs] + [list(p) for p in itertools.combinations(knobs, 2)]
    return [_make_idea(rng, ctx.template, ks, _interest(ks, count, scores),
                       _novelty(ks, count, frozenset(k.name for k in ks) in tested),
                       _feasibility(ctx.template, ks)) for ks in sets]


def _merit(idea: models.Idea) -> int:
    """The ranking score: novelty counts double, since avoiding repeats is the point."""
    return idea.interestingness + 2 * idea.novelty + idea.feasibility


def _rank(ideas: list[models.Idea], rng: random.Random) -> list[models.Idea]:
    jitter = {i.name: rng.random() for i in ideas}  # seeded tie-breaks vary nights and seeds
    return sorted(ideas, key=lambda i: -(_merit(i) + jitter[i.name]))


def _unique_names(ideas: list[models.Idea], taken: set[str]) -> list[models.Idea]:
    """Valid snake_case names, unique tonight and against the archive (`_v2`, `_v3`, ...)."""
    out, names = [], set(taken)
    for idea in ideas:
        name = _slug(idea.name)[:48].strip("_") or "idea"
        base, n = name, 2
        while name in names:
            name = f"{base[:44]}_v{n}"
            n += 1
        names.add(name)
        out.append(idea.model_copy(update={"name": name}) if name != idea.name else idea)
    return out


def _reflect(ideas: list[models.Idea], taken: set[str]) -> list[models.Idea]:
    """One reflection round: drop repeats of a knob set, make names valid and unique, and
    push infeasible sweeps (too long for the smoke timeout) behind the feasible ones."""
    seen: set[frozenset[str]] = set()
    kept = [i for i in ideas if not (frozenset(i.knobs) in seen or seen.add(frozenset(i.knobs)))]
    return sorted(_unique_names(kept, taken), key=lambda i: i.feasibility < 4)  # stable sort


def _seeded(ctx: models.IdeationContext, tested: set[frozenset[str]]) -> list[models.Idea]:
    """The template author's seed ideas that the archive has not tested yet, restricted to
    declared knobs (at most two, as the sweep plans them); they come before any idea of ours."""
    known = {k.name for k in ctx.template.knobs}
    out, seen = [], set(tested)
    for idea in ctx.seed_ideas:
        knobs = [k for k in idea.knobs if k in known][:2]
        if knobs and frozenset(knobs) not in seen:
            seen.add(frozenset(knobs))
            out.append(idea if knobs == idea.knobs else idea.model_copy(update={"knobs": knobs}))
    return out


def _continuations(ctx: models.IdeationContext, rng: random.Random) -> list[models.Idea]:
    """One continuation per paper the researcher marked follow-up: from that paper's code, its
    knob studied together with the knob the archive knows least (two knobs at most, as the
    sweep plans them), or, for a two-knob paper, the same pair again at this night's scale."""
    tested, count, _ = _archive_stats(ctx)
    known = {k.name: k for k in ctx.template.knobs}
    out = []
    for past in ctx.follow_ups:
        base = [known[k] for k in past.knobs if k in known][:2]
        if not base:
            continue
        if len(base) == 1:
            fresh = [k for k in ctx.template.knobs if k.name != base[0].name
                     and frozenset((base[0].name, k.name)) not in tested]
            base += sorted(fresh, key=lambda k: (count.get(k.name, 0), k.name))[:1]
        why = f" The researcher's note on it: \u201c{past.note.strip()}\u201d." if past.note.strip() else ""
        idea = _make_idea(rng, ctx.template, base, interest=9, novelty=7, feasibility=_feasibility(ctx.template, base))
        out.append(idea.model_copy(update={
            "name": f"{_slug(past.name)[:40]}_more",
            "title": f"Following up {past.title.rstrip('.?!')}",
            "experiment": f"Continue the paper {past.paper_id} from its final code. " + idea.experiment + why,
            "continues": past.paper_id,
        }))
    return out


def _pick(ranked: list[models.Idea], n: int, chosen: list[models.Idea] | None = None) -> list[models.Idea]:
    """Greedy choice of up to `n` ideas after those already `chosen`: untested knob sets only,
    each knob already picked tonight costing 2 points of merit so that one night covers more of
    the space."""
    chosen = list(chosen or [])
    taken = {frozenset(i.knobs) for i in chosen}
    fresh = [i for i in ranked if i.novelty > 1 and frozenset(i.knobs) not in taken]
    while fresh and len(chosen) < n:
        used = {k for i in chosen for k in i.knobs}
        nxt = max(fresh, key=lambda i: (_merit(i) - 2 * sum(k in used for k in i.knobs), -fresh.index(i)))
        chosen.append(nxt)
        fresh.remove(nxt)
    for idea in ranked:  # everything is tested: replicate the least-explored sets
        if len(chosen) >= n:
            break
        if idea not in chosen:
            base = "_x_".join(_slug(k) for k in idea.knobs)[:38]
            chosen.append(idea.model_copy(update={"name": f"{base}_replicate", "title": "Replication: " + idea.title}))
    return chosen


def judge_novelty(idea: models.Idea, hits: list[models.LiteratureHit]) -> models.NoveltyDecision:
    """Not novel when an archived paper varied exactly this knob set; else novel, naming the
    closest hit."""
    queries = [idea.title, " ".join(k.replace("_", " ") for k in idea.knobs)]
    mine = set(idea.knobs)
    for hit in hits:
        if hit.source == "archive" and mine and set(hit.knobs) == mine:
            return models.NoveltyDecision(novel=False, queries=queries, papers=[hit],
                                   reason=f"the archive already holds '{hit.title}', which varied the same "
                                          f"knob set ({', '.join(sorted(mine))}).")
    close = [h for h in hits if h.score >= 0.8]
    why = (f"no archived paper varied exactly {', '.join(sorted(mine)) or 'these knobs'}"
           + (f"; the closest hit, '{close[0].title}' ({close[0].source}), differs in what it varied"
              if close else "") + ".")
    return models.NoveltyDecision(novel=True, reason=why[0].upper() + why[1:], queries=queries, papers=close[:1])


# ---------------------------------------------------------------- the brain


class OfflineBrain:
    """Implements `agent.brains.base.Brain` without a language model; deterministic per seed."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.info = BrainInfo(kind="offline", model="offline", review_scope=offline_reviewer.SCOPE)

    def _rng(self, *parts: Any) -> random.Random:
        return random.Random(_stable_seed(self.seed, *parts))

    # -- ideas

    def ideas(self, ctx: models.IdeationContext) -> list[models.Idea]:
        archive_key = sorted((a.template, a.name, tuple(a.knobs), str(a.score)) for a in ctx.archive)
        rng = self._rng("ideas", ctx.template.name, archive_key)
        taken = {a.name for a in ctx.archive if a.template == ctx.template.name}
        # The researcher's follow-ups first, then the template author's seed ideas, then ours.
        first = (_continuations(ctx, rng) + _seeded(ctx, _archive_stats(ctx)[0]))[: ctx.num_ideas]
        ideas = _rank(_candidates(ctx, rng), rng)
        for _ in range(max(1, ctx.reflections)):
            ideas = _reflect(ideas, taken | {i.name for i in first})
        return _unique_names(_pick(ideas, ctx.num_ideas, chosen=first), taken)

    def novelty(self, idea: models.Idea, search: LiteratureSearch, rounds: int) -> models.NoveltyDecision:
        """Judged from the fixed queries' evidence: it writes no queries of its own."""
        return judge_novelty(idea, search.gather().hits)

    # -- experiments

    def _plan(self, ctx: models.ExperimentContext) -> list[dict[str, Any]]:
        return sweep(idea_knobs(ctx.template, ctx.idea), ctx.max_runs)

    def _code(self, ctx: models.ExperimentContext) -> str:
        if ctx.code:
            return ctx.code
        path = ctx.template.path / "experiment.py"
        return path.read_text() if path.is_file() else ""

    def next_run(self, ctx: models.ExperimentContext) -> models.PlannedRun | None:
        if len(ctx.history) >= ctx.max_runs:
            return None
        done = [run_settings(ctx.template, r.planned) for r in ctx.history]
        plan = self._plan(ctx)
        for i, settings in enumerate(plan, 1):
            if settings in done:
                continue
            defaults = ", ".join(f"{k}={fmt_value(ctx.template.knob(k).default)}" for k in settings)
            desc = f"Sweep {i}/{len(plan)}: {settings_label(settings)} (baseline {defaults})."
            return plan_for(self._code(ctx), ctx.template, settings, desc)
        return None

    def fix_run(self, ctx: models.ExperimentContext, failed: models.RunRecord, error_tail: str) -> models.PlannedRun:
        """A refused edit is re-derived from the current code. A crash or timeout has no fix
        within the knob's declared values, so the same plan is retried (the pipeline bounds
        the attempts) rather than pretending to repair it."""
        text = f"{failed.error or ''}\n{error_tail}".lower()
        if "refused" in text or "search text" in text:
            settings = run_settings(ctx.template, failed.planned)
            if settings:
                return plan_for(self._code(ctx), ctx.template, settings, failed.planned.description)
        return failed.planned

    def run_notes(self, ctx: models.ExperimentContext, run: models.RunRecord) -> str:
        """The facts of the run; the analysis comes after all runs."""
        return notebook_facts(run)

    def expand(self, ctx: models.ExpandContext) -> models.Expansion | None:
        """A real move in the declared knob space (see agent.brains.offline.explore)."""
        return explore.expand(ctx, idea_knobs(ctx.template, ctx.idea))

    # -- figures

    def plot_plan(self, ctx: models.PaperContext) -> models.PlotPlan:
        knobs = idea_knobs(ctx.template, ctx.idea)
        defaults = settings_label({k.name: k.default for k in knobs})
        labels = {"run_0": f"Baseline ({defaults})" if defaults else "Baseline"}
        for r in ctx.runs:
            if r.ok:
                label = settings_label(run_settings(ctx.template, r.planned)) or r.name
                labels[r.name] = label if label not in labels.values() else f"{label} ({r.name})"
        return models.PlotPlan(labels=labels)

    def fix_plot(self, ctx: models.PaperContext, code: str, problem: str) -> list[models.Edit]:
        return []  # it never edits plot.py, so the template's own plot.py is what failed

    def describe_figures(self, ctx: models.PaperContext, files: list[str]) -> list[models.FigureNote]:
        return offline_writer.describe_figures(ctx, files)

    def critique_figures(self, ctx: models.PaperContext, figures: list[models.FigureImage]) -> list[models.FigureCritique]:
        return []  # it cannot see images

    # -- writing

    def write_section(self, ctx: models.PaperContext, section: str, written: dict[str, str]) -> str:
        return offline_writer.write_section(ctx, section, self._rng("write", ctx.idea.name, section))

    def citations(self, ctx: models.PaperContext, sections: dict[str, str], search: LiteratureSearch,
                  rounds: int) -> models.CitedDraft:
        """Before writing: every literature hit found so far (the writer cites each key it is
        given); over a draft: nothing more, since it writes no queries."""
        if sections:
            return models.CitedDraft(sections=sections, citations=[])
        out, seen = [], set(ctx.bib_keys)
        for hit in ctx.literature:
            entry = next(iter(bibtex.parse(hit.bibtex)), None)
            if entry and entry.key not in seen:
                seen.add(entry.key)
                out.append(models.Citation(key=entry.key, bibtex=hit.bibtex.strip(), note=hit.title))
        return models.CitedDraft(sections={}, citations=out)

    def polish(self, ctx: models.PaperContext, sections: dict[str, str]) -> dict[str, str]:
        return sections  # its sections are written from one plan: nothing to reconcile

    def fix_latex(self, tex: str, log_tail: str, *, idea: str = "") -> list[models.Edit]:
        return offline_writer.fix_latex(tex, log_tail)

    def fix_numbers(self, ctx: models.PaperContext, section: str, text: str, bad: list[str]) -> str:
        fresh = self.write_section(ctx, section, {})
        return offline_writer.drop_numbers(fresh, bad)

    # -- review

    def review(self, paper_text: str, figures: Sequence[models.PaperFigure] = (), *, idea: str = "") -> models.Review:
        return offline_reviewer.review(paper_text)  # the rubric reads the text; captions are in it

    def meta_review(self, reviews: list[models.Review], *, idea: str = "", paper_text: str = "",
                    reflections: int = 1) -> models.Review:
        return offline_reviewer.meta_review(reviews)

    def revise(self, ctx: models.PaperContext, sections: dict[str, str], review: models.Review) -> dict[str, str]:
        return offline_writer.revise(ctx, sections, review)
