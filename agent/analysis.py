"""Statistics of one idea's runs against its baseline: everything a paper may claim.

`analyze()` turns the baseline (`run_0/final_info.json`) and the idea's runs into an
`Analysis`. For every ok run, dataset and metric it gives the mean, standard error, 95 %
confidence interval (t distribution), the change against the baseline (absolute and
relative, each with its Welch 95 % interval), a Welch t-test, Cohen's d and Hedges' g.

Verdicts follow the metric's direction and the Holm–Bonferroni correction: the comparisons
on one metric (every run on every dataset) form one family, and a comparison is `better` or
`worse` only when its Holm-adjusted p-value is below alpha. A metric declared with
direction `none` is reported, never judged; a comparison with zero variance on both sides
has no test and is `untestable`, counted neither way. Per dataset `best` says what the
statistics let a paper call best, and for the whole idea the verdict is "effect", "null",
"mixed" or "inconclusive", with plain findings.

`Analysis.model_dump()` is JSON-safe (no NaN: undefined statistics are `None`) and is
archived in results.json. Papers print its numbers through `agent.numbers.fmt`.
`analyze()` is a pure function of (template, baseline, runs), so confirmatory runs on fresh
seeds can be analysed the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field, ValidationError, model_validator
from scipy import stats

from agent.models import PaperContext, RunRecord
from agent.numbers import fmt, numbers_in
from agent.template.contract import Direction, Template
from agent.template.knobs import run_settings, settings_label

ALPHA = 0.05
CI_LEVEL = 95

Verdict = Literal["better", "worse", "no_significant_difference", "untestable", "not_judged"]
JUDGED = ("better", "worse")  # the verdicts a claim may rest on

# ---------------------------------------------------------------- statistics of samples


class Summary(BaseModel):
    """Mean of per-seed values with its uncertainty (None where n < 2 makes it undefined)."""

    n: int
    mean: float
    std: float | None = None
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


def summarize(values: list[float]) -> Summary:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Summary(n=n, mean=mean)
    # identical values have exactly zero spread (summing floats would leave a residue)
    std = 0.0 if min(values) == max(values) else math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    se = std / math.sqrt(n)
    half = float(stats.t.ppf(1 - (1 - CI_LEVEL / 100) / 2, n - 1)) * se
    return Summary(n=n, mean=mean, std=std, stderr=se, ci_low=mean - half, ci_high=mean + half)


class Comparison(BaseModel):
    """One run against the baseline on one dataset and metric."""

    metric: str
    direction: Direction
    run: Summary
    baseline: Summary
    delta: float = Field(description="run mean - baseline mean")
    delta_pct: float | None = Field(description="delta relative to |baseline mean|, in %")
    delta_ci_low: float | None = Field(default=None, description="Welch 95 % interval of delta")
    delta_ci_high: float | None = None
    delta_pct_ci_low: float | None = Field(default=None, description="the same interval in % of |baseline mean|")
    delta_pct_ci_high: float | None = None
    t: float | None = None
    df: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = Field(default=None, description="Holm-adjusted within the metric's comparisons")
    cohens_d: float | None = None
    hedges_g: float | None = None
    verdict: Verdict
    note: str = ""

    @property
    def judged(self) -> bool:
        return self.verdict in JUDGED


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _judge(c: Comparison, alpha: float) -> Verdict:
    """The verdict from the (adjusted) p-value and the metric's direction."""
    if c.direction == "none":
        return "not_judged"
    if c.p_adjusted is None:
        return c.verdict  # no test: set where the reason is known
    if c.p_adjusted >= alpha:
        return "no_significant_difference"
    lower = c.delta < 0
    return "better" if lower == (c.direction == "minimize") else "worse"


def compare(run: list[float], base: list[float], direction: Direction, metric: str = "",
            alpha: float = ALPHA) -> Comparison:
    """Welch t-test, effect sizes and intervals of `run` against `base`, as a family of one
    (`analyze` then corrects each metric's family with Holm's method).

    n < 2 in either group leaves the test undefined and the verdict
    `no_significant_difference`; zero variance in both groups leaves it undefined too:
    identical samples are `no_significant_difference`, different ones `untestable`."""
    rs, bs = summarize(run), summarize(base)
    delta = rs.mean - bs.mean
    pct = None if bs.mean == 0 else 100 * delta / abs(bs.mean)
    out: dict[str, Any] = dict(metric=metric, direction=direction, run=rs, baseline=bs, delta=delta, delta_pct=pct)
    if rs.n < 2 or bs.n < 2:
        c = Comparison(**out, verdict="no_significant_difference", note="fewer than two seeds: no test possible")
    elif rs.std == 0 and bs.std == 0:
        c = (Comparison(**out, verdict="no_significant_difference", note="identical on every seed") if delta == 0
             else Comparison(**out, verdict="untestable",
                             note="zero variance in both groups: no test possible, not counted"))
    else:
        pooled = math.sqrt(((rs.n - 1) * rs.std**2 + (bs.n - 1) * bs.std**2) / (rs.n + bs.n - 2))
        d = delta / pooled
        res = stats.ttest_ind(run, base, equal_var=False)
        ci = res.confidence_interval(CI_LEVEL / 100)
        lo, hi = _finite(ci.low), _finite(ci.high)
        scale = 100 / abs(bs.mean) if bs.mean else None
        p = _finite(res.pvalue)
        c = Comparison(**out, t=_finite(res.statistic), df=_finite(res.df), p_value=p, p_adjusted=p,
                       cohens_d=d, hedges_g=d * (1 - 3 / (4 * (rs.n + bs.n) - 9)),
                       delta_ci_low=lo, delta_ci_high=hi,
                       delta_pct_ci_low=lo * scale if scale and lo is not None else None,
                       delta_pct_ci_high=hi * scale if scale and hi is not None else None,
                       verdict="no_significant_difference")
    c.verdict = _judge(c, alpha)
    return c


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in input order: the k-th smallest is multiplied by
    (m - k + 1), made monotone and capped at 1. Hand-written because the field library for it
    (statsmodels' `multipletests`) would add statsmodels, pandas and patsy (24 MB of wheels)
    for these few lines; scipy has only Benjamini–Hochberg."""
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def correct(family: list[Comparison], alpha: float = ALPHA) -> None:
    """Holm-adjust one family of comparisons in place and judge them again."""
    tested = [c for c in family if c.p_value is not None]
    for c, q in zip(tested, holm([c.p_value for c in tested]), strict=True):  # type: ignore[misc]
        c.p_adjusted = q
        c.verdict = _judge(c, alpha)


def effect_key(c: Comparison) -> tuple[bool, float, float]:
    """Sort key of effect size: the relative change (comparable across datasets), then |g|."""
    return (c.delta_pct is not None, abs(c.delta_pct or 0.0), abs(c.hedges_g or 0.0))


# ---------------------------------------------------------------- the analysis


class KnobInfo(BaseModel):
    """A knob the runs changed: what it is and which values were tried."""

    name: str
    description: str
    type: str
    via: Literal["flag", "constant"]
    default: Any
    candidates: list[Any]
    tested: list[Any]


class RunAnalysis(BaseModel):
    run: str
    label: str
    description: str
    settings: dict[str, Any]
    ok: bool
    error: str | None = None
    datasets: dict[str, dict[str, Comparison]] = Field(default_factory=dict, description="dataset -> metric ->")


class Best(BaseModel):
    """What a paper may call best on one dataset's primary metric, after the correction.

    `improved`: at least one setting is significantly better than the baseline; `run` is the
    one with the largest effect. `baseline`: every setting is significantly worse, so the
    default is best. `undecided`: neither; the settings could not be told apart from the
    baseline, and `run` is the baseline."""

    outcome: Literal["improved", "baseline", "undecided"]
    run: str
    label: str
    mean: float
    verdict: Verdict | None = Field(description="its comparison to the baseline; None for the baseline")


class MetricInfo(BaseModel):
    name: str
    direction: Direction = Field(description="as judged: `none` when it is reported only (see `unjudged`)")
    primary: bool
    description: str = ""
    unit: str = ""
    unjudged: Literal["", "no_direction", "shared_machine"] = Field(
        default="", description="why it is reported and not judged: it has no better direction, or it is a "
        "wall-clock time and a run it compares shared the machine with other runs")

    @model_validator(mode="after")
    def _no_direction(self) -> MetricInfo:
        if self.direction == "none" and not self.unjudged:  # also in analyses archived before the field
            self.unjudged = "no_direction"
        return self


class Setup(BaseModel):
    """The experimental setup a paper describes, so its numbers are archived too."""

    template: str
    title: str
    description: str
    scale: str | None = None
    scale_description: str = ""
    timeout_s: int | None = None
    seeds: list[int] = Field(default_factory=list)
    datasets: list[str]
    metrics: list[MetricInfo]
    quoted_numbers: list[float] = Field(
        default_factory=list, description="numbers inside the template's own text that a paper may quote")


class Analysis(BaseModel):
    alpha: float = ALPHA
    ci_level: int = CI_LEVEL
    correction: Literal["holm"] = Field(
        default="holm", description="Holm-Bonferroni within each metric's comparisons (runs x datasets)")
    primary_metric: str
    direction: Literal["minimize", "maximize"]
    n_seeds: int
    n_runs: int
    n_ok: int
    n_datasets: int
    setup: Setup
    knobs: list[KnobInfo]
    baseline_label: str
    baseline: dict[str, dict[str, Summary]] = Field(description="dataset -> metric -> baseline summary")
    runs: list[RunAnalysis]
    best: dict[str, Best] = Field(description="dataset -> what may be called best on the primary metric")
    verdict: Literal["effect", "null", "mixed", "inconclusive"] = Field(
        description="effect: significant (Holm-corrected) primary comparisons all agree in direction; "
                    "mixed: they disagree; null: none is significant; inconclusive: no run produced results")
    findings: list[str]

    def comparisons(self, metric: str | None = None) -> list[tuple[RunAnalysis, str, Comparison]]:
        """(run, dataset, comparison) for every ok run, on one metric (default: primary)."""
        metric = metric or self.primary_metric
        return [(r, ds, by_metric[metric]) for r in self.runs if r.ok
                for ds, by_metric in r.datasets.items() if metric in by_metric]


def _samples(block: dict, metric: str) -> list[float] | None:
    """Per-seed values of one metric (falling back to the mean alone, n = 1)."""
    per_seed = (block.get("per_seed") or {}).get(metric)
    if isinstance(per_seed, list) and per_seed:
        return [float(v) for v in per_seed]
    mean = (block.get("means") or {}).get(metric)
    return [float(mean)] if isinstance(mean, int | float) else None


def _metric_infos(template: Template, shared: bool) -> list[MetricInfo]:
    out = []
    for m in template.metrics:
        info = MetricInfo(**m.model_dump(exclude={"wall_clock"}))
        if m.wall_clock and shared and m.direction != "none":
            info.direction, info.unjudged = "none", "shared_machine"
        out.append(info)
    return out


def _setup(template: Template, scale: str | None, metrics: list[MetricInfo],
           seeds: list[int] | None = None) -> Setup:
    profile = template.scale.get(scale) if scale else None
    texts = [template.title, template.description, profile.description if profile else ""]
    texts += [m.description for m in template.metrics] + [k.description for k in template.knobs]
    return Setup(
        template=template.name, title=template.title, description=template.description, scale=scale,
        scale_description=profile.description if profile else "",
        timeout_s=profile.timeout_s if profile else None,
        seeds=seeds or (template.seeds_for(scale) if scale else []),
        datasets=template.datasets_for(scale) if scale else template.datasets,
        metrics=metrics,
        quoted_numbers=sorted({x for t in texts for x in numbers_in(t)}),
    )


def _knob_infos(template: Template, runs: list[RunAnalysis]) -> list[KnobInfo]:
    out = []
    for knob in template.knobs:
        tested = [r.settings[knob.name] for r in runs if knob.name in r.settings]
        if not tested:
            continue
        out.append(KnobInfo(
            name=knob.name, description=knob.description, type=knob.type,
            via="flag" if knob.flag else "constant", default=knob.default,
            candidates=knob.candidates(), tested=list(dict.fromkeys(tested)),
        ))
    return out


def _best(template: Template, baseline: dict[str, dict[str, Summary]], runs: list[RunAnalysis],
          baseline_label: str) -> dict[str, Best]:
    metric = template.primary.name
    out = {}
    for ds, by_metric in baseline.items():
        if metric not in by_metric:
            continue
        comps = [(r, c) for r in runs if r.ok and (c := r.datasets.get(ds, {}).get(metric)) is not None]
        better = [(r, c) for r, c in comps if c.verdict == "better"]
        if better:
            r, c = max(better, key=lambda rc: effect_key(rc[1]))
            out[ds] = Best(outcome="improved", run=r.run, label=r.label, mean=c.run.mean, verdict=c.verdict)
            continue
        outcome = "baseline" if comps and all(c.verdict == "worse" for _, c in comps) else "undecided"
        out[ds] = Best(outcome=outcome, run="run_0", label=baseline_label, mean=by_metric[metric].mean, verdict=None)
    return out


def _verdict(a: Analysis) -> Literal["effect", "null", "mixed", "inconclusive"]:
    if not a.comparisons():
        return "inconclusive"
    found = {c.verdict for _, _, c in a.comparisons()} & set(JUDGED)
    return "null" if not found else ("mixed" if len(found) == 2 else "effect")


def analyze(template: Template, baseline: dict, runs: list[RunRecord], scale: str | None = None,
            alpha: float = ALPHA, seeds: list[int] | None = None, baseline_shared: bool = False) -> Analysis:
    """Compare every ok run with the baseline on every dataset and metric (run on `seeds`, by
    default the scale's: a tree search's confirmation runs on fresh ones), then correct each
    metric's family of comparisons (Holm) before any verdict is drawn. A wall-clock metric is
    only reported when the baseline (`baseline_shared`) or any run shared the machine."""
    metrics = _metric_infos(template, baseline_shared or any(r.ok and r.shared for r in runs))
    judged_as = {m.name: m.direction for m in metrics}
    datasets = [d for d in template.datasets if d in baseline] or list(baseline)
    base_samples = {ds: {m.name: s for m in template.metrics if (s := _samples(baseline[ds], m.name))}
                    for ds in datasets}
    base = {ds: {m: summarize(s) for m, s in by_m.items()} for ds, by_m in base_samples.items()}
    analysed: list[RunAnalysis] = []
    for rec in runs:
        settings = run_settings(template, rec.planned)
        ok = rec.ok and isinstance(rec.results, dict)
        ra = RunAnalysis(run=rec.name, label=settings_label(settings) or rec.name,
                         description=rec.planned.description, settings=settings, ok=ok,
                         error=None if ok else (rec.error or "no results"))
        for ds in datasets if ok else []:
            block = rec.results.get(ds)  # type: ignore[union-attr]
            if not isinstance(block, dict):
                continue
            for m in template.metrics:
                s = _samples(block, m.name)
                if s and m.name in base_samples[ds]:
                    ra.datasets.setdefault(ds, {})[m.name] = compare(
                        s, base_samples[ds][m.name], judged_as[m.name], m.name, alpha)
        analysed.append(ra)
    for m in template.metrics:
        correct([c for r in analysed for by_m in r.datasets.values() if (c := by_m.get(m.name))], alpha)
    knobs = _knob_infos(template, analysed)
    baseline_label = "Baseline" + (f" ({settings_label({k.name: k.default for k in knobs})})" if knobs else "")
    n_seeds = max((s.n for by_m in base.values() for s in by_m.values()), default=0)
    a = Analysis(
        alpha=alpha, primary_metric=template.primary.name, direction=template.primary.direction,
        n_seeds=n_seeds, n_runs=len(runs), n_ok=sum(r.ok for r in analysed), n_datasets=len(datasets),
        setup=_setup(template, scale, metrics, seeds), knobs=knobs, baseline_label=baseline_label, baseline=base,
        runs=analysed, best=_best(template, base, analysed, baseline_label), verdict="null", findings=[],
    )
    a.verdict = _verdict(a)
    a.findings = findings(a)
    return a


def paper_analysis(ctx: PaperContext) -> Analysis:
    """The analysis a paper context carries (results.json's), or the one its runs give."""
    if ctx.analysis:
        try:
            return Analysis.model_validate(ctx.analysis)
        except ValidationError:
            pass  # not an analysis of this module (hand-made in a test, or an older results.json)
    return analyze(ctx.template, ctx.baseline, ctx.runs, scale=ctx.scale)


def headline(a: Analysis, metric: str | None = None) -> tuple[RunAnalysis, str, Comparison] | None:
    """The comparison a summary leads with: the largest effect among the significant ones
    (after the correction), or the largest apparent change when none is significant."""
    comps = a.comparisons(metric)
    if not comps:
        return None
    sig = [x for x in comps if x[2].judged]
    return max(sig or comps, key=lambda x: effect_key(x[2]))


def strongest(a: Analysis, verdict: Verdict, metric: str | None = None) -> tuple[RunAnalysis, str, Comparison] | None:
    """The largest effect with a given verdict, or None."""
    pool = [x for x in a.comparisons(metric) if x[2].verdict == verdict]
    return max(pool, key=lambda x: effect_key(x[2])) if pool else None


# ---------------------------------------------------------------- plain-English findings


class Wording(NamedTuple):
    """How `describe` spells a comparison: plain text here, LaTeX in the offline writer."""

    percent: str = "%"
    delta: str = "delta "
    ci: str = f"{CI_LEVEL}% CI"
    p: str = "Holm p = "
    g: str = "g = "
    against: str = "vs"
    note: Callable[[str], str] = str


def describe(c: Comparison, w: Wording = Wording()) -> str:
    """`0.512 vs 0.534 (-4.12%, 95% CI [-6.01%, -2.23%], Holm p = 0.0120, g = -1.30)`: one clause."""
    if c.delta_pct is not None:
        parts = [f"{fmt(c.delta_pct)}{w.percent}"]
        if c.delta_pct_ci_low is not None:
            parts.append(f"{w.ci} [{fmt(c.delta_pct_ci_low)}{w.percent}, {fmt(c.delta_pct_ci_high)}{w.percent}]")
    else:
        parts = [f"{w.delta}{fmt(c.delta)}"]
        if c.delta_ci_low is not None:
            parts.append(f"{w.ci} [{fmt(c.delta_ci_low)}, {fmt(c.delta_ci_high)}]")
    if c.p_adjusted is not None:
        parts.append(f"{w.p}{fmt(c.p_adjusted)}")
    if c.hedges_g is not None:
        parts.append(f"{w.g}{fmt(c.hedges_g)}")
    if c.note and c.p_value is None:
        parts.append(w.note(c.note))
    return f"{fmt(c.run.mean)} {w.against} {fmt(c.baseline.mean)} ({', '.join(parts)})"


def _dataset_finding(a: Analysis, ds: str) -> str:
    comps = [(r, c) for r, d, c in a.comparisons() if d == ds]
    if not comps:
        return f"On {ds}, no run produced results to compare."
    sig = [(r, c) for r, c in comps if c.judged]
    if not sig:
        r, c = max(comps, key=lambda rc: effect_key(rc[1]))
        return (f"On {ds}, no setting could be told apart from the baseline on {a.primary_metric} at alpha = "
                f"{fmt(a.alpha, trim=True)} after Holm correction; the largest apparent change was {r.label}: "
                f"{describe(c)}.")
    better = [r.label for r, c in sig if c.verdict == "better"]
    worse = [r.label for r, c in sig if c.verdict == "worse"]
    text = f"On {ds}, "
    if better:
        text += f"{'; '.join(better)} improved {a.primary_metric}"
    if worse:
        text += (" and " if better else "") + f"{'; '.join(worse)} made {a.primary_metric} worse"
    best = a.best.get(ds)
    if best and best.outcome == "improved":
        c = next(c for r, c in comps if r.run == best.run)
        text += (f"; the best setting was {best.label}" if len(better) == 1
                 else f"; the largest improvement was {best.label}") + f": {describe(c)}"
    elif best and best.outcome == "baseline":
        text += "; the baseline remained the best setting"
    else:
        text += "; the other settings could not be told apart from the baseline"
    return text + "."


def _secondary_findings(a: Analysis) -> list[str]:
    out = []
    for m in a.setup.metrics:
        if m.primary:
            continue
        comps = a.comparisons(m.name)
        if m.direction == "none":
            if comps:
                out.append(f"{m.name} {unjudged_why(m)}: it is reported in {len(comps)} comparisons "
                           "and never judged.")
            continue
        sig = [x for x in comps if x[2].judged]
        if sig:
            r, ds, c = max(sig, key=lambda x: effect_key(x[2]))
            out.append(f"{m.name} changed significantly in {len(sig)} of {len(comps)} comparisons after Holm "
                       f"correction; the largest change, {r.label} on {ds}, was {c.verdict}: {describe(c)}.")
    return out


_UNJUDGED_WHY = {  # (one metric, several)
    "no_direction": ("has no better direction", "have no better direction"),
    "shared_machine": ("is a wall-clock time measured while other runs shared the machine",
                       "are wall-clock times measured while other runs shared the machine"),
}


def unjudged_why(m: MetricInfo, several: bool = False) -> str:
    """Why a metric with direction `none` is reported and never judged, as a predicate."""
    return _UNJUDGED_WHY[m.unjudged][several]


def failure_kind(error: str | None) -> str:
    """Why a run failed, in words without numbers (error tails are logged, not quoted)."""
    text = (error or "").lower()
    if "timeout" in text or "timed out" in text:
        return "timed out"
    if "refused" in text or "search text" in text:
        return "its code edit could not be applied"
    if "memory" in text or "killed" in text:
        return "ran out of memory or was killed"
    return "crashed" if text else "produced no results"


def findings(a: Analysis) -> list[str]:
    """Short statements of what the numbers say, for results.json and the paper."""
    out = [_dataset_finding(a, ds) for ds in a.baseline]
    out += _secondary_findings(a)
    failed = [r for r in a.runs if not r.ok]
    if failed:
        out.append(f"{len(failed)} of {a.n_runs} runs failed and are excluded: "
                   + "; ".join(f"{r.label} ({failure_kind(r.error)})" for r in failed) + ".")
    summary = {"null": f"Overall, no tested setting changed {a.primary_metric} beyond seed-to-seed noise "
                       "after Holm correction.",
               "effect": f"Overall, the tested knobs have a consistent effect on {a.primary_metric}.",
               "mixed": f"Overall, the effect on {a.primary_metric} depends on the setting or dataset: "
                        "some changes help and others hurt.",
               "inconclusive": "No run produced results, so the idea is untested."}
    return [summary[a.verdict], *out]
