"""The LLM brain's deeper stages through the real `openai` client against the loopback server,
with a scripted model whose answers change from round to round: ideation conversations with
reflection and an early stop, the novelty tool loop over a fake Semantic Scholar, the coder's
memory across runs (and its rolling summary), the figure critique on real image parts, the
reviewer's guidelines and calibration, ensemble means and reflection rounds, a separate review
model, a paper cut to the context window, structured-output fallbacks and cached tokens."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

import agent.brains.llm.brain as llm_brain
from agent.brains import make_brain
from agent.brains.llm.brain import (
    LLMBrain,
    MetaReflection,
    NextRunAnswer,
    NoveltyStep,
    RunAnswer,
)
from agent.brains.llm.client import LLMClient
from agent.brains.llm.ledger import Ledger
from agent.brains.llm.prices import Price, PriceTable
from agent.errors import ConfigError
from agent.literature import LiteratureSearch, LiteratureSettings
from agent.models import (
    ArchivedIdea,
    Conversation,
    ExperimentContext,
    FigureCritique,
    FigureImage,
    Idea,
    IdeationContext,
    NoveltyDecision,
    Outcome,
    PaperContext,
    PaperFigure,
    PlannedRun,
    RunRecord,
)
from agent.review import calibration
from agent.review.ensemble import review_paper
from agent.template.contract import Template, load_template
from tests.fake_scholar import FakeScholar
from tests.llm_server import PROSE, LoopbackLLM, Request, ScriptedBrainAnswers, write_toy_template

KEY = "sk-stages"
BASELINE = {"easy": {"means": {"loss": 0.3125}, "stderrs": {"loss": 0.004}, "per_seed": {"loss": [0.31, 0.315]}}}
# Two distinct valid PNGs (an 8x8 grey square and an 8x8 black one).
GREY = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAIAQAAAAA+i6PJAAAADklEQVR4nGNgYGBgYAAAAAUAAa3m4BcAAAAASUVORK5CYII=")


@pytest.fixture
def toy(tmp_path: Path) -> Template:
    return load_template(write_toy_template(tmp_path / "templates"))


@pytest.fixture
def answers(toy: Template) -> ScriptedBrainAnswers:
    return ScriptedBrainAnswers(toy)


@pytest.fixture
def server(answers: ScriptedBrainAnswers):
    with LoopbackLLM(default=answers, api_key=KEY) as srv:
        yield srv


def client(srv: LoopbackLLM, model: str = "test-model", **kw) -> LLMClient:
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("timeout_s", 10)
    return LLMClient(model, base_url=srv.url, api_key=KEY, **kw)


@pytest.fixture
def brain(server: LoopbackLLM) -> LLMBrain:
    return LLMBrain(client(server))


def idea(name: str = "lr_effect") -> Idea:
    return Idea(name=name, title="Learning rate effect", hypothesis="A larger learning rate lowers the loss.",
                experiment="Sweep lr.", interestingness=5, feasibility=8, novelty=4, knobs=["lr"])


def paper_ctx(toy: Template) -> PaperContext:
    run = RunRecord(name="run_1", planned=PlannedRun(description="lr 0.01", args={"--lr": "0.01"}), ok=True,
                    results=BASELINE)
    return PaperContext(idea=idea(), template=toy, scale="smoke", baseline=BASELINE, runs=[run])


# ------------------------------------------------------------------ ideation


def test_ideation_is_one_conversation_per_idea_with_an_early_stop(brain: LLMBrain, server: LoopbackLLM,
                                                                   toy: Template):
    archive = [ArchivedIdea(template="toy", name="old_width", title="Width matters", hypothesis="h", score=6.5,
                            decision="Accept")]
    failed = [Outcome(run_id="r0", template="toy", idea_name="lr_crash", title="LR crash", stage="experiments",
                      status="failed", reason="no successful run: exit code 1")]
    ideas = brain.ideas(IdeationContext(template=toy, archive=archive, seed_ideas=[], num_ideas=2, reflections=3,
                                        failed=failed))
    assert len(ideas) == 2 and ideas[0].name != ideas[1].name
    # Each idea: one proposal, then reflection round 1 (changes it) and round 2 (says done): no round 3.
    assert server.stages() == ["ideas", "ideas_reflect", "ideas_reflect"] * 2
    assert all("beyond seed noise" in i.hypothesis for i in ideas)  # round 1's change was kept
    first, reflect1, reflect2, second = server.requests[:4]
    assert "WIDTH = 16" in first.prompt  # experiment.py
    assert "old_width: Width matters" in first.prompt and "review 6.5 Accept" in first.prompt  # with scores
    assert "lr_crash: LR crash | failed at experiments: no successful run" in first.prompt  # failures, with why
    assert "code changes beyond the declared knobs are welcome" in first.system
    # A reflection continues the conversation: same system text, the proposal as history.
    assert reflect1.system == first.system and reflect1.messages[1:3] == first.messages[1:2] + [reflect1.messages[2]]
    assert reflect1.messages[2]["role"] == "assistant" and ideas[0].name in reflect1.messages[2]["content"]
    assert len(reflect2.messages) == len(reflect1.messages) + 2
    assert f"- {ideas[0].name}:" in second.prompt  # the next idea knows the first


def test_a_failed_idea_conversation_leaves_the_others(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    server.add("ideas", PROSE, PROSE)  # the first conversation gets no valid idea, even after repair
    ideas = brain.ideas(IdeationContext(template=toy, archive=[], seed_ideas=[], num_ideas=2, reflections=0))
    assert len(ideas) == 1
    assert server.stages() == ["ideas", "ideas", "ideas"]


# ------------------------------------------------------------------ novelty


def test_novelty_is_a_search_loop_that_the_model_drives(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    server.add("novelty",
               NoveltyStep(thinking="start broad", decision="search", query="denoising diffusion probabilistic"),
               NoveltyStep(thinking="narrow down", decision="search", query="cosine noise schedule diffusion"),
               NoveltyStep(thinking="that one already did it", decision="not_novel", reason="Nichol and Dhariwal "
                           "already tested the cosine schedule.", papers=[4]))
    with FakeScholar() as fake:
        settings = LiteratureSettings(offline=False, s2_url=fake.url, openalex_url=fake.url, per_call_timeout_s=2)
        search = LiteratureSearch(idea(), toy, [], settings)
        decision = brain.novelty(idea(), search, rounds=10)
        s2 = [r.params["query"] for r in fake.requests if r.api == "s2"]
    assert isinstance(decision, NoveltyDecision) and not decision.novel and decision.rounds == 3
    assert decision.queries == ["denoising diffusion probabilistic", "cosine noise schedule diffusion"]
    assert s2 == decision.queries  # every query the model wrote was sent, and only those
    assert decision.papers and decision.papers[0].source == "semantic_scholar"
    second = server.for_stage("novelty")[1]
    assert "Results for 'denoising diffusion probabilistic'" in second.prompt
    assert "Denoising Diffusion Probabilistic Models" in second.prompt
    assert len(search.literature()) >= 3  # kept for the writeup's citations


def test_novelty_must_decide_in_the_last_round(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    search_again = NoveltyStep(thinking="more", decision="search", query="learning rate sweep")
    server.add("novelty", search_again, search_again,  # round 2 of 2 may not search: sent back once
               NoveltyStep(thinking="enough", decision="novel", reason="Nothing close."))
    decision = brain.novelty(idea(), LiteratureSearch(idea(), toy, [], LiteratureSettings()), rounds=2)
    assert decision.novel and decision.rounds == 2
    first, last, repair = server.for_stage("novelty")
    assert "This is the last round: decide now." in last.prompt
    # The last round's schema has no "search", so a grammar-constrained server cannot answer one.
    def enum(req: Request) -> list[str]:
        return req.body["response_format"]["json_schema"]["schema"]["properties"]["decision"]["enum"]

    assert "search" in enum(first) and sorted(enum(last)) == ["not_novel", "novel"]
    assert "'novel' or 'not_novel'" in repair.user  # a server that does not constrain is sent back once


# ------------------------------------------------------------------ the coder's memory


def experiment_ctx(toy: Template, history: list[RunRecord], memory: Conversation) -> ExperimentContext:
    return ExperimentContext(idea=idea(), template=toy, scale="smoke", baseline=BASELINE, history=history,
                             max_runs=4, code=(toy.path / "experiment.py").read_text(), memory=memory)


def test_the_coder_remembers_across_runs_and_writes_the_notes(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    server.add("next_run",
               NextRunAnswer(reason="lr is far from the optimum; try 10x", run=RunAnswer(description="lr x10",
                                                                                         args={"--lr": "0.01"})),
               NextRunAnswer(reason="run_1 helped; go further", run=RunAnswer(description="lr x30",
                                                                              args={"--lr": "0.03"})))
    server.add("run_notes", "Raising lr tenfold lowered the loss well beyond the error bars.")
    memory = Conversation()
    ctx = experiment_ctx(toy, [], memory)
    plan = brain.next_run(ctx)
    assert plan is not None and plan.args == {"--lr": "0.01"}
    run = RunRecord(name="run_1", planned=plan, ok=True, results=BASELINE, wall_s=3)
    note = brain.run_notes(ctx, run)
    assert note.startswith("## run_1: lr x10\n") and "tenfold lowered the loss" in note
    # The memory survives a resume: saved as JSON, read back.
    memory = Conversation.model_validate_json(ctx.memory.model_dump_json())
    assert len(memory.turns) == 4
    brain.next_run(experiment_ctx(toy, [run], memory))
    first, notes, second = server.requests
    assert second.system == first.system == notes.system  # one conversation, one cached prefix
    said = [m["content"] for m in second.messages if m["role"] == "assistant"]
    assert "try 10x" in said[0] and "tenfold lowered the loss" in said[1]
    assert "0.3125" in notes.prompt  # the notes are written from the real numbers
    assert "import argparse" not in "".join(m["content"] for m in second.messages[1:-1])  # old code not kept


def test_the_coder_memory_is_folded_into_a_rolling_summary(brain: LLMBrain, server: LoopbackLLM, toy: Template,
                                                           answers: ScriptedBrainAnswers,
                                                           monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(llm_brain, "MEMORY_TOKENS", 60)
    answers.runs = 5
    server.add("memory_summary", "Runs 1-2 raised lr; the loss fell each time.")
    memory = Conversation()
    history: list[RunRecord] = []
    for i in (1, 2, 3, 4):
        ctx = experiment_ctx(toy, history, memory)
        plan = brain.next_run(ctx)
        assert plan is not None
        history.append(RunRecord(name=f"run_{i}", planned=plan, ok=True, results=BASELINE))
        memory = ctx.memory
    folds = server.for_stage("memory_summary")
    assert len(folds) == 2 and "Runs 1-2 raised lr" in folds[1].prompt  # the summary rolls on
    assert memory.summary and memory.folded >= 4 and len(memory.turns) <= llm_brain.MEMORY_KEEP
    fourth = server.for_stage("next_run")[3]
    assert "SUMMARY OF EARLIER WORK ON THIS IDEA:\nRuns 1-2 raised lr" in fourth.system


# ------------------------------------------------------------------ figures


def test_the_figure_critique_sends_the_images(brain: LLMBrain, server: LoopbackLLM, toy: Template):
    server.add("critique_figures", {"figures": [
        FigureCritique(file="loss.png", ok=False, problems=["the y axis has no label"], fix="ax.set_ylabel('loss')")
        .model_dump()]})
    got = brain.critique_figures(paper_ctx(toy), [FigureImage(name="loss.png", png=GREY, caption="Loss per run.")])
    assert got[0].file == "loss.png" and not got[0].ok and "no label" in got[0].problems[0]
    probe, critique = server.requests
    assert probe.stage == "vision_probe" and probe.images
    assert critique.images == ["data:image/png;base64," + base64.b64encode(GREY).decode()]
    assert "loss.png: Loss per run." in critique.prompt


def test_no_images_where_the_endpoint_refuses_them(toy: Template, answers: ScriptedBrainAnswers):
    with LoopbackLLM(default=answers, api_key=KEY, images=False) as srv:
        brain = LLMBrain(client(srv))
        assert brain.critique_figures(paper_ctx(toy), [FigureImage(name="a.png", png=GREY)]) == []
        brain.critique_figures(paper_ctx(toy), [FigureImage(name="a.png", png=GREY)])
        review = brain.review("A paper.", [PaperFigure(page=1, png=GREY, caption="Loss.")])
        # Probed once (the refused image part is dropped and the probe asked again, which tells
        # it the endpoint takes none); the review then went without images.
        assert srv.stages() == ["vision_probe", "vision_probe", "review"]
        assert srv.requests[0].images and not srv.requests[1].images
        assert not srv.requests[-1].images and review.summary
    with LoopbackLLM(default=answers, api_key=KEY) as srv:  # --vision off: no probe, no images
        brain = LLMBrain(client(srv), vision="off")
        assert brain.critique_figures(paper_ctx(toy), [FigureImage(name="a.png", png=GREY)]) == []
        assert srv.requests == []


# ------------------------------------------------------------------ review


def test_the_review_prompt_carries_guidelines_calibration_and_a_reasoning_step(brain: LLMBrain,
                                                                              server: LoopbackLLM):
    review = brain.review("Title\n\nWe study a thing. " * 50)
    req = server.for_stage("review")[0]
    assert "6 weak accept" in req.system and "confidence (1-5)" in req.system
    for example in calibration.examples():
        assert example.title in req.system and f"mean human overall score {example.mean_score:g}" in req.system
    assert sum(e.accepted for e in calibration.examples()) == 2 == sum(not e.accepted for e in calibration.examples())
    assert '"reasoning": string' in req.prompt.split("of this shape:")[1].split(",")[0]  # reasoning comes first
    assert req.body["temperature"] > 0 and not review.text_cut
    brain.review("A paper with a figure.", [PaperFigure(page=3, png=GREY, caption="Loss per run.")])
    seen = server.for_stage("review")[-1]
    assert seen.images == ["data:image/png;base64," + base64.b64encode(GREY).decode()]  # the reviewer sees it
    assert "- page 3: Loss per run." in seen.prompt


def test_a_long_paper_is_cut_to_the_context_and_the_review_says_so(server: LoopbackLLM):
    prices = PriceTable({"small-model": Price(input=0, output=0, context=9000)})
    brain = LLMBrain(client(server, "small-model", prices=prices))
    paper = "Section one.\n" + "Words of a very long paper that goes on. " * 4000
    review = brain.review(paper)
    sent = server.for_stage("review")[0].prompt
    assert "[... the paper is cut here: only the first" in sent and len(sent) < len(paper)
    assert "context window of small-model" in review.text_cut
    assert brain.review("A short paper.").text_cut == ""


def test_the_ensemble_scores_are_means_and_the_meta_review_reflects(brain: LLMBrain, server: LoopbackLLM,
                                                                    answers: ScriptedBrainAnswers):
    server.add("review", *(answers.review_answer(s) for s in (3, 6, 8)))
    server.add("meta_review_reflect", MetaReflection(review=answers.form(7), done=False),
               MetaReflection(review=answers.form(7), done=True))
    out = review_paper(brain, "A paper about learning rates.", reviewers=3, reflections=3)
    assert [r.overall for r in out.reviews] == [3, 6, 8] or sorted(r.overall for r in out.reviews) == [3, 6, 8]
    assert out.meta.overall == pytest.approx(17 / 3, abs=0.01) and out.meta.decision == "Reject"  # 5.67 < 6
    assert server.stages().count("meta_review_reflect") == 2  # stopped early at round 2 of 3
    reflect = server.for_stage("meta_review_reflect")[0]
    assert "overall 5.67" in reflect.prompt and "A paper about learning rates." in reflect.messages[1]["content"]


def test_the_reviewer_can_be_another_model(server: LoopbackLLM, toy: Template, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AI_SCIENTIST_API_KEY", KEY)
    brain = make_brain("writer-model", server.url, review_model="critic-model", ledger=Ledger())
    assert brain.info.review_model == "critic-model" and "critic-model" in brain.info.reviewer_label
    review_paper(brain, "A paper.", reviewers=2, reflections=1)
    brain.write_section(paper_ctx(toy), "title", {})
    models = {r.stage: r.body["model"] for r in server.requests}
    assert models["review"] == models["meta_review"] == "critic-model"
    assert models["write_section:title"] == "writer-model"


# ------------------------------------------------------------------ structured output and cost


def test_the_answer_schema_is_sent_where_the_server_takes_it(toy: Template, answers: ScriptedBrainAnswers):
    with LoopbackLLM(default=answers, formats=("json_schema",)) as srv:
        c = client(srv)
        ideas = LLMBrain(c).ideas(IdeationContext(template=toy, archive=[], seed_ideas=[], num_ideas=1,
                                                  reflections=1))
        assert ideas and c.response_format == "json_schema"
        fmt = srv.requests[0].body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Idea"
        schema = fmt["json_schema"]["schema"]
        assert fmt["json_schema"]["strict"] is True and schema["additionalProperties"] is False
        assert set(schema["required"]) == set(Idea.model_fields)
        assert schema["properties"]["name"]["pattern"] == "^[a-z0-9_]{1,48}$"  # a grammar can enforce it
        reflect = srv.requests[1].body["response_format"]["json_schema"]
        assert reflect["name"] == "IdeaReflection" and "$defs" in reflect["schema"]
        run = LLMBrain(c).fix_run(experiment_ctx(toy, [], Conversation()), RunRecord(
            name="run_1", planned=PlannedRun(description="x"), ok=False, error="boom"), "boom")
        assert isinstance(run, PlannedRun)
        free_map = srv.for_stage("fix_run")[0].body["response_format"]["json_schema"]
        assert "strict" not in free_map  # a dict of flags cannot be strict
    with LoopbackLLM(default=answers, formats=("json_object",)) as srv:  # refuses json_schema
        c = client(srv)
        LLMBrain(c).novelty(idea(), LiteratureSearch(idea(), toy, [], LiteratureSettings()), 1)
        LLMBrain(c).novelty(idea(), LiteratureSearch(idea(), toy, [], LiteratureSettings()), 1)
        assert [r.response_format for r in srv.requests] == ["json_schema", "json_object", "json_object"]
        assert c.response_format == "json_object_schema"  # json_object, with the schema beside it
        assert srv.requests[1].body["response_format"]["schema"]["properties"]["decision"]["enum"] == [
            "novel", "not_novel"]  # the only round must decide: its schema has no "search"


def test_cached_prompt_tokens_are_counted_apart(toy: Template, answers: ScriptedBrainAnswers):
    prices = PriceTable({"test-model": Price(input=10.0, output=0.0, cached_input=1.0)})
    with LoopbackLLM(default=answers) as srv:
        c = client(srv, prices=prices)
        LLMBrain(c).ideas(IdeationContext(template=toy, archive=[], seed_ideas=[], num_ideas=1, reflections=2))
    first, *rest = c.ledger.calls
    assert first.cached_prompt_tokens == 0
    assert all(0 < r.cached_prompt_tokens <= r.prompt_tokens for r in rest)  # a conversation's prefix is cached
    assert rest[0].cost_usd < rest[0].prompt_tokens * 10.0 / 1e6
    assert c.ledger.summary()["cached_prompt_tokens"] == sum(r.cached_prompt_tokens for r in rest)


def test_a_budget_needs_a_price(server: LoopbackLLM, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"--budget-usd cannot be enforced: model 'unpriced-model' has no known "
                                          r"price; give one with --price-in and --price-out"):
        LLMClient("unpriced-model", base_url=server.url, api_key=KEY, budget_usd=1.0)
    c = LLMClient("unpriced-model", base_url=server.url, api_key=KEY, budget_usd=1.0,
                  price=Price(input=1.0, output=2.0))
    assert c.prices.cost("unpriced-model", 1_000_000, 1_000_000) == 3.0
    (tmp_path / "prices.json").write_text(json.dumps({"models": {"unpriced-model": {"input": 1, "output": 1}}}))
    LLMClient("unpriced-model", base_url=server.url, api_key=KEY, budget_usd=1.0, prices_path=tmp_path / "prices.json")
