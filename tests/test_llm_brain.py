"""LLMBrain through the real `openai` client against the loopback server: typed results for
every Brain method, compact prompts, idea tags, and the bad-edit and crashing-code faults."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.brains import make_brain
from agent.brains.base import Brain
from agent.brains.llm.brain import EditAnswer, IdeaList, LLMBrain, NextRunAnswer, RunAnswer
from agent.brains.llm.client import LLMClient
from agent.brains.llm.ledger import Ledger
from agent.edits import EditRefused, apply_edits
from agent.errors import ConfigError, StageFailed
from agent.models import (
    ArchivedIdea,
    Citation,
    Edit,
    ExperimentContext,
    FigureNote,
    Idea,
    IdeationContext,
    LiteratureHit,
    NoveltyDecision,
    PaperContext,
    PlannedRun,
    PlotPlan,
    Review,
    RunRecord,
)
from agent.template.contract import SECTIONS, Template, load_template
from tests.llm_server import (
    PROSE,
    LoopbackLLM,
    ScriptedBrainAnswers,
    crashing_run,
    missing_search_run,
    uncrash_run,
    write_toy_template,
)

EDITABLE = ("experiment.py", "plot.py")  # what a stage lets a brain edit

KEY = "sk-loopback-test-key"
BASELINE = {"easy": {"means": {"loss": 0.3125}, "stderrs": {"loss": 0.004}, "per_seed": {"loss": [0.31, 0.315]}}}


@pytest.fixture
def toy(tmp_path: Path) -> Template:
    return load_template(write_toy_template(tmp_path / "templates"))


@pytest.fixture
def server(toy: Template):
    with LoopbackLLM(default=ScriptedBrainAnswers(toy), api_key=KEY) as srv:
        yield srv


@pytest.fixture
def brain(server: LoopbackLLM) -> LLMBrain:
    return LLMBrain(LLMClient("test-model", base_url=server.url, api_key=KEY, backoff_s=0.01, timeout_s=10))


def idea() -> Idea:
    return Idea(
        name="lr_effect",
        title="Learning rate effect",
        hypothesis="A larger learning rate lowers the loss.",
        experiment="Sweep lr.",
        interestingness=5,
        feasibility=8,
        novelty=4,
        knobs=["lr"],
    )


def experiment_ctx(toy: Template, history: list[RunRecord] | None = None, code: str | None = None) -> ExperimentContext:
    return ExperimentContext(
        idea=idea(),
        template=toy,
        scale="smoke",
        baseline=BASELINE,
        history=history or [],
        max_runs=3,
        code=code if code is not None else (toy.path / "experiment.py").read_text(),
    )


def paper_ctx(toy: Template) -> PaperContext:
    run = RunRecord(name="run_1", planned=PlannedRun(description="lr 0.01", args={"--lr": "0.01"}), ok=True, results=BASELINE)
    failed = RunRecord(name="run_2", planned=PlannedRun(description="lr 0.1"), ok=False, error="Traceback\nValueError: nan")
    return PaperContext(
        idea=idea(),
        template=toy,
        scale="smoke",
        baseline=BASELINE,
        runs=[run, failed],
        analysis={"best": "run_1", "effect": 0.0123},
        figures=[FigureNote(file="loss.png", caption="Loss per run.", description="Bars.")],
        literature=[
            LiteratureHit(
                title="Adam",
                abstract="A method for stochastic optimization.",
                year=2015,
                source="bib",
                bibtex="@article{kingma2015adam, title={Adam}, author={Kingma}, year={2015}}",
            )
        ],
        bib_keys=["ho2020ddpm"],
    )


def test_every_brain_method_returns_its_typed_result(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    assert isinstance(brain, Brain)
    assert brain.info.kind == "llm" and brain.info.model == "test-model"
    ideas = brain.ideas(IdeationContext(template=toy, archive=[], seed_ideas=[], num_ideas=2, reflections=1))
    assert len(ideas) == 2 and all(isinstance(i, Idea) for i in ideas)
    assert isinstance(brain.novelty(ideas[0], []), NoveltyDecision)
    run = brain.next_run(experiment_ctx(toy))
    assert isinstance(run, PlannedRun) and run.args == {"--lr": "0.0001"}
    ctx = paper_ctx(toy)
    assert isinstance(brain.fix_run(experiment_ctx(toy), ctx.runs[1], "ValueError: nan"), PlannedRun)
    plan = brain.plot_plan(ctx)
    assert isinstance(plan, PlotPlan) and set(plan.labels) == {"run_0", "run_1"}  # the failed run is left out
    notes = brain.describe_figures(ctx, ["loss.png", "curves.png"])
    assert [n.file for n in notes] == ["loss.png", "curves.png"]
    written: dict[str, str] = {"title": brain.write_section(ctx, "title", {})}
    for section in SECTIONS:
        written[section] = brain.write_section(ctx, section, written)
        assert isinstance(written[section], str) and written[section]
    assert "\n" not in written["title"]
    assert "\\includegraphics[width=0.9\\linewidth]{loss.png}" in written["results"]
    assert brain.citations(ctx) == []
    assert brain.fix_latex("\\documentclass{article}\n\\begin{document}\nx\n\\end{document}\n", "! Error\nl.3 x") == []
    assert isinstance(brain.fix_numbers(ctx, "results", "loss 9.99", ["9.99"]), str)
    reviews = [brain.review("A paper.") for _ in range(3)]
    assert all(isinstance(r, Review) for r in reviews)
    assert isinstance(brain.meta_review(reviews), Review)
    revised = brain.revise(ctx, {"results": "old", "conclusion": "old"}, reviews[0])
    assert revised["results"] == "old" and revised["conclusion"] != "old"
    # Every request named its stage in the header and in the system prompt's first line.
    for req in server.requests:
        assert req.authorized and req.stage
        assert req.system.splitlines()[0] == f"[stage: {req.stage}]"
    assert server.stages().count("ideas_reflect") == 1
    assert server.stages().count("meta_review_reflect") == 1
    assert {f"write_section:{s}" for s in SECTIONS} <= set(server.stages())
    assert len(brain.client.ledger.calls) == len(server.requests)


def test_ledger_rows_carry_the_idea_each_call_names(brain: LLMBrain, toy: Template):
    """A call's idea comes from its context, or is named by the caller (review, fix_latex); a
    paper from outside the pipeline is reviewed for no idea."""
    brain.next_run(experiment_ctx(toy))
    reviews = [brain.review("A paper.", idea="lr_effect") for _ in range(2)]
    brain.meta_review(reviews, idea="lr_effect")
    brain.fix_latex("a\nb\n", "l.1 x", idea="other_idea")
    brain.review("An unrelated paper about something else.")
    ledger = brain.client.ledger
    assert [c.idea for c in ledger.calls] == ["lr_effect"] * 5 + ["other_idea", ""]
    assert ledger.summary(idea="lr_effect")["calls"] == 5


def test_ideas_avoid_the_archive_and_unknown_knobs(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    archive = [ArchivedIdea(template="toy", name=f"lr_sweep_{i}", title="t", hypothesis="h", score=i) for i in range(30)]
    bad = IdeaList(
        ideas=[
            Idea(name="lr_sweep_3", title="repeat", hypothesis="h", experiment="e", interestingness=5, feasibility=5, novelty=5),
            Idea(
                name="width_probe",
                title="new",
                hypothesis="h",
                experiment="e",
                interestingness=5,
                feasibility=5,
                novelty=5,
                knobs=["width", "no_such_knob"],
            ),
        ]
    )
    server.add("ideas", bad)
    got = brain.ideas(IdeationContext(template=toy, archive=archive, seed_ideas=[], num_ideas=2, reflections=0))
    assert [i.name for i in got] == ["width_probe"]
    assert got[0].knobs == ["width"]
    prompt = server.for_stage("ideas")[0].prompt
    assert "lr_sweep_29" in prompt  # best scored first ...
    assert "- lr_sweep_0:" not in prompt  # ... and only the top of the archive in full


def test_next_run_is_none_when_done_or_out_of_runs(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    server.add("next_run", NextRunAnswer(done=True, reason="answered"))
    assert brain.next_run(experiment_ctx(toy)) is None
    full = [RunRecord(name=f"run_{i}", planned=PlannedRun(description="x"), ok=True, results=BASELINE) for i in (1, 2, 3)]
    before = len(server.requests)
    assert brain.next_run(experiment_ctx(toy, history=full)) is None
    assert len(server.requests) == before  # no call once max_runs is reached


def test_a_bad_edit_is_refused_then_fixed_from_the_error(
    brain: LLMBrain, server: LoopbackLLM, toy: Template, tmp_path: Path
):
    work = tmp_path / "work"
    shutil.copytree(toy.path, work)
    server.add("next_run", missing_search_run())
    server.add("fix_run", RunAnswer(description="width 32", edits=[EditAnswer(search="WIDTH = 16", replace="WIDTH = 32")]))
    ctx = experiment_ctx(toy, code=(work / "experiment.py").read_text())
    run = brain.next_run(ctx)
    assert run is not None
    with pytest.raises(EditRefused) as refused:
        apply_edits(work, run.edits, EDITABLE)
    failed = RunRecord(name="run_1", planned=run, ok=False, error=str(refused.value))
    fixed = brain.fix_run(ctx, failed, str(refused.value))
    apply_edits(work, fixed.edits, EDITABLE)
    assert "WIDTH = 32" in (work / "experiment.py").read_text()
    assert "SEARCH text not found" in server.for_stage("fix_run")[0].prompt


def test_crashing_code_gets_its_traceback_back_and_is_fixed(
    brain: LLMBrain, server: LoopbackLLM, toy: Template, tmp_path: Path
):
    work = tmp_path / "work"
    shutil.copytree(toy.path, work)
    server.add("next_run", crashing_run((work / "experiment.py").read_text()))
    server.add("fix_run", uncrash_run())

    def run_experiment() -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "experiment.py", "--out_dir", "run_1", "--seeds", "0,1", "--datasets", "easy"]
        return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=60)

    run = brain.next_run(experiment_ctx(toy))
    assert run is not None
    apply_edits(work, run.edits, EDITABLE)
    proc = run_experiment()
    assert proc.returncode != 0
    failed = RunRecord(name="run_1", planned=run, ok=False, error=proc.stderr)
    fixed = brain.fix_run(experiment_ctx(toy, code=(work / "experiment.py").read_text()), failed, proc.stderr)
    assert "RuntimeError: injected crash: loss is nan" in server.for_stage("fix_run")[0].prompt
    apply_edits(work, fixed.edits, EDITABLE)
    assert run_experiment().returncode == 0
    assert (work / "run_1" / "final_info.json").is_file()


def test_prompts_stay_compact(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    ctx = paper_ctx(toy)
    brain.write_section(ctx, "introduction", {"abstract": "An abstract."})
    brain.write_section(ctx, "results", {})
    intro, results = (r.prompt for r in server.for_stage("write_section"))
    assert "import argparse" not in intro + results  # no code outside code-editing stages
    assert "0.0123" in results and "0.0123" not in intro  # numbers only where the section needs them
    assert "per_seed" not in results  # results are summarised, not pasted
    tex = "\n".join(f"line {i}" for i in range(1, 401))
    brain.fix_latex(tex, "! Undefined control sequence.\nl.200 \\foo")
    sent = server.for_stage("fix_latex")[0].prompt
    assert "line 200" in sent and "line 150" not in sent and "line 1\n" not in sent


def test_citations_keep_only_new_valid_bibtex(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    ctx = paper_ctx(toy)
    good = Citation(key="kingma2015adam", bibtex="@article{kingma2015adam, title={Adam}, author={Kingma}, year={2015}}")
    dup = Citation(key="ho2020ddpm", bibtex="@article{ho2020ddpm, title={DDPM}}")
    junk = Citation(key="made_up", bibtex="not bibtex")
    server.add("citations", {"citations": [good.model_dump(), dup.model_dump(), junk.model_dump()]})
    assert brain.citations(ctx) == [good]


def test_citations_skip_malformed_bibtex(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    ctx = paper_ctx(toy)
    cut = Citation(key="cut2020", bibtex="@article{cut2020, title={never closed}")
    renamed = Citation(key="a2020", bibtex="@article{b2020, title={B}}")
    trailing = Citation(key="ok2020", bibtex="@article{ok2020, title={OK}}\n\\input{/etc/passwd}")
    server.add("citations", {"citations": [cut.model_dump(), renamed.model_dump(), trailing.model_dump()]})
    assert brain.citations(ctx) == [Citation(key="ok2020", bibtex="@article{ok2020, title={OK}}")]


def test_declared_figures_keep_their_declared_caption(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    """The model sees what template.toml says each figure shows; a declared figure's caption is
    the one written from its declaration, whatever the model answers, and an undeclared one's
    (added by a plot.py edit) is the model's."""
    notes = brain.describe_figures(paper_ctx(toy), ["loss.png", "curves.png"])
    assert notes[0].caption.startswith("The final loss of each run, with standard-error bars.")
    assert notes[0].description == "Each curve is one labelled run."  # the model's words
    assert notes[1].caption == "Runs compared in curves.png."
    user = server.for_stage("describe_figures")[0].user
    assert "- loss.png: the final loss of each run, with standard-error bars" in user
    assert "- curves.png: undeclared" in user


def test_describe_figures_repairs_a_missing_figure(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    one = {"figures": [{"file": "loss.png", "caption": "c", "description": "d"}]}
    server.add("describe_figures", one)  # forgets curves.png: the repair round names it
    notes = brain.describe_figures(paper_ctx(toy), ["loss.png", "curves.png"])
    assert [n.file for n in notes] == ["loss.png", "curves.png"]
    assert "curves.png" in server.for_stage("describe_figures")[1].user
    assert [c.ok for c in brain.client.ledger.calls] == [False, True]


def test_write_section_rejects_unknown_figure_files(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    bad = "See \\includegraphics{made_up.png} for details."
    server.add("write_section:results", bad, bad)
    with pytest.raises(StageFailed) as err:
        brain.write_section(paper_ctx(toy), "results", {})
    assert "made_up.png" in err.value.reason


def test_fix_latex_edits_must_match_the_file(brain: LLMBrain, server: LoopbackLLM):
    tex = "\\begin{document}\n\\foo\n\\end{document}\n"
    server.add("fix_latex", {"edits": [{"search": "\\bar", "replace": ""}]}, {"edits": [{"search": "\\foo\n", "replace": ""}]})
    edits = brain.fix_latex(tex, "! Undefined control sequence.\nl.2 \\foo")
    assert edits == [Edit(path="paper.tex", search="\\foo\n", replace="")]


def test_prose_answer_is_repaired(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    server.add("novelty", PROSE)
    assert isinstance(brain.novelty(idea(), []), NoveltyDecision)
    assert "no JSON object" in server.for_stage("novelty")[1].user


def test_make_brain_picks_the_brain_from_settings(monkeypatch: pytest.MonkeyPatch, server: LoopbackLLM, tmp_path: Path):
    for var in ("AI_SCIENTIST_MODEL", "AI_SCIENTIST_BASE_URL", "AI_SCIENTIST_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="no API key: set OPENAI_API_KEY or AI_SCIENTIST_API_KEY"):
        make_brain("gpt-4o-mini")
    monkeypatch.setenv("AI_SCIENTIST_MODEL", "served-model")
    monkeypatch.setenv("AI_SCIENTIST_BASE_URL", server.url)
    monkeypatch.setenv("AI_SCIENTIST_API_KEY", KEY)
    brain = make_brain(ledger=Ledger(tmp_path / "usage.jsonl"), cache_dir=tmp_path / "cache")
    assert isinstance(brain, LLMBrain) and brain.info.model == "served-model"
    assert isinstance(brain.novelty(idea(), []), NoveltyDecision)
    assert server.requests[-1].body["model"] == "served-model" and server.requests[-1].authorized
    assert (tmp_path / "usage.jsonl").is_file()


def test_local_server_needs_no_key(monkeypatch: pytest.MonkeyPatch, toy: Template):
    for var in ("AI_SCIENTIST_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with LoopbackLLM(default=ScriptedBrainAnswers(toy), api_key="not-needed") as srv:
        brain = make_brain("llama3.1", srv.url)
        assert isinstance(brain.novelty(idea(), []), NoveltyDecision)
        assert srv.requests[0].authorized


def test_offline_model_name_gives_the_offline_brain(monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("agent.brains.offline.brain")
    monkeypatch.delenv("AI_SCIENTIST_MODEL", raising=False)
    for name in (None, "", "offline"):
        assert make_brain(name).info.kind == "offline"
