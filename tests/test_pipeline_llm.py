"""End to end through the LLM brain: the real `ai-scientist` CLI in a subprocess, the real
`openai` client, bubblewrap, latexmk and SQLite, against the loopback OpenAI server.

Each test runs one idea on a toy template (pure-Python experiment, one matplotlib figure)
in its own tmp folder: experiments, archive, LLM cache and ledger all live inside it, so
the API key can be searched for in every file the run wrote.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from agent.archive.store import Archive
from agent.brains.llm.brain import (
    Choice,
    CitationStep,
    EditAnswer,
    EditList,
    FigureCritiques,
    Placement,
)
from agent.models import Edit, FigureCritique, PlotPlan
from agent.template.contract import SECTIONS, load_template
from tests.fake_scholar import FakeScholar
from tests.helpers import cli
from tests.llm_server import (
    MISSING_SEARCH,
    PROSE,
    LoopbackLLM,
    ScriptedBrainAnswers,
    missing_search_run,
    rate_limited,
    server_error,
    write_toy_template,
)

pytestmark = pytest.mark.slow

API_KEY = "sk-e2e-3f9c1a7be0d44c21-DO-NOT-LEAK"
MODEL = "test-model"
# Every Brain stage one idea passes through with 2 runs and 2 reviewers, and how often: the
# scripted model reflects on its idea once and then says it is done, searches once before it
# judges novelty, plans 2 runs (--max-runs 2), writes a notebook entry per run,
# finds its figures fine at the first look, is done with citations at once (before writing and
# over the draft), and drafts and refines each section.
EXPECTED_CALLS = Counter(
    {
        "ideas": 1,
        "ideas_reflect": 2,
        "novelty": 2,
        "next_run": 2,
        "run_notes": 2,
        "plot_plan": 1,
        "describe_figures": 1,
        "vision_probe": 1,
        "critique_figures": 1,
        **{f"write_section:{s}": 1 for s in ("title", *SECTIONS)},
        **{f"refine_section:{s}": 1 for s in SECTIONS},
        "citations": 2,
        "polish": 1,
        "review": 2,
        "meta_review": 1,
        "meta_review_reflect": 1,
    }
)
# The NeurIPS review form, as every review and the meta-review must fill it.
NEURIPS_FIELDS = {
    "summary", "strengths", "weaknesses", "originality", "quality", "clarity", "significance",
    "questions", "limitations", "ethical_concerns", "soundness", "presentation", "contribution",
    "overall", "confidence", "decision",
}

# The toy template's plot.py draws nothing; the writeup needs one real figure.
PLOT_PY = '''"""One bar chart of the loss per run, with standard-error bars."""
import argparse, json, os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

p = argparse.ArgumentParser()
p.add_argument("--labels", default=None)
p.add_argument("--out_dir", default=".")
a = p.parse_args()
runs = sorted(d.name for d in Path(".").glob("run_*") if (d / "final_info.json").is_file())
labels = json.loads(Path(a.labels).read_text()) if a.labels else {r: r for r in runs}
labels = {r: lab for r, lab in labels.items() if r in runs}
infos = {r: json.loads(Path(r, "final_info.json").read_text())["easy"] for r in labels}
os.makedirs(a.out_dir, exist_ok=True)
fig, ax = plt.subplots(figsize=(4, 3))
ax.bar(range(len(infos)), [i["means"]["loss"] for i in infos.values()],
       yerr=[i["stderrs"]["loss"] for i in infos.values()])
ax.set_xticks(range(len(infos)), list(labels.values()))
fig.savefig(os.path.join(a.out_dir, "loss.png"), dpi=80)
'''


# ------------------------------------------------------------------ helpers


class Lab:
    """One tmp folder holding a template, its runs, the archive, and the server's script."""

    def __init__(self, root: Path, *, runs: int = 2, prices: dict | None = None):
        self.root = root
        self.template = write_toy_template(root / "templates")
        (self.template / "plot.py").write_text(PLOT_PY)
        self.answers = ScriptedBrainAnswers(load_template(str(self.template)), runs=runs)
        self.env = {
            "AI_SCIENTIST_API_KEY": API_KEY,
            "OPENAI_API_KEY": "",
            "AI_SCIENTIST_EXPERIMENTS": str(root / "experiments"),
            "AI_SCIENTIST_ARCHIVE": str(root / "archive"),
            "AI_SCIENTIST_PRICES": "",
            "COLUMNS": "200",  # rich tables (status) unwrapped
        }
        if prices is not None:
            (root / "prices.json").write_text(json.dumps({"models": prices}))
            self.env["AI_SCIENTIST_PRICES"] = str(root / "prices.json")

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return cli(*args, cwd=self.root, env=self.env, timeout=300)

    def run(self, srv: LoopbackLLM, *extra: str, max_runs: int = 2, reviewers: int = 2) -> subprocess.CompletedProcess:
        return self.cli(
            "run", "--template", str(self.template), "--model", MODEL, "--base-url", srv.url,
            "--num-ideas", "1", "--search", "linear", "--max-runs", str(max_runs),
            "--reviewers", str(reviewers),
            "--literature", "offline", *extra,
        )

    def run_id(self) -> str:
        runs = [p.parent.name for p in (self.root / "experiments").glob("*/settings.json")]
        assert len(runs) == 1, runs
        return runs[0]

    def run_dir(self) -> Path:
        return self.root / "experiments" / self.run_id()

    def papers(self) -> list[dict]:
        res = self.cli("archive", "list", "--json")
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def ledger(self) -> list[dict]:
        return [json.loads(line) for line in (self.run_dir() / "usage.jsonl").read_text().splitlines() if line]


def server(lab: Lab) -> LoopbackLLM:
    """The loopback server answering every stage validly, accepting only our key."""
    return LoopbackLLM(default=lab.answers, api_key=API_KEY)


def ok(res: subprocess.CompletedProcess) -> None:
    assert res.returncode == 0, f"exit {res.returncode}\nSTDOUT:\n{res.stdout[-3000:]}\nSTDERR:\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr[-3000:]


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def assert_no_secret(root: Path, *outputs: subprocess.CompletedProcess) -> None:
    """The API key is in no file the run wrote (checkpoints, cache, ledger, logs, archive)."""
    secret = API_KEY.encode()
    leaked = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and secret in p.read_bytes()]
    assert not leaked, f"API key written to {leaked}"
    for res in outputs:
        assert API_KEY not in res.stdout + res.stderr


def assert_paper(lab: Lab, srv: LoopbackLLM, reviewers: int) -> tuple[dict, Path]:
    """Exactly one archived paper, a real PDF written and reviewed by the LLM brain."""
    papers = lab.papers()
    assert len(papers) == 1, papers
    paper = papers[0]
    folder = lab.root / "archive" / paper["id"]
    pdf = folder / "paper.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    meta = json.loads((folder / "meta.json").read_text())
    assert (meta["brain"], meta["model"]) == ("llm", MODEL)
    assert meta["run_id"] == lab.run_id()
    text = pdf_text(pdf)
    assert words(meta["title"]) in words(text), "the PDF does not show the paper's title"
    assert "LLM brain" in text and MODEL in text, "the paper does not say which brain wrote it"
    # The sections the server wrote are the paper's text.
    assert words(lab.answers.section_text("conclusion", [])) in words(text)
    review = json.loads((folder / "review.json").read_text())
    assert len(review["reviews"]) == reviewers
    for r in [review["meta"], *review["reviews"]]:
        assert NEURIPS_FIELDS <= set(r), NEURIPS_FIELDS - set(r)
        assert 1 <= r["overall"] <= 10 and r["decision"] in ("Accept", "Reject")
    cost = json.loads((folder / "cost.json").read_text())
    assert cost["prompt_tokens"] > 0 and cost["completion_tokens"] > 0
    for stage in ("novelty", "next_run", "describe_figures", "write_section:results", "review"):
        assert cost["by_stage"][stage]["prompt_tokens"] > 0, stage
    assert all(r.authorized and r.body["model"] == MODEL for r in srv.requests)
    return meta, folder


# ------------------------------------------------------------------ 1. the happy path


def test_one_idea_through_the_llm_brain_ends_in_a_reviewed_pdf(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    with server(lab) as srv:
        res = lab.run(srv)
        ok(res)
        stages = Counter(srv.stages())
        _, folder = assert_paper(lab, srv, reviewers=2)
    assert stages == EXPECTED_CALLS, f"calls differ from a clean pass: {stages - EXPECTED_CALLS} extra, " \
                                     f"{EXPECTED_CALLS - stages} missing"
    assert "1 paper(s)" in res.stdout and str(folder / "paper.pdf") in res.stdout.replace("\n", "")
    # The run's ledger has a row per call; the paper's cost covers the idea's calls.
    rows = lab.ledger()
    assert len(rows) == sum(EXPECTED_CALLS.values()) and all(r["ok"] for r in rows)
    idea_calls = json.loads((folder / "cost.json").read_text())["calls"]
    assert idea_calls == sum(1 for r in rows if r["idea"])
    assert_no_secret(tmp_path, res)


# ------------------------------------------------------------------ 2. faults mid-pipeline


def test_faults_mid_pipeline_are_retried_repaired_and_recorded(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    with server(lab) as srv:
        srv.add("novelty", rate_limited(1))  # then the default answer
        srv.add("write_section:results", server_error(500))
        srv.add("plot_plan", PROSE)  # repaired in one round
        srv.add("next_run", missing_search_run())  # refused, fed back to fix_run, fixed
        res = lab.run(srv)
        ok(res)
        assert srv.pending() == {}, "a scripted fault was never asked for"
        meta, folder = assert_paper(lab, srv, reviewers=2)
        novelty = srv.for_stage("novelty")
        fixes = srv.for_stage("fix_run")
        plot_plans = srv.for_stage("plot_plan")
    # 429 with Retry-After: 1 -> the same request again, no sooner than asked (then the loop's
    # second round).
    assert len(novelty) == 3 and novelty[0].body == novelty[1].body
    assert novelty[1].at - novelty[0].at >= 0.95
    # Prose -> one repair round that quotes the validation error.
    assert len(plot_plans) == 2 and "no JSON object" in plot_plans[1].user
    # The refused edit went back to the brain with its reason, and the fix ran.
    assert len(fixes) == 1 and "SEARCH text not found" in fixes[0].prompt
    workdir = lab.run_dir() / meta["idea_name"]
    state = lab.run_dir() / f"{meta['idea_name']}.state"  # the orchestrator's own record of the idea
    notes = (state / "notes.md").read_text()
    assert "edit refused" in notes and "SEARCH text not found" in notes
    assert "edit refused" in (folder / "notes.md").read_text()
    runs = json.loads((state / "runs.json").read_text())
    assert [r["ok"] for r in runs] == [True, True] and runs[0]["fixes"] == 1
    assert MISSING_SEARCH not in (workdir / "experiment.py").read_text()
    # Every failed call is in the ledger with its reason; the paper's cost counts them.
    failed = {(r["stage"], r["error"].split(":")[0]) for r in lab.ledger() if not r["ok"]}
    assert failed == {("novelty", "HTTP 429"), ("write_section:results", "HTTP 500"), ("plot_plan", "invalid output")}
    assert json.loads((folder / "cost.json").read_text())["failed_calls"] == 3
    assert_no_secret(tmp_path, res)


# ------------------------------------------------------------------ 3. budget stop and resume


def test_budget_stops_the_run_and_resume_finishes_it_once(tmp_path: Path) -> None:
    # $1000 per 1M prompt tokens: a whole paper costs a few dollars; $2 runs out midway.
    lab = Lab(tmp_path, prices={MODEL: {"input": 1000.0, "output": 0.0}})
    with server(lab) as srv:
        stopped = lab.run(srv, "--budget-usd", "2")
        first = Counter(srv.stages())
        lines = [ln for ln in stopped.stderr.splitlines() if ln.strip()]
        assert stopped.returncode == 2, stopped.stdout[-2000:] + stopped.stderr[-2000:]
        assert len(lines) == 1 and "budget" in lines[0], stopped.stderr
        assert "ideas" in first and "meta_review" not in first, first
        assert lab.papers() == []
        spent = sum(r["cost_usd"] for r in lab.ledger())
        assert 0 < spent <= 2
        status = lab.cli("status", lab.run_id())
        ok(status)
        assert "stopped" in status.stdout

        resumed = lab.cli("resume", lab.run_id(), "--budget-usd", "100")
        ok(resumed)
        assert_paper(lab, srv, reviewers=2)
        # Finished stages were not asked again, and nothing was asked twice.
        assert Counter(srv.stages()) == EXPECTED_CALLS
        again = lab.cli("resume", lab.run_id(), "--budget-usd", "100")
        ok(again)
        assert len(srv.requests) == sum(EXPECTED_CALLS.values())
    assert len(lab.papers()) == 1, "a resumed run archived its paper twice"
    assert json.loads((lab.run_dir() / "settings.json").read_text())["budget_usd"] == 100
    assert_no_secret(tmp_path, stopped, resumed, again)


# ------------------------------------------------------------------ 4. garbage at one stage


@pytest.mark.parametrize("stage", ["novelty", "review"])
def test_garbage_at_one_stage_fails_the_idea_cleanly(tmp_path: Path, stage: str) -> None:
    lab = Lab(tmp_path, runs=1)
    with server(lab) as srv:
        srv.add(stage, PROSE, PROSE)  # the answer and its repair round
        res = lab.run(srv, max_runs=1, reviewers=1)
        assert len(srv.for_stage(stage)) == 2
    ok(res)  # one idea failing is not the run failing
    assert lab.papers() == []
    outcomes = Archive(tmp_path / "archive").outcomes(lab.run_id())
    assert [(o.stage, o.status) for o in outcomes] == [(stage, "failed")]
    reason = outcomes[0].reason
    assert "invalid output" in reason and "no JSON object" in reason
    assert f"failed at {stage}" in res.stdout
    assert reason[:60] in (tmp_path / "archive" / "last-night.html").read_text()
    status = lab.cli("status")
    ok(status)
    assert "failed" in status.stdout and "invalid output" in status.stdout
    assert_no_secret(tmp_path, res)


def test_garbage_at_ideation_ends_the_run_without_a_traceback(tmp_path: Path) -> None:
    """No idea exists yet to fail: the run stops (exit 2, one line) or ends empty (exit 0),
    saying why either way."""
    lab = Lab(tmp_path, runs=1)
    with server(lab) as srv:
        srv.add("ideas", PROSE, PROSE)
        res = lab.run(srv, max_runs=1, reviewers=1)
        assert srv.stages() == ["ideas", "ideas"]
    assert res.returncode in (0, 2) and "Traceback" not in res.stderr, res.stderr[-3000:]
    if res.returncode == 2:
        # a warning (an unpriced model) may come first; the error itself is one line
        lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "ideas" in lines[0] and "invalid output" in lines[0], res.stderr
    else:
        assert "invalid output" in res.stdout
    assert lab.papers() == []
    ok(lab.cli("status", lab.run_id()))


# ------------------------------------------------------------------ 5. citations found online reach the PDF


def test_a_paper_found_online_is_cited_and_listed_in_the_pdf(tmp_path: Path) -> None:
    """The novelty loop and the citation rounds search a fake Semantic Scholar; the model chooses
    a paper before writing and cites it over the draft; it is in the compiled PDF's references.
    A number the results do not hold is repaired before the review (the faithfulness check)."""
    lab = Lab(tmp_path, runs=1)
    key, title = "Ho2020DenoisingDD", "Denoising Diffusion Probabilistic Models"
    invented = "a loss of 0.987654 in every run"
    with FakeScholar() as fake, server(lab) as srv:
        lab.env |= {"AI_SCIENTIST_S2_URL": fake.url, "AI_SCIENTIST_OPENALEX_URL": fake.url}
        srv.add("citations",
                CitationStep(query="denoising diffusion probabilistic models"),  # before writing: search ...
                CitationStep(choose=[Choice(key=key, note="the DDPM the template trains")], done=True),  # ... choose
                CitationStep(place=[Placement(key=key, section="related_work", search="In this related work section",
                                              replace=f"In this related work section~\\citep{{{key}}}")], done=True))
        srv.add("write_section:results", lab.answers.section_text("results", []) + f" We measured {invented}.")
        res = lab.cli("run", "--template", str(lab.template), "--model", MODEL, "--base-url", srv.url,
                      "--num-ideas", "1", "--search", "linear", "--max-runs", "1", "--reviewers", "1", "--literature", "online")
        ok(res)
        assert srv.pending() == {}
        meta, folder = assert_paper(lab, srv, reviewers=1)
        stages = srv.stages()
    assert [q.params["query"] for q in fake.requests if q.api == "s2"][:2] == [
        "knob sweep baseline", "denoising diffusion probabilistic models"]  # the model's queries, in order
    refs = pdf_text(folder / "paper.pdf").split("References")[-1]
    assert words(title) in words(refs), refs[:2000]  # plainnat lower-cases and wraps the title
    tex = (folder / "paper.tex").read_text()
    assert f"\\citep{{{key}}}" in tex
    state = lab.run_dir() / f"{meta['idea_name']}.state"
    assert [c["key"] for c in json.loads((state / "citations.json").read_text())] == [key]
    # Faithfulness: the invented number went to fix_numbers and is not in the paper.
    assert "fix_numbers" in stages and "0.987654" not in tex
    assert json.loads((folder / "review.json").read_text())["faithfulness"]["ok"] is True
    # The novelty decision and the papers behind it are in idea.json.
    check = json.loads((folder / "idea.json").read_text())["novelty_check"]
    assert check["novel"] and check["rounds"] == 2 and check["queries"] == ["knob sweep baseline"]
    assert check["papers"] and check["papers"][0]["source"] == "semantic_scholar"
    # The coder's memory and the model's own notebook entry.
    assert (state / "memory.json").is_file()
    assert "In run_1 we changed one setting" in (state / "notes.md").read_text()
    assert_no_secret(tmp_path, res)


# ------------------------------------------------------------------ 6. plot errors and a bad figure are fixed


def test_a_broken_plot_is_fixed_and_a_bad_figure_revised(tmp_path: Path) -> None:
    lab = Lab(tmp_path, runs=1)
    crash = "raise RuntimeError('plot crash: no such column')\n"
    anchor = "fig, ax = plt.subplots(figsize=(4, 3))\n"
    xticks = "ax.set_xticks(range(len(infos)), list(labels.values()))\n"
    with server(lab) as srv:
        srv.add("plot_plan", PlotPlan(labels={"run_0": "Baseline", "run_1": "lr"},
                                      edits=[Edit(path="plot.py", search=anchor, replace=crash + anchor)]))
        srv.add("fix_plot",
                EditList(edits=[EditAnswer(path="plot.py", search=crash, replace="")]),  # the error, fixed
                EditList(edits=[EditAnswer(path="plot.py", search=xticks,  # the critique, answered
                                           replace=xticks + "ax.set_ylabel('final loss')\nax.set_title('Loss per run')\n")]))
        srv.add("critique_figures", FigureCritiques(figures=[FigureCritique(
            file="loss.png", ok=False, problems=["the y axis has no label"], fix="label the y axis 'final loss'")]))
        res = lab.run(srv, max_runs=1, reviewers=1)
        ok(res)
        assert srv.pending() == {}
        meta, folder = assert_paper(lab, srv, reviewers=1)
        fixes = srv.for_stage("fix_plot")
        looks = srv.for_stage("critique_figures")
        reviews = srv.for_stage("review")
    assert "plot crash: no such column" in fixes[0].prompt  # the traceback went back to the model
    assert "the y axis has no label" in fixes[1].prompt  # and so did the critique
    assert len(looks) == 2 and len(looks[0].images) == len(looks[1].images) == 1
    assert looks[0].images != looks[1].images  # the model saw the revised figure
    plot_py = (lab.run_dir() / meta["idea_name"] / "plot.py").read_text()
    assert "set_ylabel('final loss')" in plot_py and "plot crash" not in plot_py
    notes = (lab.run_dir() / f"{meta['idea_name']}.state" / "notes.md").read_text()
    assert "## figures, critique 1\n- loss.png: the y axis has no label" in notes
    assert "## figures, critique 2\n- loss.png: ok" in notes
    assert reviews[0].images  # the reviewer saw the figure too
    assert_no_secret(tmp_path, res)
