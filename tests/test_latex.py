"""The paper's LaTeX: filling the template, compiling in the sandbox, and the repair loop.

Compilation is real: latexmk, pdflatex, bibtex and chktex under bubblewrap.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.brains.base import BrainInfo
from agent.brains.offline.brain import OfflineBrain
from agent.models import Citation, Edit
from agent.paper import latex
from agent.template.contract import PLACEHOLDERS, list_templates, load_template, placeholder, templates_root

SCAFFOLD = Path(__file__).resolve().parents[1] / "agent" / "template" / "scaffold"

PARTS = {
    "title": "Learning Rates in Tiny Diffusion Models",
    "brain": "offline brain (no LLM)",
    "abstract": "We study the learning rate of a small diffusion model.",
    "introduction": "Adam~\\citep{kingma2015adam} is our optimizer; see Figure~\\ref{fig:loss}.",
    "related_work": "Expectation maximisation~\\citep{dempster1977em} and diffusion~\\citep{ho2020denoising}.",
    "method": "We sweep the learning rate of the denoiser.",
    "experimental_setup": "Two seeds, one dataset.",
    "results": (
        "\\begin{figure}[t]\\centering\\includegraphics[width=0.6\\linewidth]{loss.png}"
        "\\caption{Loss curves.}\\label{fig:loss}\\end{figure}\n"
        "The loss falls as shown in Figure~\\ref{fig:loss}."
    ),
    "conclusion": "A learning rate matters.",
}
EXTRA_BIB = [
    Citation(key="ho2020denoising", bibtex="@article{ho2020denoising,\n  title={Denoising Diffusion Probabilistic "
             "Models},\n  author={Ho, Jonathan and Jain, Ajay and Abbeel, Pieter},\n  journal={NeurIPS},\n  year={2020}\n}"),
    Citation(key="kingma2015adam", bibtex="@misc{kingma2015adam, title={a duplicate that must not win}}"),
]


def png(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [3, 1, 0.5])
    fig.savefig(path)
    plt.close(fig)
    return path


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def write_paper(d: Path, body: str, bib: str = "") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "paper.tex").write_text(
        "\\documentclass{article}\n\\usepackage{graphicx}\n\\usepackage[numbers]{natbib}\n\\begin{document}\n"
        + body + "\n\\bibliographystyle{plainnat}\n\\bibliography{references}\n\\end{document}\n"
    )
    (d / "references.bib").write_text(bib or EXTRA_BIB[0].bibtex + "\n")
    return d


class ScriptedFixer:
    """Stands in for an external LLM answering `fix_latex`: it replays scripted edits and
    records the feedback it was given."""

    info = BrainInfo(kind="llm", model="scripted-fixer")

    def __init__(self, answers: list[list[Edit]]):
        self.answers = answers
        self.seen: list[str] = []

    def fix_latex(self, tex: str, log_tail: str, *, idea: str = "") -> list[Edit]:
        self.seen.append(log_tail)
        return self.answers.pop(0) if self.answers else []


# ---------------------------------------------------------------- filling and assembling


def test_fill_template_replaces_each_placeholder_in_one_pass():
    tpl = "\\title{%%TITLE%%}\n%%ABSTRACT%%\n%%RESULTS%%\n%%CONCLUSION%%"
    out = latex.fill_template(tpl, {"TITLE": "A $\\beta$ study", "abstract": "mentions %%RESULTS%% literally",
                                    "results": "R"})
    assert out == "\\title{A $\\beta$ study}\nmentions %%RESULTS%% literally\nR\n"
    with pytest.raises(ValueError, match="unknown paper parts"):
        latex.fill_template(tpl, {"discussion": "x"})


def test_merge_bib_keeps_the_first_entry_per_key():
    base = (SCAFFOLD / "latex" / "references.bib").read_text()
    merged = latex.merge_bib(base, EXTRA_BIB)
    assert merged.count("kingma2015adam") == 1 and "duplicate that must not win" not in merged
    assert "ho2020denoising" in merged and "dempster1977em" in merged


def test_assemble_and_compile_a_template_paper(tmp_path):
    tpl = load_template(SCAFFOLD)
    paper = tmp_path / "paper"
    tex = latex.assemble_paper(paper, tpl, PARTS, EXTRA_BIB, [png(tmp_path / "loss.png")])
    assert tex == paper / "paper.tex" and (paper / "loss.png").is_file()
    assert not any(placeholder(p) in tex.read_text() for p in PLACEHOLDERS)
    result = latex.compile_pdf(paper)
    assert result.ok and result.clean, result.problems
    text = pdf_text(result.pdf)
    assert "Learning Rates in Tiny Diffusion Models" in text
    assert "denoising diffusion probabilistic" in text.lower() and "adam: a method" in text.lower()  # bibtex ran
    assert "Figure 1" in text and "??" not in text  # references resolved


@pytest.mark.parametrize("name", [n for n in list_templates() if (templates_root() / n / "latex").is_dir()]
                         or [pytest.param("none", marks=pytest.mark.skip(reason="no template ships LaTeX yet"))])
def test_every_shipped_template_compiles_when_filled(tmp_path, name):
    tpl = load_template(name)
    parts = {p.lower(): f"Text of {p.lower().replace('_', ' ')}." for p in PLACEHOLDERS}
    latex.assemble_paper(tmp_path, tpl, parts, [], [])
    result = latex.compile_pdf(tmp_path)
    assert result.ok, result.log_tail
    assert [p for p in result.problems if not p.startswith("chktex")] == []


# ---------------------------------------------------------------- what compile_pdf reports


def test_compile_reports_each_kind_of_problem(tmp_path):
    paper = write_paper(tmp_path, "\n".join([
        "\\section{Intro}",
        "See Figure~\\ref{fig:nowhere} and \\citep{nokey}.",
        "\\includegraphics{absent.png}",
        "Broken \\textbff{command}.",
        "\\section{Intro}",
    ]))
    result = latex.compile_pdf(paper)
    assert not result.ok
    problems = "\n".join(result.problems)
    assert "undefined reference `fig:nowhere`" in problems
    assert "undefined citation `nokey`" in problems
    assert "missing file `absent.png`" in problems
    assert "duplicate section `Intro`" in problems
    assert "error on line 8: Undefined control sequence." in problems  # line 8 of paper.tex
    assert "\\textbff" in result.log_tail


def test_serious_chktex_warnings_are_problems(tmp_path):
    paper = write_paper(tmp_path, "An interval [0, 1) is fine prose.\n\n$x + y")
    problems = latex.compile_pdf(paper).problems
    assert any(p.startswith("chktex") and "Mathmode" in p for p in problems)
    assert not any("`)'" in p for p in problems)


# ---------------------------------------------------------------- the repair loop


def test_repair_loop_fixes_refs_figures_citations_underscores_and_sections(tmp_path):
    png(tmp_path / "loss.png")
    paper = write_paper(tmp_path, "\n".join([
        "\\section{Results}",
        "\\begin{figure}[t]\\includegraphics[width=0.5\\linewidth]{loss.png}\\caption{Loss.}\\label{fig:loss}\\end{figure}",
        "\\begin{figure}[t]\\includegraphics{missing.png}\\caption{Gone.}\\label{fig:gone}\\end{figure}",
        "As Figure~\\ref{fig:los} shows (a typo), unlike Figure~\\ref{fig:gone} and Table~\\ref{tab:x}.",
        "The run_1 config of learning_rate was best \\citep{ho2020denoisin,madeup2024}.",
        "\\section{Results}",
        "More results.",
    ]))
    result = latex.repair_loop(paper, ScriptedFixer([]))
    assert result.ok and result.clean, result.problems
    tex = (paper / "paper.tex").read_text()
    assert "Figure~\\ref{fig:loss} shows" in tex  # renamed to the close label
    assert "fig:gone" not in tex and "missing.png" not in tex and "tab:x" not in tex
    assert "\\citep{ho2020denoising}" in tex and "madeup2024" not in tex
    assert "run\\_1" in tex and "learning\\_rate" in tex
    assert tex.count("\\section{Results}") == 1 and "More results." in tex
    assert any("escaped underscores" in f for f in result.fixes)
    assert "More results." in pdf_text(result.pdf)


def test_repair_loop_applies_brain_edits_and_reports_refusals(tmp_path):
    paper = write_paper(tmp_path, "Broken \\textbff{command} here.")
    brain = ScriptedFixer([
        [Edit(path="paper.tex", search="\\textbf{command}", replace="\\textbf{command}")],  # not in the file
        [Edit(path="../escape.tex", search="x", replace="y")],  # outside the paper
        [Edit(path="paper.tex", search="\\textbff{command}", replace="\\textbf{command}")],
    ])
    result = latex.repair_loop(paper, brain, max_rounds=4)
    assert result.ok and result.clean, result.problems
    assert result.rounds == 3 and len(brain.seen) == 3
    assert "Undefined control sequence" in brain.seen[0]
    assert "refused" in brain.seen[1] and "SEARCH text not found" in brain.seen[1]
    assert "refused" in brain.seen[2] and "only change paper.tex" in brain.seen[2]
    assert not (tmp_path.parent / "escape.tex").exists()


def test_repair_loop_stops_when_nothing_can_change(tmp_path):
    paper = write_paper(tmp_path, "Broken \\textbff{command} here.")
    brain = ScriptedFixer([])
    result = latex.repair_loop(paper, brain, max_rounds=4)
    assert not result.ok and result.rounds == 1 and len(brain.seen) == 1


def test_repair_loop_with_the_offline_brain(tmp_path):
    paper = write_paper(tmp_path, "Research \\& development, and R&D too.")
    result = latex.repair_loop(paper, OfflineBrain())
    assert result.ok and result.clean, (result.problems, result.log_tail)
    assert "R\\&D" in (paper / "paper.tex").read_text()
