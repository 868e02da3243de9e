"""Statistics of one idea's runs against its baseline: everything a paper may claim.

`analyze()` turns the baseline (`run_0/final_info.json`) and the idea's runs into an
`Analysis`. For every ok run, dataset and metric it gives the mean, standard error, 95 %
confidence interval (t distribution), the change against the baseline (absolute and
relative), a Welch t-test, Cohen's d and Hedges' g, and a verdict that knows whether the
metric is minimized or maximized. Per dataset it names the best setting on the primary
metric, and for the whole idea it says "effect", "null" or "mixed" with plain findings.

`Analysis.model_dump()` is JSON-safe (no NaN: undefined statistics are `None`) and is
archived in results.json. Papers print its numbers through `agent.numbers.fmt`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field
from scipy import stats

from agent.models import RunRecord
from agent.numbers import fmt, numbers_in
from agent.template.contract import Template
from agent.template.knobs import run_settings, settings_label

ALPHA = 0.05
CI_LEVEL = 95

Verdict = Literal["better", "worse", "no_significant_difference"]

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
    direction: Literal["minimize", "maximize"]
    run: Summary
    baseline: Summary
    delta: float = Field(description="run mean - baseline mean")
    delta_pct: float | None = Field(description="delta relative to |baseline mean|, in %")
    t: float | None = None
    df: float | None = None
    p_value: float | None = None
    cohens_d: float | None = None
    hedges_g: float | None = None
    verdict: Verdict
    note: str = ""


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def compare(run: list[float], base: list[float], direction: Literal["minimize", "maximize"],
            metric: str = "", alpha: float = ALPHA) -> Comparison:
    """Welch t-test and effect sizes of `run` against `base`, with a direction-aware verdict.

    Zero variance in both groups makes the test undefined: if the means differ the
    difference is exact on every seed, so the verdict follows its sign (noted); n < 2 in
    either group leaves the test undefined and the verdict `no_significant_difference`."""
    rs, bs = summarize(run), summarize(base)
    delta = rs.mean - bs.mean
    pct = None if bs.mean == 0 else 100 * delta / abs(bs.mean)
    sign_better = delta < 0 if direction == "minimize" else delta > 0
    out = dict(metric=metric, direction=direction, run=rs, baseline=bs, delta=delta, delta_pct=pct)
    if rs.n < 2 or bs.n < 2:
        return Comparison(**out, verdict="no_significant_difference",
                          note="fewer than two seeds: no test possible")
    pooled = math.sqrt(((rs.n - 1) * rs.std**2 + (bs.n - 1) * bs.std**2) / (rs.n + bs.n - 2))
    if pooled == 0:
        if delta == 0:
            return Comparison(**out, verdict="no_significant_difference", note="identical on every seed")
        return Comparison(**out, verdict="better" if sign_better else "worse",
                          note="zero variance in both groups: the difference is exact on every seed")
    d = delta / pooled
    g = d * (1 - 3 / (4 * (rs.n + bs.n) - 9))
    res = stats.ttest_ind(run, base, equal_var=False)
    p = _finite(res.pvalue)
    significant = p is not None and p < alpha
    verdict: Verdict = ("better" if sign_better else "worse") if significant else "no_significant_difference"
    return Comparison(**out, t=_finite(res.statistic), df=_finite(res.df), p_value=p,
                      cohens_d=d, hedges_g=g, verdict=verdict)


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
    """The best setting on one dataset's primary metric (the baseline may win)."""

    run: str
    label: str
    mean: float
    verdict: Verdict | None = Field(description="its comparison to the baseline; None for the baseline")


class MetricInfo(BaseModel):
    name: str
    direction: Literal["minimize", "maximize"]
    primary: bool
    description: str = ""
    unit: str = ""


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
    best: dict[str, Best] = Field(description="dataset -> best setting on the primary metric")
    verdict: Literal["effect", "null", "mixed", "inconclusive"] = Field(
        description="effect: significant primary comparisons all agree in direction; mixed: they "
                    "disagree; null: none is significant; inconclusive: no run produced results")
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


def _setup(template: Template, scale: str | None, seeds: list[int] | None = None) -> Setup:
    profile = template.scale.get(scale) if scale else None
    texts = [template.title, template.description, profile.description if profile else ""]
    texts += [m.description for m in template.metrics] + [k.description for k in template.knobs]
    return Setup(
        template=template.name, title=template.title, description=template.description, scale=scale,
        scale_description=profile.description if profile else "",
        timeout_s=profile.timeout_s if profile else None,
        seeds=seeds or (template.seeds_for(scale) if scale else []),
        datasets=template.datasets_for(scale) if scale else template.datasets,
        metrics=[MetricInfo(**m.model_dump()) for m in template.metrics],
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
    metric, sign = template.primary.name, (1 if template.primary.direction == "minimize" else -1)
    out = {}
    for ds, by_metric in baseline.items():
        if metric not in by_metric:
            continue
        best = Best(run="run_0", label=baseline_label, mean=by_metric[metric].mean, verdict=None)
        for r in runs:
            c = r.datasets.get(ds, {}).get(metric)
            if r.ok and c is not None and sign * c.run.mean < sign * best.mean:
                best = Best(run=r.run, label=r.label, mean=c.run.mean, verdict=c.verdict)
        out[ds] = best
    return out


def _verdict(a: Analysis) -> Literal["effect", "null", "mixed", "inconclusive"]:
    if not a.comparisons():
        return "inconclusive"
    found = {c.verdict for _, _, c in a.comparisons()} - {"no_significant_difference"}
    return "null" if not found else ("mixed" if len(found) == 2 else "effect")


def analyze(template: Template, baseline: dict, runs: list[RunRecord], scale: str | None = None,
            alpha: float = ALPHA, seeds: list[int] | None = None) -> Analysis:
    """Compare every ok run with the baseline on every dataset and metric (run on `seeds`, by
    default the scale's: a tree search's confirmation runs on fresh ones)."""
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
                        s, base_samples[ds][m.name], m.direction, m.name, alpha)
        analysed.append(ra)
    knobs = _knob_infos(template, analysed)
    baseline_label = "Baseline" + (f" ({settings_label({k.name: k.default for k in knobs})})" if knobs else "")
    n_seeds = max((s.n for by_m in base.values() for s in by_m.values()), default=0)
    a = Analysis(
        alpha=alpha, primary_metric=template.primary.name, direction=template.primary.direction,
        n_seeds=n_seeds, n_runs=len(runs), n_ok=sum(r.ok for r in analysed), n_datasets=len(datasets),
        setup=_setup(template, scale, seeds), knobs=knobs, baseline_label=baseline_label, baseline=base,
        runs=analysed, best=_best(template, base, analysed, baseline_label), verdict="null", findings=[],
    )
    a.verdict = _verdict(a)
    a.findings = findings(a)
    return a


# ---------------------------------------------------------------- plain-English findings


def describe(c: Comparison, alpha: float = ALPHA) -> str:
    """`0.512 vs 0.534 (-4.12%, p = 0.0120, g = -1.30)`: a comparison in one clause."""
    parts = [f"{fmt(c.delta_pct)}%" if c.delta_pct is not None else f"delta {fmt(c.delta)}"]
    if c.p_value is not None:
        parts.append(f"p = {fmt(c.p_value)}")
    if c.hedges_g is not None:
        parts.append(f"g = {fmt(c.hedges_g)}")
    return f"{fmt(c.run.mean)} vs {fmt(c.baseline.mean)} ({', '.join(parts)})"


def _dataset_finding(a: Analysis, ds: str) -> str:
    comps = [(r, c) for r, d, c in a.comparisons() if d == ds]
    if not comps:
        return f"On {ds}, no run produced results to compare."
    sig = [(r, c) for r, c in comps if c.verdict != "no_significant_difference"]
    best = a.best.get(ds)
    if not sig:
        r, c = min(comps, key=lambda rc: 2.0 if rc[1].p_value is None else rc[1].p_value)
        return (f"On {ds}, no setting changed {a.primary_metric} significantly at alpha = {fmt(a.alpha, trim=True)}; "
                f"the closest was {r.label}: {describe(c)}.")
    better = [r.label for r, c in sig if c.verdict == "better"]
    worse = [r.label for r, c in sig if c.verdict == "worse"]
    text = f"On {ds}, "
    if better:
        text += f"{'; '.join(better)} improved {a.primary_metric}"
    if worse:
        text += (" and " if better else "") + f"{'; '.join(worse)} made {a.primary_metric} worse"
    if best and best.run != "run_0":
        c = next(c for r, c in comps if r.run == best.run)
        text += f"; the best setting was {best.label}: {describe(c)}"
    else:
        text += "; the baseline remained the best setting"
    return text + "."


def _secondary_findings(a: Analysis) -> list[str]:
    out = []
    for m in a.setup.metrics:
        if m.primary:
            continue
        sig = [(r, ds, c) for r, ds, c in a.comparisons(m.name) if c.verdict != "no_significant_difference"]
        if sig:
            r, ds, c = min(sig, key=lambda x: x[2].p_value if x[2].p_value is not None else 0.0)
            out.append(f"{m.name} changed significantly in {len(sig)} of {len(a.comparisons(m.name))} "
                       f"comparisons; e.g. {r.label} on {ds} was {c.verdict}: {describe(c)}.")
    return out


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
    summary = {"null": f"Overall, no tested setting changed {a.primary_metric} beyond seed-to-seed noise.",
               "effect": f"Overall, the tested knobs have a consistent effect on {a.primary_metric}.",
               "mixed": f"Overall, the effect on {a.primary_metric} depends on the setting or dataset: "
                        "some changes help and others hurt.",
               "inconclusive": "No run produced results, so the idea is untested."}
    return [summary[a.verdict], *out]
