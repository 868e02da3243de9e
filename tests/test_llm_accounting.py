"""Cost control of the LLM brain against the loopback server: the price table, the budget
stop (and resume with a higher budget), the record/replay cache, and the API key never
reaching the disk or the logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from agent.brains import make_brain
from agent.brains.llm.brain import LLMBrain
from agent.brains.llm.cache import CacheMiss, CallCache
from agent.brains.llm.client import LLMClient
from agent.brains.llm.ledger import Ledger
from agent.brains.llm.prices import BUILTIN, PriceTable
from agent.errors import BudgetExceeded, ConfigError
from agent.literature import LiteratureSearch, LiteratureSettings
from agent.models import Idea, IdeationContext, NoveltyDecision, PaperContext, PlannedRun, RunRecord
from agent.template.contract import Template, load_template
from tests.llm_server import PROSE, LoopbackLLM, ScriptedBrainAnswers, rate_limited, write_toy_template

GOOD = NoveltyDecision(novel=True, reason="nothing close", queries=["q"])
BASELINE = {"easy": {"means": {"loss": 0.3125}, "stderrs": {"loss": 0.004}, "per_seed": {"loss": [0.31, 0.315]}}}


@pytest.fixture
def toy(tmp_path: Path) -> Template:
    return load_template(write_toy_template(tmp_path / "templates"))


def price_file(tmp_path: Path, usd_per_m: float) -> Path:
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"models": {"test-model": {"input": usd_per_m, "output": usd_per_m}}}))
    return f


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


# ------------------------------------------------------------------ prices


def test_price_lookup_by_prefix_and_provider():
    table = PriceTable.load()
    assert table.lookup("gpt-4o-mini-2024-07-18") == table.models["gpt-4o-mini"]
    assert table.lookup("openai/gpt-4o") == table.models["gpt-4o"]
    assert table.lookup("o3-mini") == table.models["o3-mini"]
    assert table.lookup("my-local-llama") is None
    p = table.models["gpt-4o"]
    assert table.cost("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(p.input + p.output)


def test_user_price_file_overrides_and_extends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"models": {"gpt-4o": {"input": 1, "output": 2}, "my-llama": {"input": 0.1, "output": 0.1}}}))
    monkeypatch.setenv("AI_SCIENTIST_PRICES", str(f))
    table = PriceTable.load()
    assert table.cost("gpt-4o", 1_000_000, 0) == 1
    assert table.lookup("my-llama-8b") is not None
    builtin = json.loads(BUILTIN.read_text())["models"]
    assert table.lookup("gpt-4o-mini").input == builtin["gpt-4o-mini"]["input"]  # the rest stays built in


def test_malformed_price_file_is_a_config_error(tmp_path: Path):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"models": {"x": {"input": "cheap"}}}))
    with pytest.raises(ConfigError, match="bad.json: models.x.input"):
        PriceTable.load(f)
    with pytest.raises(ConfigError, match="does not exist"):
        PriceTable.load(tmp_path / "missing.json")


# ------------------------------------------------------------------ budget


def test_budget_stops_before_the_call_that_would_pass_it(tmp_path: Path):
    ledger_path = tmp_path / "run" / "usage.jsonl"
    prices = price_file(tmp_path, 500.0)  # $0.0005 per token: a call costs cents
    with LoopbackLLM() as srv:
        srv.add("novelty", *[GOOD] * 50)
        c = LLMClient(
            "test-model", base_url=srv.url, api_key="sk-test", ledger=Ledger(ledger_path), prices_path=prices, budget_usd=1.0
        )
        done = []
        with pytest.raises(BudgetExceeded, match=r"--budget-usd 1.*resume with a higher --budget-usd"):
            for i in range(50):
                done.append(c.complete("novelty", "Judge.", f"Idea {i}", NoveltyDecision, max_tokens=1000))
        sent = len(srv.requests)
    assert 1 <= len(done) < 50 and sent == len(done)  # nothing is sent once the budget would pass
    assert 0 < c.ledger.total_usd <= 1.0
    on_disk = Ledger(ledger_path)  # the spend survives the process
    assert len(on_disk.calls) == len(done) and on_disk.total_usd == pytest.approx(c.ledger.total_usd)

    with LoopbackLLM() as srv:
        srv.add("novelty", GOOD, GOOD)
        same = LLMClient("test-model", base_url=srv.url, api_key="k", ledger=Ledger(ledger_path), prices_path=prices, budget_usd=1.0)
        with pytest.raises(BudgetExceeded):
            same.complete("novelty", "Judge.", "Idea again", NoveltyDecision, max_tokens=1000)
        assert srv.requests == []
        more = LLMClient("test-model", base_url=srv.url, api_key="k", ledger=Ledger(ledger_path), prices_path=prices, budget_usd=5.0)
        assert more.complete("novelty", "Judge.", "Idea again", NoveltyDecision, max_tokens=1000) == GOOD
    assert len(Ledger(ledger_path).calls) == len(done) + 1


def test_budget_counts_the_worst_case_completion(tmp_path: Path):
    with LoopbackLLM() as srv:
        srv.add("novelty", GOOD)
        c = LLMClient("test-model", base_url=srv.url, api_key="k", prices_path=price_file(tmp_path, 100.0), budget_usd=0.5)
        with pytest.raises(BudgetExceeded):  # 10k possible output tokens at $100/M is $1
            c.complete("novelty", "Judge.", "Idea", NoveltyDecision, max_tokens=10_000)
        assert c.complete("novelty", "Judge.", "Idea", NoveltyDecision, max_tokens=1000) == GOOD


# ------------------------------------------------------------------ record / replay


def one_paper(brain: LLMBrain, toy: Template) -> list[str]:
    """A short scripted pipeline; returns every result as JSON text."""
    out: list[str] = []
    ideas = brain.ideas(IdeationContext(template=toy, archive=[], seed_ideas=[], num_ideas=2, reflections=1))
    out += [i.model_dump_json() for i in ideas]
    search = LiteratureSearch(ideas[0], toy, [], LiteratureSettings(offline=True))
    out.append(brain.novelty(ideas[0], search, 2).model_dump_json())
    run = RunRecord(name="run_1", planned=PlannedRun(description="lr", args={"--lr": "0.01"}), ok=True, results=BASELINE)
    ctx = PaperContext(idea=ideas[0], template=toy, scale="smoke", baseline=BASELINE, runs=[run])
    for section in ("title", "abstract", "results"):
        out.append(brain.write_section(ctx, section, {}))
    reviews = [brain.review("The paper.") for _ in range(3)]
    out += [r.model_dump_json() for r in reviews]
    out.append(brain.meta_review(reviews).model_dump_json())
    return out


def test_replay_reproduces_a_recorded_run_without_the_server(toy: Template, tmp_path: Path):
    cache = tmp_path / "llm_cache"
    answers = ScriptedBrainAnswers(toy)
    with LoopbackLLM(default=answers) as srv:
        srv.add("novelty", PROSE)  # a repair round is recorded and replayed too
        srv.add("review", answers.review_answer(3), answers.review_answer(6), answers.review_answer(8))  # an ensemble of 3
        rec = LLMBrain(LLMClient("test-model", base_url=srv.url, api_key="k", cache=CallCache(cache, "record")))
        recorded = one_paper(rec, toy)
        dead_url = srv.url
        n_requests = len(srv.requests)
    assert [json.loads(r)["overall"] for r in recorded[-4:-1]] == [3, 6, 8]

    rep = LLMBrain(LLMClient("test-model", base_url=dead_url, api_key="k", cache=CallCache(cache, "replay")))
    assert one_paper(rep, toy) == recorded
    assert len(rep.client.ledger.calls) == n_requests
    assert all(c.cached and c.cost_usd == 0 for c in rep.client.ledger.calls)
    assert [c.ok for c in rep.client.ledger.calls] == [c.ok for c in rec.client.ledger.calls]  # the repair round too


def test_replay_miss_is_a_clear_error(tmp_path: Path):
    c = LLMClient("test-model", base_url="http://127.0.0.1:9/v1", api_key="k", cache=CallCache(tmp_path, "replay"))
    with pytest.raises(CacheMiss, match="no recorded answer for stage 'novelty'.*record first"):
        c.complete("novelty", "Judge.", "Idea", NoveltyDecision)
    with pytest.raises(ConfigError, match="unknown LLM cache mode"):
        CallCache(tmp_path, "sometimes")


def test_auto_mode_calls_once_then_serves_from_the_cache(tmp_path: Path):
    with LoopbackLLM() as srv:
        srv.add("novelty", GOOD)
        for _ in range(2):  # two processes' worth of clients on the same cache
            c = LLMClient("test-model", base_url=srv.url, api_key="k", cache=CallCache(tmp_path, "auto"))
            assert c.complete("novelty", "Judge.", "Idea", NoveltyDecision) == GOOD
        assert len(srv.requests) == 1
        assert c.ledger.calls[0].cached


def test_cache_key_changes_with_the_request(tmp_path: Path):
    with LoopbackLLM() as srv:
        srv.add("novelty", GOOD, GOOD, GOOD)
        c = LLMClient("test-model", base_url=srv.url, api_key="k", cache=CallCache(tmp_path, "auto"))
        c.complete("novelty", "Judge.", "Idea A", NoveltyDecision)
        c2 = LLMClient("test-model", base_url=srv.url, api_key="k", cache=CallCache(tmp_path, "auto"))
        c2.complete("novelty", "Judge.", "Idea B", NoveltyDecision)  # other prompt: a miss
        c3 = LLMClient("other-model", base_url=srv.url, api_key="k", cache=CallCache(tmp_path, "auto"))
        c3.complete("novelty", "Judge.", "Idea A", NoveltyDecision)  # other model: a miss
        assert len(srv.requests) == 3


# ------------------------------------------------------------------ secrets


def test_the_api_key_never_reaches_disk_or_logs(
    toy: Template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    secret = "sk-SECRET-0123456789abcdef"
    monkeypatch.setenv("AI_SCIENTIST_API_KEY", secret)
    run_dir = tmp_path / "experiments" / "run1"
    with LoopbackLLM(default=ScriptedBrainAnswers(toy), api_key=secret, log_path=tmp_path / "server.jsonl") as srv:
        srv.add("novelty", rate_limited(0.01), PROSE)  # a retry and a repair, both logged
        with caplog.at_level(logging.DEBUG):
            brain = make_brain(
                "test-model", srv.url, ledger=Ledger(run_dir / "usage.jsonl"), cache_dir=run_dir / "llm_cache",
                timeout_s=10,
            )
            one_paper(brain, toy)  # type: ignore[arg-type]
        assert all(r.authorized for r in srv.requests)  # the key was really sent ...
        assert all("authorization" not in r.headers for r in srv.requests)
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert any(f.name == "usage.jsonl" for f in files) and any(f.suffix == ".json" and "llm_cache" in f.parts for f in files)
    for f in files:  # ... and written nowhere
        assert secret.encode() not in f.read_bytes(), f
    assert secret not in caplog.text
    assert secret not in repr(brain.client)  # type: ignore[attr-defined]
