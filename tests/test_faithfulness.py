"""The faithfulness check: every number in a paper must come from its results."""

from __future__ import annotations

import pytest

from agent.numbers import fmt
from agent.paper.faithfulness import check, printed_numbers

RESULTS = {
    "baseline": {"circle": {"means": {"eval_loss": 0.53214, "kl": 0.0011834},
                            "stderrs": {"eval_loss": 0.01187, "kl": 0.0002},
                            "per_seed": {"eval_loss": [0.5201, 0.5442, 0.5321]}}},
    "runs": [{"name": "run_1", "args": {"--learning_rate": "0.003"},
              "results": {"circle": {"means": {"eval_loss": 0.48795, "kl": 0.00091}}}}],
    "analysis": {"delta": -0.04419, "delta_pct": -8.3046, "p_value": 0.0213, "ci_low": 0.4611, "ci_high": 0.5148},
    "config": {"num_steps": 12345, "hidden": 128, "accuracy": 0.873},
}


def doc(body: str, preamble: str = "") -> str:
    return (
        "\\documentclass{article}\n\\usepackage[margin=1.25in]{geometry}\n" + preamble
        + "\n\\begin{document}\n" + body + "\n\\bibliography{references}\n\\end{document}\n"
    )


def test_a_paper_printed_with_fmt_from_its_results_is_faithful():
    base = RESULTS["baseline"]["circle"]["means"]
    a = RESULTS["analysis"]
    body = f"""
\\section{{Results}}\\label{{sec:results}}
Over 3 seeds the baseline reaches an evaluation loss of {fmt(base['eval_loss'])} $\\pm$
{fmt(RESULTS['baseline']['circle']['stderrs']['eval_loss'])}; with a learning rate of
{fmt(float(RESULTS['runs'][0]['args']['--learning_rate']))} it falls to
{fmt(RESULTS['runs'][0]['results']['circle']['means']['eval_loss'])}
({fmt(a['delta_pct'])}\\%, $p = {fmt(a['p_value'])}$, 95\\% CI [{fmt(a['ci_low'])}, {fmt(a['ci_high'])}]).
The KL divergence is {fmt(base['kl'])}, training runs {fmt(RESULTS['config']['num_steps'])} steps.
\\begin{{table}}[t]\\centering
\\begin{{tabular}}{{@{{}}lp{{2.5cm}}r@{{}}}}
Run & Loss & KL \\\\[2pt]
Baseline & {fmt(base['eval_loss'])} & {fmt(base['kl'])} \\\\
Run 1 & {fmt(0.48795)} & {fmt(0.00091)} \\\\
\\end{{tabular}}
\\caption{{Loss per run, see Figure~\\ref{{fig:loss_2}} and Section~4.2.}}\\label{{tab:1}}
\\end{{table}}
"""
    report = check(doc(body), RESULTS)
    assert report.ok, report.summary()
    assert report.checked >= 15


def test_an_invented_number_fails_with_its_context():
    body = "The baseline reaches 0.532, while our method reaches an impressive 0.4127 on circle."
    report = check(doc(body), RESULTS)
    assert not report.ok
    assert [b.text for b in report.bad] == ["0.4127"]
    assert report.bad[0].value == pytest.approx(0.4127)
    assert "impressive 0.4127 on circle" in report.bad[0].context
    assert "0.4127" in report.summary()


@pytest.mark.parametrize(
    ("printed", "value", "ok"),
    [
        ("0.123", 0.12349, True),
        ("0.124", 0.12349, False),
        ("0.124", 0.12351, True),
        ("0.123", 0.12351, False),
        ("0.12", 0.1249, True),
        ("0.13", 0.1249, False),
        ("0.50", 0.5049, True),
        ("0.50", 0.5051, False),
        ("1.2e-3", 0.00118, True),
        ("1.3e-3", 0.00118, False),
        ("$1.2\\times10^{-3}$", 0.00124, True),
        ("$1.18 \\times 10^{-3}$", 0.00118, True),
        ("$1.18 \\times 10^{-3}$", 0.00128, False),
        ("$10^{-4}$", 0.0001, True),
        ("$10^{-4}$", 0.001, False),
        ("1200", 1234, True),
        ("1300", 1234, False),
        ("12,345", 12345, True),
        ("12{,}346", 12345, False),
        ("1000", 1040, False),
        ("-0.04", -0.0442, True),
        ("a drop of 0.04", -0.0442, True),
        ("87.3\\%", 0.873, True),
        ("87.4\\%", 0.873, False),
        ("250.5", 250.46, True),
    ],
)
def test_rounding_shown_is_the_tolerance(printed, value, ok):
    report = check(doc(f"We measure {printed} on the held-out set."), {"x": value}, extra=())
    assert report.ok is ok, report.summary()


def test_percentages_may_be_relative_changes_between_like_values():
    results = {"run_0": {"means": {"loss": 0.5}}, "run_1": {"means": {"loss": 0.4}}}
    assert check(doc("Loss falls by 20.0\\% (a 1.25x reduction)."), results).ok
    assert check(doc("Loss falls by 0.1 in absolute terms."), results).ok
    assert not check(doc("Loss falls by 30\\%."), results).ok
    assert not check(doc("A 2.5x reduction."), results).ok


def test_markup_is_not_checked():
    body = r"""
\section{Method}\label{sec:3.14}
\begin{figure}[h]
\centering\includegraphics[width=0.47\linewidth, trim=1 2 3 4]{figs/loss_0.913.png}
\caption{Training curves.}\label{fig:77}
\end{figure}
\vspace{2.5em}\hspace*{3mm}
As shown by \citet{ho2020denoising} and \cite[p.~137]{song2021}, see Table~\ref{tab:99}.
\begin{tabular}{p{3.3cm}|c}\multicolumn{2}{c}{Header}\\\end{tabular}
\setlength{\tabcolsep}{4.5pt}\renewcommand{\arraystretch}{1.15}
% a comment with 0.777
"""
    preamble = "\\definecolor{mine}{rgb}{0.12,0.34,0.56}\n\\setlength{\\parskip}{0.7em}"
    report = check(doc(body, preamble), {}, extra=())
    assert report.ok, report.summary()
    assert report.checked == 0


def test_small_integers_years_and_structural_numbers_are_allowed():
    body = ("We use 3 seeds and 2 datasets (Section 4.2, Figure 2, Table 1). Ho et al. (2020) and "
            "Song, 2021 introduced score models. Results on CIFAR-10 with 2D toy data and GPT-4.")
    assert check(doc(body), {}, extra=()).ok
    report = check(doc("We ran 37 configurations and 2020 experiments."), {}, extra=())
    assert sorted(b.text for b in report.bad) == ["2020", "37"]
    assert check(doc("We ran 37 configurations."), {}, allowed_ints=40, extra=()).ok


def test_small_integer_percentages_and_ratios_are_claims():
    assert not check(doc("It is 5\\% better, or 2x faster."), {}, extra=()).ok


def test_conventional_thresholds_are_allowed_by_default():
    body = "Significant at $p < 0.05$ with 95\\% confidence intervals."
    assert check(doc(body), {}).ok
    assert not check(doc(body), {}, extra=()).ok


def test_results_may_hold_numbers_as_strings_lists_and_keys():
    results = {"args": {"--lr": "3e-3"}, "per_seed": [0.1111, 0.2222], "by_width": {"512": 0.9}}
    assert check(doc("lr of 0.003; seeds gave 0.111 and 0.222 at width 512."), results, extra=()).ok


def test_printed_numbers_reports_sign_percent_and_position():
    tex = doc("Change of $-$0.25 or -1.5\\%, ranging 0.1-0.2.")
    nums = printed_numbers(tex)
    by_text = {n.text: n for n in nums}
    assert by_text["0.25"].value == -0.25
    assert by_text["1.5"].value == -1.5 and by_text["1.5"].percent
    assert by_text["0.2"].value == 0.2  # a range's dash is not a minus
    assert all(tex[n.start:n.end].strip() == n.text for n in nums)
