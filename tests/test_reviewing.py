"""Reviewing: reading a paper (PDF through sandboxed pdftotext), the review ensemble, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.brains.base import BrainInfo
from agent.brains.offline.brain import OfflineBrain
from agent.errors import UserError
from agent.models import Review
from agent.paper import latex
from agent.review.ensemble import review_paper
from agent.review.paper_text import paper_text

CLI = str(Path(sys.executable).parent / "ai-scientist")
REPO = Path(__file__).resolve().parents[1]

TEX = r"""\documentclass{article}
\title{Learning Rate Warmup in Small Diffusion Models}
\begin{document}
\maketitle
\begin{abstract}
We test whether warmup changes the evaluation loss of a small denoising diffusion model.
\end{abstract}
\section{Introduction}
Warmup is common. We ran 3 seeds and report 95\% confidence intervals and a Welch t-test.
\section{Method}
We sweep warmup steps and compare with the baseline.
\section{Experiments}
The evaluation loss was 0.512 for the baseline and 0.508 with warmup (no significant difference).
\section{Conclusion}
Warmup did not change the loss beyond seed-to-seed noise. A limitation is the small scale.
\end{document}
"""


def make_review(overall: int, summary: str = "s") -> Review:
    return Review(
        summary=summary, strengths=["clear"], weaknesses=["small"], originality=2, quality=3, clarity=3,
        significance=2, questions=[], limitations=[], ethical_concerns=False, soundness=3, presentation=3,
        contribution=2, overall=overall, confidence=3, decision="Accept" if overall >= 6 else "Reject",
    )


class EnsembleLLM:
    """Stands in for an external LLM: each review call gets the next score; meta averages."""

    info = BrainInfo(kind="llm", model="scripted", concurrent=True)

    def __init__(self, scores: list[int]):
        self.scores = list(scores)
        self.lock = threading.Lock()
        self.threads: set[int] = set()
        self.meta_inputs: list[list[Review]] = []

    def review(self, text: str, figures=(), *, idea: str = "") -> Review:
        with self.lock:
            self.threads.add(threading.get_ident())
            return make_review(self.scores.pop(0), summary=text[:20])

    def meta_review(self, reviews: list[Review], *, idea: str = "", paper_text: str = "",
                    reflections: int = 1) -> Review:
        self.meta_inputs.append(reviews)
        return make_review(round(sum(r.overall for r in reviews) / len(reviews)))


@pytest.fixture(scope="module")
def pdf(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pdf")
    (d / "paper.tex").write_text(TEX)
    result = latex.compile_pdf(d)
    assert result.ok, result.log_tail
    return result.pdf


def test_paper_text_reads_pdf_tex_txt_and_md(tmp_path, pdf):
    assert "Learning Rate Warmup in Small Diffusion Models" in paper_text(pdf)
    for suffix in (".tex", ".txt", ".md"):
        (tmp_path / f"p{suffix}").write_text(TEX)
        assert paper_text(tmp_path / f"p{suffix}") == TEX


def test_paper_text_refuses_missing_unsupported_and_broken_files(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        paper_text(tmp_path / "absent.pdf")
    (tmp_path / "paper.docx").write_text("x")
    with pytest.raises(UserError, match="unsupported file type .docx"):
        paper_text(tmp_path / "paper.docx")
    (tmp_path / "fake.pdf").write_bytes(b"%PDF-1.4 this is not a real pdf")
    with pytest.raises(UserError, match="fake.pdf"):
        paper_text(tmp_path / "fake.pdf")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(UserError, match="no text"):
        paper_text(tmp_path / "empty.txt")


def test_an_llm_ensemble_reviews_in_parallel_and_the_meta_sees_every_review():
    brain = EnsembleLLM([3, 7, 8])
    out = review_paper(brain, TEX, reviewers=3)
    assert sorted(r.overall for r in out.reviews) == [3, 7, 8]
    assert brain.meta_inputs == [out.reviews]
    assert out.meta.overall == 6 and out.meta.decision == "Accept"
    with pytest.raises(UserError, match="at least 1"):
        review_paper(brain, TEX, reviewers=0)


def test_the_offline_ensemble_is_deterministic_and_valid():
    brain = OfflineBrain()
    a = review_paper(brain, TEX, reviewers=2)
    b = review_paper(brain, TEX, reviewers=2)
    assert len(a.reviews) == 2 and a == b
    assert 1 <= a.meta.overall <= 10 and a.meta.decision in ("Accept", "Reject")
    assert a.meta.decision == ("Accept" if a.meta.overall >= 6 else "Reject")


def test_cli_review_prints_json_and_a_readable_review(tmp_path, pdf):
    out = subprocess.run([CLI, "review", str(pdf), "--reviewers", "2", "--json"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert len(data["reviews"]) == 2 and "overall" in data["meta"] and data["cost"] is None
    assert "offline" in data["brain"]
    (tmp_path / "paper.tex").write_text(TEX)
    human = subprocess.run([CLI, "review", str(tmp_path / "paper.tex"), "--reviewers", "3"], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert human.returncode == 0, human.stderr[-2000:]
    assert "Meta-review" in human.stdout and "Overall" in human.stdout and "R3" in human.stdout, human.stdout


@pytest.mark.parametrize("name", ["absent.pdf", "paper.docx"])
def test_cli_review_bad_input_is_one_line_and_exit_2(tmp_path, name):
    if name.endswith(".docx"):
        (tmp_path / name).write_text("x")
    out = subprocess.run([CLI, "review", str(tmp_path / name)], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1


def test_cli_review_with_an_llm_counts_its_calls_and_tokens(tmp_path):
    """The real `openai` client against a loopback server; 5 reviews (the default for an LLM), a
    meta-review and its reflection are 7 calls, all in the reported cost."""
    from tests.llm_server import LoopbackLLM, review_shaped

    (tmp_path / "paper.md").write_text("# A paper\n\nSome text.\n")
    with LoopbackLLM(default=lambda stage, req: review_shaped(stage, make_review(7 if stage == "review" else 6))) as srv:
        out = subprocess.run([CLI, "review", str(tmp_path / "paper.md"), "--model", "test-model", "--base-url",
                              srv.url, "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
        stages = srv.stages()
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert sorted(stages) == ["meta_review", "meta_review_reflect", *["review"] * 5]
    assert [r["overall"] for r in data["reviews"]] == [7] * 5
    assert data["meta"]["overall"] == 7, "the meta-review's scores are the ensemble's means, whatever it says"
    assert data["cost"]["calls"] == 7 and data["cost"]["prompt_tokens"] > 0
