"""The offline brain's writing: paper sections from the analysis, figure notes, LaTeX
repairs, number repairs and revisions.

Every number printed goes through `agent.analysis.fmt` and comes from the `Analysis`
(archived as results.json), so the faithfulness check can trace it. Wording follows the
verdict (effect, null, mixed), the metric's direction and the datasets, with seeded
variation between equivalent phrasings; nothing is claimed that the numbers do not say.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from pylatexenc.latexencode import UnicodeToLatexEncoder

from agent.analysis import (
    CI_LEVEL,
    JUDGED,
    Analysis,
    Comparison,
    Wording,
    describe,
    effect_key,
    failure_kind,
    headline,
    paper_analysis,
    strongest,
    unjudged_why,
)
from agent.brains.offline.task_text import TaskText, task_text
from agent.models import Edit, FigureNote, PaperContext, Review
from agent.numbers import fmt, fmt_value, numbers_in
from agent.paper import figures as figs
from agent.paper.tables import results_table

# ---------------------------------------------------------------- LaTeX helpers


def _code_points(path: Path) -> frozenset[str]:
    """The characters of a `pdflatex_chars.txt`-style file: hex code points and `A-B` ranges."""
    chars: set[str] = set()
    for line in path.read_text().splitlines():
        for token in line.split("#", 1)[0].split():
            first, _, last = token.partition("-")
            chars.update(chr(c) for c in range(int(first, 16), int(last or first, 16) + 1))
    return frozenset(chars)


_PDFLATEX_CHARS = _code_points(Path(__file__).with_name("pdflatex_chars.txt"))
_LATEX = UnicodeToLatexEncoder(
    replacement_latex_protection="braces-after-macro", unknown_char_policy=lambda c: "?", unknown_char_warning=False
)


def esc(text: str) -> str:
    """Plain text made safe for pdflatex: specials escaped and Unicode spelled as LaTeX by
    pylatexenc, except the characters its LaTeX needs a package for (see pdflatex_chars.txt),
    which become `?`. (pylatex's escape_latex was measured and not taken: it writes `1e-05`
    as `1e{-}05`, which the faithfulness check cannot read, and leaves Unicode as it is.)"""
    text = "".join(c if c < "\x80" or c in _PDFLATEX_CHARS else "?" for c in str(text))
    return _LATEX.unicode_to_latex(text)


PROPER = {"adam", "adamw", "sgd", "gaussian", "fourier", "xavier", "kaiming", "lion", "transformer"}


def lower_first(text: str) -> str:
    """Lower-case the first word unless it is a name or an acronym (`Adam`, `DDPM`)."""
    first = text.split()[0] if text.split() else ""
    if (first[1:].islower() or first in ("A", "An")) and first.lower() not in PROPER:
        return text[0].lower() + text[1:]
    return text


def pct(x: float | None) -> str:
    return f"{fmt(x)}\\%" if x is not None else "n/a"


def cite(keys: list[str]) -> str:
    return f"~\\citep{{{','.join(keys)}}}" if keys else ""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _listing(items: list[str], conj: str = "and") -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conj} " + items[-1]


def _latex_preamble(ctx: PaperContext) -> str:
    path = ctx.template.path / "latex" / "template.tex"
    return path.read_text() if path.is_file() else ""


# ---------------------------------------------------------------- reading the analysis


def _metric(a: Analysis, name: str) -> str:
    return esc(name.replace("_", " "))


def _better_word(a: Analysis) -> str:
    return "lower is better" if a.direction == "minimize" else "higher is better"


def _move(c: Comparison) -> str:
    return "lowered" if c.delta < 0 else "raised"


def _alpha(a: Analysis) -> str:
    return fmt(a.alpha, trim=True)


# numbers stay in text mode: `2.94e-7` must not become a subtraction
LATEX_WORDING = Wording(percent="\\%", delta="$\\Delta$ = ", ci=f"{CI_LEVEL}\\% CI", p="$p$ = ", g="$g$ = ",
                        against="against", note=esc)


def _stat(c: Comparison) -> str:
    """`0.512 against 0.534 (-4.12\\%, 95\\% CI [-6.01\\%, -2.23\\%], $p$ = 0.0120, $g$ = -1.30)`.

    The interval is Welch's, of the change; $p$ is Holm-adjusted (the method section says so)."""
    return describe(c, LATEX_WORDING)


def _knob_phrase(a: Analysis) -> str:
    return _listing([f"\\texttt{{{esc(k.name)}}}" for k in a.knobs]) or "the studied setting"


def _agree(a: Analysis, singular: str, plural_form: str) -> str:
    """The verb form that agrees with `_knob_phrase`."""
    return plural_form if len(a.knobs) > 1 else singular


def _values(values: list) -> str:
    return _listing([esc(fmt_value(v)) for v in values], "and")


def _seeds_text(a: Analysis, ctx: PaperContext) -> str:
    seeds = a.setup.seeds or ctx.template.seeds_for(ctx.scale)
    return f"{len(seeds)} seeds ({', '.join(str(s) for s in seeds)})"


def _task(ctx: PaperContext, a: Analysis) -> TaskText:
    return task_text(ctx.template, a.setup.scale or ctx.scale, list(a.baseline))


def _tt(name: str) -> str:
    return f"\\texttt{{{esc(name)}}}"


# ---------------------------------------------------------------- sections


def write_section(ctx: PaperContext, section: str, rng: random.Random) -> str:
    a = paper_analysis(ctx)
    writers = {
        "title": _title, "abstract": _abstract, "introduction": _introduction,
        "related_work": _related_work, "method": _method, "experimental_setup": _setup,
        "results": _results, "conclusion": _conclusion,
    }
    if section not in writers:
        raise ValueError(f"unknown section {section!r}; expected one of {', '.join(writers)}")
    return writers[section](ctx, a, rng).strip() + "\n"


def _title(ctx: PaperContext, a: Analysis, rng: random.Random) -> str:
    question = ctx.idea.title.endswith("?")
    title = esc(ctx.idea.title.rstrip(".?") + ("?" if question else ""))
    if a.verdict == "null":  # after a question mark, only a parenthesis reads well
        return title + rng.choice([" (No Measurable Effect)", " (A Null Result)"] if question
                                  else [": A Null Result", " (No Measurable Effect)", ": Mostly Noise"])
    if a.verdict == "mixed":
        return title + rng.choice([" (Mixed Evidence)"] if question else [": It Depends", " (Mixed Evidence)"])
    if a.verdict == "inconclusive":
        return title + " (Inconclusive: No Run Finished)"
    return title


def _verdict_sentence(a: Analysis, rng: random.Random) -> str:
    """The main finding in one or two sentences, with its numbers: the largest significant
    effect (Holm-corrected), or the largest apparent change of a null result."""
    h = headline(a)
    metric = _metric(a, a.primary_metric)
    if h is None:
        return "No run finished, so this study has no result to report."
    r, ds, c = h
    if a.verdict == "null":
        return rng.choice([
            f"No tested setting changed {metric} beyond seed-to-seed variation on any dataset "
            f"(Holm-corrected, $\\alpha = {_alpha(a)}$); the largest apparent change, {esc(r.label)} on "
            f"{_tt(ds)}, was {_stat(c)}.",
            f"The answer is negative: after Holm correction at $\\alpha = {_alpha(a)}$, none of the settings can "
            f"be told apart from the baseline in {metric}. The largest apparent change was {esc(r.label)} on "
            f"{_tt(ds)}: {_stat(c)}.",
        ])
    if a.verdict == "mixed":
        up, down = strongest(a, "better"), strongest(a, "worse")
        assert up is not None and down is not None  # a mixed verdict has both
        n_up = sum(x.verdict == "better" for _, _, x in a.comparisons())
        n_down = sum(x.verdict == "worse" for _, _, x in a.comparisons())
        return (f"The picture is mixed: after Holm correction, {n_up} comparison{'s' if n_up != 1 else ''} "
                f"improved {metric} and {n_down} made it worse. The largest significant gain was "
                f"{esc(up[0].label)} on {_tt(up[1])} ({_stat(up[2])}); the largest significant loss was "
                f"{esc(down[0].label)} on {_tt(down[1])} ({_stat(down[2])}).")
    verb = "improved" if c.verdict == "better" else "degraded"
    lead = f"Setting {esc(r.label)} {verb} {metric} on {_tt(ds)}: {_stat(c)}, the largest significant effect."
    n_sig = sum(x.judged for _, _, x in a.comparisons())
    n_all = len(a.comparisons())
    return lead + (f" In total {n_sig} of {n_all} comparisons on {metric} were significant after Holm "
                   f"correction, all in the same direction.")


def _abstract(ctx: PaperContext, a: Analysis, rng: random.Random) -> str:
    metric = _metric(a, a.primary_metric)
    opener = rng.choice([
        f"We ask whether {_knob_phrase(a)} {_agree(a, 'matters', 'matter')} for {metric} in {esc(lower_first(a.setup.title.rstrip('.')))}.",
        f"This paper tests one narrow question about {esc(lower_first(a.setup.title.rstrip('.')))}: does changing "
        f"{_knob_phrase(a)} move {metric} ({_better_word(a)})?",
    ])
    datasets = _listing([_tt(d) for d in a.baseline])
    design = (f"We ran {plural(a.n_runs, 'setting')} against the default configuration, each with "
              f"{_seeds_text(a, ctx)} on {a.n_datasets} dataset{'s' if a.n_datasets != 1 else ''} "
              f"({datasets}), and compared them with Welch t-tests, Holm-corrected across the comparisons of "
              f"each metric, and {a.ci_level}\\% confidence intervals.")
    closer = ("The experiments, the statistics and this text were produced by the offline brain of "
              "AI Scientist, without a language model.")
    return " ".join([opener, design, _verdict_sentence(a, rng), closer])


def _bib_titles(ctx: PaperContext) -> dict[str, str]:
    """key -> title for the keys in references.bib (template bib plus literature hits)."""
    texts = [ctx.template.path / "latex" / "references.bib"]
    raw = "\n".join(p.read_text() for p in texts if p.is_file())
    raw += "\n" + "\n".join(h.bibtex for h in ctx.literature if h.bibtex)
    out: dict[str, str] = {}
    for m in re.finditer(r"@\w+\s*\{\s*([^,\s]+)\s*,(.*?)(?=\n\s*@|\Z)", raw, re.DOTALL):
        t = re.search(r"\btitle\s*=\s*[{\"](.+?)[}\"]\s*,?\s*\n", m.group(2), re.DOTALL)
        out[m.group(1)] = re.sub(r"[{}]", "", re.sub(r"\s+", " ", t.group(1))) if t else ""
    return {k: out.get(k, "") for k in ctx.bib_keys}


def _introduction(ctx: PaperContext, a: Analysis, rng: random.Random) -> str:
    keys = ctx.bib_keys[:2]
    task = _task(ctx, a).lead or f"We study {lower_first(a.setup.title.rstrip('.'))}."
    knob_lines = []
    for k in a.knobs:
        knob_lines.append(f"\\texttt{{{esc(k.name)}}} ({esc(k.description.rstrip('.')) or 'a template knob'}; "
                          f"default {esc(fmt_value(k.default))})")
    question = rng.choice([
        f"Whether the defaults of {_listing(knob_lines)} are good choices for {_metric(a, a.primary_metric)} "
        f"is usually assumed rather than measured.",
        f"Small design choices such as {_listing(knob_lines)} are rarely tested in isolation, with seeds controlled.",
    ])
    contributions = [
        f"a controlled sweep of {_knob_phrase(a)} over {plural(a.n_runs, 'setting')}, each repeated over "
        f"{_seeds_text(a, ctx)} on {a.n_datasets} dataset{'s' if a.n_datasets != 1 else ''};",
        f"per-setting means with {a.ci_level}\\% confidence intervals, Welch t-tests against the baseline "
        f"with Holm's correction for multiple comparisons, and Hedges' $g$ effect sizes, for every metric;",
        {"effect": "evidence of a consistent effect on the primary metric, summarised below;",
         "null": "a clear null result: no setting moves the primary metric beyond seed noise;",
         "mixed": "evidence that the effect depends on the setting and the dataset;",
         "inconclusive": "a record of a sweep whose runs did not finish, with the reasons;"}[a.verdict],
    ]
    task = esc(task.rstrip().rstrip("."))
    return (
        f"{task}{cite(keys)}.\n\n{question} This paper measures it. "
        f"{_verdict_sentence(a, rng)}\n\n"
        "Our contributions are:\n\\begin{itemize}\n"
        + "\n".join(f"  \\item {c}" for c in contributions) + "\n\\end{itemize}\n"
    )


def _related_work(ctx: PaperContext, a: Analysis, rng: random.Random) -> str:
    titles = _bib_titles(ctx)
    parts = []
    for key, title in titles.items():
        if title and not numbers_in(title):  # a title's numbers are not in results.json
            parts.append(f"{esc(title)}{cite([key])}")
        else:
            parts.append(f"the work of{cite([key])}")
    archive = [h.title for h in ctx.literature if h.source == "archive" and not numbers_in(h.title)]
    text = ""
    if parts:
        text += rng.choice([
            "This study sits on the following prior work: ",
            "The setting we study comes from prior work: ",
        ]) + _listing(parts) + ". "
        text += ("None of these isolates the knobs studied here with seed-controlled significance tests; "
                 "our contribution is that measurement, not a new method.")
    else:
        text += "The template's bibliography lists no prior work, and no literature search was available offline."
    if archive:
        text += ("\n\nOur own archive holds related studies on the same template: "
                 + _listing([f"``{esc(t)}''" for t in archive[:3]]) + "; they varied different knob sets.")
    return text


def _method(ctx: PaperContext, a: Analysis, rng: random.Random) -> str:
    source = " ".join(esc(s) for s in _task(ctx, a).method)
    knob_par = []
    for k in a.knobs:
        how = ("a command-line flag of the experiment script" if k.via == "flag"
               else "a module-level constant, changed by a code edit")
        knob_par.append(f"\\texttt{{{esc(k.name)}}} ({esc(k.description.rstrip('.'))}) reaches the experiment "
                        f"through {how}. Its default is {esc(fmt_value(k.default))}; we tested "
                        f"{_values(k.tested)}.")
    design = ("The compared setting was selected by a tree search over the knobs (see the Search paragraph of "
              "the experimental setup); it and the baseline were then rerun on seeds the search never used, "
              "and only those reruns enter the statistics." if ctx.search else
              "Each run changes one value and keeps everything else at the template's defaults."
              if len(a.knobs) <= 1 else
              "The runs form a small grid: each knob alone, then both together, so that an interaction "
              "shows up as a joint effect that differs from the two single effects.")
    unjudged = []  # one sentence per reason a metric is reported and never judged
    for why in dict.fromkeys(m.unjudged for m in a.setup.metrics if m.unjudged):
        ms = [m for m in a.setup.metrics if m.unjudged == why]
        many = len(ms) > 1
        unjudged.append(f"{_listing([_tt(m.name) for m in ms])} {unjudged_why(ms[0], many)}, so "
                        f"{'they are' if many else 'it is'} reported and never judged. ")
    stats = (
        f"For every run, dataset and metric we average the per-seed values and report the mean, its "
        f"standard error and a {a.ci_level}\\% confidence interval from the $t$ distribution. Each run is "
        f"compared with the baseline by a two-sided Welch $t$-test (unequal variances), with a Welch "
        f"{a.ci_level}\\% confidence interval for the change, and by Hedges' $g$, the standardised mean difference "
        f"corrected for small samples. The comparisons on one metric (every run on every dataset) are one "
        f"family: their $p$-values are adjusted together by Holm's step-down method, and every $p$-value this "
        f"paper prints is the adjusted one. The intervals are per comparison and not adjusted, so an interval "
        f"may exclude zero where the corrected test does not. A difference counts as better or worse only when "
        f"its adjusted $p$-value is below $\\alpha = {_alpha(a)}$, and the direction of ``better'' follows the metric "
        f"({_metric(a, a.primary_metric)}: {_better_word(a)}). A comparison whose two groups have zero variance "
        f"admits no test: it is reported and not counted. "
        + "".join(unjudged)
        + "The idea shows an effect when all significant comparisons on the primary metric agree in direction, "
        "a mixed result when they disagree, and a null result when none is significant; a setting is called "
        "best only when it is significantly better than the baseline."
    )
    return (f"{source}\n\n" if source else "") + " ".join(knob_par) + f" {design}\n\n{stats}"


GOAL_WORD = {"minimize": "minimized", "maximize": "maximized", "none": "reported, not judged"}


def _setup(ctx: PaperContext, a: Analysis, rng: random.Random) -> str:
    scale = esc(a.setup.scale or ctx.scale)
    scale_desc = f" ({esc(a.setup.scale_description.rstrip('.'))})" if a.setup.scale_description else ""
    scale_notes = "".join(f" {esc(s)}" for s in _task(ctx, a).scale)
    limit = (f" inside a sandbox with a wall-clock limit of {a.setup.timeout_s}~s per call"
             if a.setup.timeout_s else " inside a sandbox")
    metrics = []
    for m in a.setup.metrics:
        role = "primary, " if m.primary else ""
        unit = f", in {esc(m.unit)}" if m.unit else ""
        desc = f": {esc(m.description.rstrip('.'))}" if m.description else ""
        metrics.append(f"{_tt(m.name)} ({role}{GOAL_WORD[m.direction]}{unit}{desc})")
    datasets = _listing([_tt(d) for d in a.baseline])
    failed = a.n_runs - a.n_ok
    return (
        f"All experiments use the \\texttt{{{scale}}} scale of the template{scale_desc}.{scale_notes} "
        f"Every call of the experiment script trains and evaluates on {datasets} with {_seeds_text(a, ctx)}"
        f"{limit}. The baseline is the unchanged template; the study adds {plural(a.n_runs, 'run')}, of which "
        f"{a.n_ok} finished" + (f" and {failed} failed" if failed else "") + ".\n\n"
        f"We report {_listing(metrics)}.\n\n"
        "The idea, the run plan, the code edits, the analysis and the text of this paper were produced "
        "by the offline brain of AI Scientist: a deterministic program that sweeps the template's declared "
        "knobs and writes from the measured numbers, without a language model."
    )


def _booktabs(ctx: PaperContext) -> bool:
    return "booktabs" in _latex_preamble(ctx)


VERDICT_CELL = {"better": "better", "worse": "worse", "no_significant_difference": "n.s.",
                "untestable": "no test", "not_judged": "--"}


def primary_table(ctx: PaperContext, a: Analysis) -> str:
    metric = _metric(a, a.primary_metric)
    groups = []
    for ds, by_metric in a.baseline.items():
        base = by_metric.get(a.primary_metric)
        if base is None:
            continue
        se = f" $\\pm$ {fmt(base.stderr)}" if base.stderr is not None else ""
        ci = f"[{fmt(base.ci_low)}, {fmt(base.ci_high)}]" if base.ci_low is not None else "n/a"
        rows = [[_tt(ds), esc(a.baseline_label), f"{fmt(base.mean)}{se}", ci, "--", "--", "--", "--"]]
        for r in a.runs:
            c = r.datasets.get(ds, {}).get(a.primary_metric)
            if not r.ok or c is None:
                continue
            se = f" $\\pm$ {fmt(c.run.stderr)}" if c.run.stderr is not None else ""
            ci = f"[{fmt(c.run.ci_low)}, {fmt(c.run.ci_high)}]" if c.run.ci_low is not None else "n/a"
            rows.append(["", esc(r.label), f"{fmt(c.run.mean)}{se}", ci, pct(c.delta_pct), fmt(c.p_adjusted),
                         fmt(c.hedges_g), VERDICT_CELL[c.verdict]])
        groups.append(rows)
    unit = next((f", {esc(m.unit)}" for m in a.setup.metrics if m.primary and m.unit), "")
    caption = (f"{metric} ({_better_word(a)}{unit}) per setting: mean $\\pm$ standard error over seeds, "
               f"{a.ci_level}\\% confidence interval, change against the baseline, Holm-adjusted Welch $p$-value, "
               f"Hedges' $g$ and the verdict at $\\alpha = {_alpha(a)}$ (no test: zero variance in both groups).")
    header = ["Dataset", "Setting", "Mean $\\pm$ SE", f"{a.ci_level}\\% CI", "$\\Delta$", "$p$", "$g$", "Verdict"]
    return results_table(header, groups, caption, "tab:primary", booktabs=_booktabs(ctx))


def secondary_table(ctx: PaperContext, a: Analysis) -> str:
    rows = []
    for m in a.setup.metrics:
        if m.primary:
            continue
        comps = a.comparisons(m.name)
        if not comps:
            continue
        r, ds, c = max(comps, key=lambda x: effect_key(x[2]))
        largest = f"{esc(r.label)} on {_tt(ds)}: {pct(c.delta_pct)} ($p$ = {fmt(c.p_adjusted)})"
        if m.direction == "none":
            rows.append([_tt(m.name), "not judged", "--", "--", "--", "--", largest])
            continue
        counts = [sum(c.verdict == v for _, _, c in comps) for v in ("better", "worse", "no_significant_difference",
                                                                      "untestable")]
        rows.append([_tt(m.name), m.direction, *map(str, counts), largest])
    if not rows:
        return ""
    shared = any(m.unjudged == "shared_machine" for m in a.setup.metrics)
    caption = ("Secondary metrics: how many run--dataset comparisons were significantly better or worse than the "
               "baseline after Holm correction, how many were not significantly different, how many admitted no "
               "test (zero variance in both groups), and the largest relative change. A metric with no better "
               "direction" + (", or a wall-clock time measured while other runs shared the machine," if shared
                              else "") + " is reported, not judged.")
    header = ["Metric", "Goal", "Better", "Worse", "n.s.", "No test", "Largest change"]
    return results_table(header, [rows], caption, "tab:secondary", booktabs=_booktabs(ctx))


def _fig_label(file: str) -> str:
    return f"fig:{slug(Path(file).stem)}"


def _figure(note: FigureNote) -> str:
    return (
        "\\begin{figure}[t]\n\\centering\n"
        f"\\includegraphics[width=0.9\\linewidth]{{{note.file}}}\n"
        f"\\caption{{{esc(note.caption)}}}\n\\label{{{_fig_label(note.file)}}}\n\\end{{figure}}\n"
    )


FIGURE_OPENERS = ("Figure~\\ref{{{ref}}} shows {shows}", "See Figure~\\ref{{{ref}}} for {shows}",
                  "Figure~\\ref{{{ref}}} gives {shows}")


def _figure_paragraph(ctx: PaperContext, a: Analysis, rng: random.Random) -> str:
    """One sentence per figure, from its declaration (what it shows) and the statistics of the
    metric it plots; openers rotate so that no two neighbours read alike."""
    start = rng.randrange(len(FIGURE_OPENERS))
    out = []
    for i, note in enumerate(ctx.figures):
        ref = _fig_label(note.file)
        fig = ctx.template.figure(note.file)
        if fig is None:  # described by the brain that drew it
            out.append(f"Figure~\\ref{{{ref}}}: {esc(note.description)}")
            continue
        text = FIGURE_OPENERS[(start + i) % len(FIGURE_OPENERS)].format(ref=ref, shows=esc(fig.shows.rstrip(".")))
        finding = figs.metric_finding(fig, ctx.template, a)
        if finding:
            table = "tab:primary" if fig.metric == a.primary_metric else "tab:secondary"
            text += f"; {esc(finding)} (Table~\\ref{{{table}}})"
        out.append(text + ".")
    return " ".join(out)


def _dataset_paragraph(a: Analysis, ds: str, rng: random.Random) -> str:
    comps = [(r, c) for r, d, c in a.comparisons() if d == ds]
    metric = _metric(a, a.primary_metric)
    best = a.best.get(ds)
    if not comps or best is None:
        return f"On {_tt(ds)} no run produced results."
    untestable = [r for r, c in comps if c.verdict == "untestable"]
    no_test = (f" {_listing([esc(r.label) for r in untestable])} differ{'s' if len(untestable) == 1 else ''} from "
               "the baseline by the same amount on every seed (zero variance), which admits no test, so "
               f"{'it is' if len(untestable) == 1 else 'they are'} not counted." if untestable else "")
    sig = [(r, c) for r, c in comps if c.judged]
    if not sig:
        r, c = max(comps, key=lambda rc: effect_key(rc[1]))
        return rng.choice([
            f"On {_tt(ds)} no setting can be told apart from the baseline in {metric} after Holm correction; "
            f"the largest apparent change is {esc(r.label)}, {_stat(c)}.",
            f"{_tt(ds)} shows no significant change in {metric}: the largest apparent change, "
            f"{esc(r.label)}, reached {_stat(c)}.",
        ]) + no_test
    text = []
    for r, c in sorted(sig, key=lambda rc: effect_key(rc[1]), reverse=True):
        word = "an improvement" if c.verdict == "better" else "a degradation"
        text.append(f"{esc(r.label)} {_move(c)} {metric}, {word}: {_stat(c)}")
    lead = f"On {_tt(ds)}, " + "; ".join(text) + "."
    n_better = sum(c.verdict == "better" for _, c in sig)
    if best.outcome == "improved":
        lead += (f" The best setting here is {esc(best.label)}." if n_better == 1 else
                 f" Of these improvements {esc(best.label)} is the largest; the improved settings were not "
                 "tested against each other.")
    elif best.outcome == "baseline":
        lead += " Every change is significantly worse, so the default configuration remains the best setting here."
    else:
        lead += " No setting improved on the baseline; the others could not be told apart from it."
    return lead + no_test


def _failures(a: Analysis) -> str:
    failed = [r for r in a.runs if not r.ok]
    if not failed:
        return ""
    items = _listing([f"{esc(r.label)} ({failure_kind(r.error)})" for r in failed])
    return (f"\n\n{len(failed)} of {plural(a.n_runs, 'run')} did not finish and are left out of every table: {items}. "
            "Their absence narrows the sweep; we do not guess their outcome.")


def _results(ctx: PaperContext, a: Analysis, rng: random.Random) -> str:
    intro = rng.choice([
        "Table~\\ref{tab:primary} lists every setting on the primary metric.",
        "The full comparison on the primary metric is in Table~\\ref{tab:primary}.",
    ]) + " " + _verdict_sentence(a, rng)
    body = [intro, ""]
    body += [_dataset_paragraph(a, ds, rng) + "\n" for ds in a.baseline]
    second = secondary_table(ctx, a)
    if second:
        body.append("Table~\\ref{tab:secondary} summarises the secondary metrics: what each setting changes "
                    "besides the primary one.\n")
    if ctx.figures:
        body.append(_figure_paragraph(ctx, a, rng) + "\n")
    text = "\n".join(body) + _failures(a) + "\n\n" + primary_table(ctx, a) + "\n" + second
    return text + "\n" + "\n".join(_figure(n) for n in ctx.figures)


def _limitations(ctx: PaperContext, a: Analysis) -> str:
    return (
        f"\\paragraph{{Limitations.}} The evidence comes from {a.n_seeds} seeds per setting at the "
        f"\\texttt{{{esc(a.setup.scale or ctx.scale)}}} scale, so small effects may go undetected and larger "
        f"scales may behave differently. The $p$-values are Holm-corrected across the {len(a.comparisons())} "
        "comparisons on the primary metric, which guards against a false positive among them but also makes "
        "small effects harder to detect with few seeds. Only the declared values of the knobs were tested."
    )


def _effect_sign(a: Analysis) -> str:
    """'better' or 'worse': the direction of every significant primary comparison (effect)."""
    signs = {c.verdict for _, _, c in a.comparisons()} & set(JUDGED)
    return "better" if signs == {"better"} else "worse"


def _best_text(a: Analysis) -> str:
    """What may be called best on each dataset, as the corrected statistics allow."""
    improved = [f"{esc(b.label)} on {_tt(ds)}" for ds, b in a.best.items() if b.outcome == "improved"]
    kept = [_tt(ds) for ds, b in a.best.items() if b.outcome == "baseline"]
    tied = [_tt(ds) for ds, b in a.best.items() if b.outcome == "undecided"]
    out = []
    if improved:
        out.append(f"The largest significant improvements over the default were {_listing(improved)}.")
    if kept:
        out.append(f"On {_listing(kept)} every change was significantly worse, so the default is best there.")
    if tied:
        out.append(f"On {_listing(tied)} no setting improved significantly on the default; the settings that did "
                   "not do significantly worse could not be told apart from it.")
    return " ".join(out)


def _conclusion(ctx: PaperContext, a: Analysis, rng: random.Random) -> str:
    knobs = _knob_phrase(a)
    metric = _metric(a, a.primary_metric)
    summary = {
        "effect": rng.choice([
            f"Changing {knobs} has a measurable and consistent effect on {metric}: every significant change "
            + ("improved it." if _effect_sign(a) == "better" else "made it worse, so no tested value beat the "
               "default."),
            f"{knobs[0].upper() + knobs[1:]} {_agree(a, 'matters', 'matter')} for {metric}: the significant changes all point the same way, "
            + ("towards improvement." if _effect_sign(a) == "better" else "against moving away from the default."),
        ]),
        "null": rng.choice([
            f"Within the tested values, {knobs} {_agree(a, 'does', 'do')} not measurably change {metric}; no alternative we tried "
            "could be told apart from the default.",
            f"We found no effect of {knobs} on {metric} beyond seed-to-seed variation. This null result is "
            f"informative: within the tested range the {_agree(a, 'knob', 'knobs')} can be set for convenience or cost, as far as "
            "these seeds can tell.",
        ]),
        "mixed": (f"The effect of {knobs} on {metric} depends on the value and the dataset, so no single "
                  "setting can be recommended from these runs."),
        "inconclusive": (f"No run of the sweep finished, so this study cannot say whether {knobs} "
                         f"{_agree(a, 'matters', 'matter')} for "
                         f"{metric}; the failures above are its only result."),
    }[a.verdict]
    best = _best_text(a) if a.verdict != "inconclusive" else ""
    future = ("A natural next step is a finer sweep around the improved values and a test of their interaction "
              "with another knob, on fresh seeds and at a larger scale."
              if any(b.outcome == "improved" for b in a.best.values()) else
              "A natural next step is more seeds, which narrow the intervals, and a larger scale.")
    return f"{summary} {best} {future}".replace("  ", " ") + f"\n\n{_limitations(ctx, a)}"


# ---------------------------------------------------------------- figures


def describe_figures(ctx: PaperContext, files: list[str]) -> list[FigureNote]:
    """Notes for the figures template.toml declares; an undeclared file gets none, since what it
    shows cannot be known from its name."""
    return figs.declared_notes(ctx.template, paper_analysis(ctx), files)


# ---------------------------------------------------------------- repairs


def _unique_edit(text: str, start: int, end: int, new: str) -> tuple[Edit, str]:
    """An edit replacing text[start:end] by `new`, with enough surrounding lines to make its
    SEARCH unique; returns the edit and the text after applying it."""
    ls = text.rfind("\n", 0, start) + 1
    le = text.find("\n", end)
    le = len(text) if le < 0 else le
    while text.count(text[ls:le]) > 1 and (ls > 0 or le < len(text)):
        ls = text.rfind("\n", 0, max(ls - 1, 0)) + 1 if ls > 0 else 0
        nxt = text.find("\n", le + 1)
        le = len(text) if nxt < 0 or le >= len(text) else nxt
    search = text[ls:le]
    replace = text[ls:start] + new + text[end:le]
    return Edit(path="paper.tex", search=search, replace=replace), text[:ls] + replace + text[le:]


def _line_span(text: str, lineno: int) -> tuple[int, int] | None:
    lines = text.split("\n")
    if not 1 <= lineno <= len(lines):
        return None
    start = sum(len(x) + 1 for x in lines[: lineno - 1])
    return start, start + len(lines[lineno - 1])


def _escape_line(text: str, lineno: int, chars: str) -> tuple[list[Edit], str]:
    span = _line_span(text, lineno)
    if span is None:
        return [], text
    line = text[span[0]:span[1]]
    if chars == "_" and "$" in line:
        return [], text  # math on the line: an underscore may be a subscript; leave it
    fixed = re.sub(rf"(?<!\\)([{re.escape(chars)}])", r"\\\1", line)
    if chars == "%":  # only a percent after a number is text; others are comments
        fixed = re.sub(r"(?<=\d)(?<!\\)%", r"\\%", line)
    if fixed == line:
        return [], text
    edit, text = _unique_edit(text, span[0], span[1], fixed)
    return [edit], text


def _drop_pattern(text: str, pattern: str) -> tuple[list[Edit], str]:
    edits = []
    while (m := re.search(pattern, text)) is not None:
        edit, text = _unique_edit(text, m.start(), m.end(), "")
        edits.append(edit)
    return edits, text


def _replace_all(text: str, old: str, new: str) -> tuple[list[Edit], str]:
    edits = []
    while (i := text.find(old)) >= 0:
        edit, text = _unique_edit(text, i, i + len(old), new)
        edits.append(edit)
    return edits, text


def _drop_cite_key(text: str, key: str) -> tuple[list[Edit], str]:
    edits = []
    pattern = rf"~?\\cite[pt]?\*?(?:\[[^\]]*\])*\{{([^}}]*\b{re.escape(key)}\b[^}}]*)\}}"
    while (m := re.search(pattern, text)) is not None:
        keys = [k.strip() for k in m.group(1).split(",") if k.strip() != key]
        new = m.group(0).replace(m.group(1), ",".join(keys)) if keys else ""
        edit, text = _unique_edit(text, m.start(), m.end(), new)
        edits.append(edit)
    return edits, text


def fix_latex(tex: str, log_tail: str) -> list[Edit]:
    """Deterministic repairs for the errors a LaTeX log names; [] when none applies."""
    edits: list[Edit] = []
    text = tex
    for m in re.finditer(r"^! (.+?)\.?\n(?:.*\n){0,6}?l\.(\d+)", log_tail, re.MULTILINE):
        msg, line = m.group(1), int(m.group(2))
        chars = "_^" if "Missing $" in msg else ("&" if "alignment tab" in msg else ("%" if "Runaway" in msg else ""))
        if chars:
            new, text = _escape_line(text, line, chars)
            edits += new
    for char in set(re.findall(r"Unicode character (.) \(U\+[0-9A-F]+\)", log_tail)):
        new, text = _replace_all(text, char, esc(char))
        edits += new
    for name in set(re.findall(r"File [`']([^']+)' not found", log_tail)):
        stem = re.escape(Path(name).stem)
        new, text = _drop_pattern(text, rf"\\includegraphics(?:\[[^\]]*\])?\{{[^}}]*{stem}(?:\.\w+)?\}}")
        edits += new
    for label in set(re.findall(r"Reference [`']([^']+)' on page \S+ undefined", log_tail)):
        new, text = _drop_pattern(text, rf"(?:(?:Figure|Table|Section|Eq\.)~)?\\(?:ref|autoref|cref)\{{{re.escape(label)}\}}")
        edits += new
    for key in set(re.findall(r"Citation [`']([^']+)' on page \S+ undefined", log_tail)):
        new, text = _drop_cite_key(text, key)
        edits += new
    return edits


def drop_numbers(text: str, bad: list[str]) -> str:
    """Remove sentences that still print a number in `bad`; in table rows blank the cell."""
    if not bad:
        return text
    pats = [re.compile(rf"(?<![\w.]){re.escape(b)}(?![\w])") for b in bad]
    out = []
    for line in text.split("\n"):
        if "&" in line and line.rstrip().endswith("\\\\"):
            for p in pats:
                line = p.sub("--", line)
            out.append(line)
            continue
        sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z\\])", line)
        out.append(" ".join(s for s in sentences if not any(p.search(s) for p in pats)))
    return "\n".join(out)


# ---------------------------------------------------------------- revision


def revise(ctx: PaperContext, sections: dict[str, str], review: Review) -> dict[str, str]:
    """Answer the weaknesses the offline writer can act on: limitations, statistics, seeds,
    figures and references. Other weaknesses are left for the next study, not papered over."""
    a = paper_analysis(ctx)
    asks = " ".join(review.weaknesses + review.questions + review.limitations).lower()
    out = dict(sections)
    whole = " ".join(sections.values()).lower()
    if ("limitation" in asks or "limitation" not in whole) and "conclusion" in out and "paragraph{limitations" not in out["conclusion"].lower():
        out["conclusion"] = out["conclusion"].rstrip() + "\n\n" + _limitations(ctx, a) + "\n"
    if any(w in asks for w in ("confidence", "significan", "statistic", "p-value", "error bar", "variance")):
        add = (f"All intervals are {a.ci_level}\\% confidence intervals from the $t$ distribution over seeds, and "
               f"all tests are two-sided Welch $t$-tests at $\\alpha = {fmt(a.alpha, trim=True)}$, Holm-corrected "
               "within each metric.")
        if "results" in out and add not in out["results"]:
            out["results"] = add + " " + out["results"]
    if "seed" in asks and "experimental_setup" in out and "seeds" not in out["experimental_setup"]:
        out["experimental_setup"] += f"\n\nEach setting was run with {_seeds_text(a, ctx)}.\n"
    if any(w in asks for w in ("citation", "reference", "related work", "prior work")) and "related_work" in out:
        missing = [k for k in ctx.bib_keys if k not in out["related_work"]]
        if missing:
            out["related_work"] = out["related_work"].rstrip() + (
                f"\n\nFurther background is in{cite(missing)}.\n")
    if any(w in asks for w in ("figure", "visual", "plot")) and "results" in out:
        for note in ctx.figures:
            if note.file not in out["results"]:
                out["results"] += "\n" + _figure(note)
    if "abstract" in asks and "abstract" in out:
        out["abstract"] = _abstract(ctx, a, random.Random(1))
    return out
