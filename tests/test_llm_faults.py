"""Fault handling of LLMClient, through the real `openai` client and the loopback server:
retries with backoff (429 + Retry-After, 5xx, timeouts), one repair round for bad output,
fail-fast configuration errors, and every failure recorded in the ledger with its reason."""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel

from agent.brains.llm.client import LLMClient
from agent.errors import ConfigError, StageFailed
from agent.models import NoveltyDecision
from tests.llm_server import (
    PROSE,
    LoopbackLLM,
    http_error,
    llm_server,  # noqa: F401 (a fixture)
    not_json_body,
    rate_limited,
    server_error,
    slow,
    truncated,
    unauthorized,
)

GOOD = NoveltyDecision(novel=True, reason="nothing close", queries=["q"])


class Pair(BaseModel):
    a: int
    b: str


def client(server: LoopbackLLM, **kw) -> LLMClient:
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("timeout_s", 10)
    return LLMClient("test-model", base_url=server.url, api_key="sk-test", **kw)


def ask(c: LLMClient) -> NoveltyDecision:
    return c.complete("novelty", "Judge novelty.", "Idea: x", NoveltyDecision, idea="idea_a")


def test_429_is_retried_honouring_retry_after(llm_server: LoopbackLLM, caplog: pytest.LogCaptureFixture):  # noqa: F811
    llm_server.add("novelty", rate_limited(retry_after=0.5), GOOD)
    c = client(llm_server)
    with caplog.at_level(logging.WARNING, logger="agent.brains.llm.client"):
        assert ask(c) == GOOD
    assert llm_server.stages() == ["novelty", "novelty"]
    assert "retrying in 0.5s (Retry-After)" in caplog.text
    failed, ok = c.ledger.calls
    assert not failed.ok and "HTTP 429" in failed.error and failed.idea == "idea_a"
    assert ok.ok and ok.prompt_tokens > 0


def test_retry_after_is_capped(llm_server: LoopbackLLM, caplog: pytest.LogCaptureFixture):  # noqa: F811
    llm_server.add("novelty", rate_limited(retry_after=3600), GOOD)
    with caplog.at_level(logging.WARNING, logger="agent.brains.llm.client"):
        assert ask(client(llm_server, max_backoff_s=0.2)) == GOOD
    assert "retrying in 0.2s (Retry-After)" in caplog.text


def test_500_then_success(llm_server: LoopbackLLM):  # noqa: F811
    llm_server.add("novelty", server_error(500), server_error(503), GOOD)
    c = client(llm_server)
    assert ask(c) == GOOD
    assert [call.ok for call in c.ledger.calls] == [False, False, True]
    assert "HTTP 500" in c.ledger.calls[0].error and "HTTP 503" in c.ledger.calls[1].error


def test_slow_reply_times_out_and_is_retried(llm_server: LoopbackLLM):  # noqa: F811
    llm_server.add("novelty", slow(5.0, GOOD.model_dump_json()), GOOD)
    c = client(llm_server, timeout_s=0.5)
    assert ask(c) == GOOD
    assert len(llm_server.requests) == 2
    assert "timed out" in c.ledger.calls[0].error


def test_a_200_that_is_not_a_completion_is_retried(llm_server: LoopbackLLM):  # noqa: F811
    llm_server.add("novelty", not_json_body(), GOOD)
    c = client(llm_server)
    assert ask(c) == GOOD
    assert "not a chat completion" in c.ledger.calls[0].error and c.ledger.calls[1].ok


def test_retries_are_bounded_in_attempts(llm_server: LoopbackLLM):  # noqa: F811
    llm_server.add("novelty", *[server_error(502)] * 10)
    c = client(llm_server, max_attempts=3)
    with pytest.raises(StageFailed) as err:
        ask(c)
    assert err.value.stage == "novelty" and "HTTP 502" in err.value.reason
    assert len(llm_server.requests) == 3
    assert llm_server.pending() == {"novelty": 7}
    assert [call.ok for call in c.ledger.calls] == [False] * 3


def test_retries_are_bounded_in_total_time(llm_server: LoopbackLLM):  # noqa: F811
    # Each 429 asks for 1 s; a 1.5 s total allows one wait, so the second 429 ends it.
    llm_server.add("novelty", *[rate_limited(retry_after=1.0)] * 10)
    c = client(llm_server, max_attempts=50, max_total_s=1.5)
    with pytest.raises(StageFailed, match="gave up"):
        ask(c)
    assert 1 <= len(llm_server.requests) <= 2  # far below max_attempts


def test_connection_refused_is_retried_then_fails_cleanly():
    with LoopbackLLM() as srv:
        url = srv.url  # a port that is closed once the server stops
    c = LLMClient("test-model", base_url=url, api_key="sk-test", backoff_s=0.01, max_attempts=2)
    with pytest.raises(StageFailed, match="could not connect"):
        ask(c)
    assert [call.error for call in c.ledger.calls] == [f"could not connect to {url}"] * 2


@pytest.mark.parametrize("bad", [truncated(GOOD), PROSE, '{"novel": "perhaps", "reason": 3}'])
def test_bad_output_gets_one_repair_round(llm_server: LoopbackLLM, bad: str):  # noqa: F811
    llm_server.add("novelty", bad, GOOD)
    c = client(llm_server)
    assert ask(c) == GOOD
    first, repair = llm_server.requests
    assert repair.messages[:2] == first.messages  # the repair quotes the conversation ...
    assert repair.messages[2] == {"role": "assistant", "content": bad}
    assert repair.user.startswith("Your answer was invalid:")  # ... and the validation error
    bad_call, ok_call = c.ledger.calls
    assert not bad_call.ok and bad_call.error.startswith("invalid output:") and bad_call.prompt_tokens > 0
    assert ok_call.ok


def test_an_answer_cut_off_at_the_token_limit_is_asked_again_shorter_with_more_room(
    llm_server: LoopbackLLM,  # noqa: F811
):
    """A rambling answer that ran into max_tokens (as a 270M model under llama.cpp's grammar did)
    is repaired with twice the limit and a request to be brief."""
    rambling = '{"novel": true, "reason": "' + "and it goes on " * 40  # 600 chars: over 50 tokens, unclosed
    llm_server.add("novelty", rambling, GOOD)
    c = client(llm_server)
    assert c.complete("novelty", "Judge novelty.", "Idea: x", NoveltyDecision, idea="idea_a", max_tokens=50) == GOOD
    first, repair = llm_server.requests
    assert first.body["max_tokens"] == 50 and repair.body["max_tokens"] == 100
    assert repair.user.startswith("Your answer was cut off at the limit of 50 tokens") and "much shorter" in repair.user


def test_json_in_fences_and_prose_is_accepted(llm_server: LoopbackLLM):  # noqa: F811
    llm_server.add("novelty", "Here you go:\n```json\n" + GOOD.model_dump_json(indent=2) + "\n```\nCheers.")
    assert ask(client(llm_server)) == GOOD
    assert len(llm_server.requests) == 1


def test_garbage_twice_fails_cleanly_and_is_recorded(llm_server: LoopbackLLM):  # noqa: F811
    llm_server.add("novelty", PROSE, '{"novel": true, "reason": ')
    c = client(llm_server)
    with pytest.raises(StageFailed) as err:
        ask(c)
    assert err.value.stage == "novelty"
    assert "after one repair round" in err.value.reason and "incomplete or malformed" in err.value.reason
    assert len(llm_server.requests) == 2  # exactly one repair round
    assert [call.ok for call in c.ledger.calls] == [False, False]
    assert c.ledger.calls[-1].error == err.value.reason
    assert c.ledger.summary()["failed_calls"] == 2


def test_schema_errors_are_quoted_to_the_model(llm_server: LoopbackLLM):  # noqa: F811
    llm_server.add("pair", {"a": "seven", "b": "x"}, {"a": 7, "b": "x"})
    assert client(llm_server).complete("pair", "Give a pair.", "Now.", Pair) == Pair(a=7, b="x")
    assert "a: Input should be a valid integer" in llm_server.requests[1].user


def test_empty_text_answer_is_repaired(llm_server: LoopbackLLM):  # noqa: F811
    llm_server.add("write_section:abstract", "   ", "```latex\nWe study things.\n```")
    text = client(llm_server).complete_text("write_section:abstract", "Write.", "Abstract please.")
    assert text == "We study things."
    assert "response_format" not in llm_server.requests[0].body  # free text is not forced to JSON


def test_401_fails_fast_with_what_to_do(llm_server: LoopbackLLM):  # noqa: F811
    llm_server.add("novelty", unauthorized(), GOOD)
    c = client(llm_server, max_attempts=5)
    with pytest.raises(ConfigError, match=r"API key was rejected \(401\).*OPENAI_API_KEY or AI_SCIENTIST_API_KEY"):
        ask(c)
    assert len(llm_server.requests) == 1  # no retry
    assert "HTTP 401" in c.ledger.calls[0].error


def test_a_wrong_key_is_rejected_by_a_checking_server():
    with LoopbackLLM(api_key="sk-right") as srv:
        c = LLMClient("test-model", base_url=srv.url, api_key="sk-wrong", backoff_s=0.01)
        with pytest.raises(ConfigError, match="401"):
            ask(c)
        assert len(srv.requests) == 1 and not srv.requests[0].authorized


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (http_error(403, "Forbidden"), r"access denied \(403\)"),
        (http_error(404, "The model `test-model` does not exist"), r"not found \(404\).*--model and --base-url"),
        (
            http_error(400, "This model's maximum context length is 8192 tokens, you requested 9000"),
            "does not fit the context window",
        ),
    ],
)
def test_unfixable_errors_fail_fast(llm_server: LoopbackLLM, fault, message: str):  # noqa: F811
    llm_server.add("novelty", fault, GOOD)
    with pytest.raises(ConfigError, match=message):
        ask(client(llm_server))
    assert len(llm_server.requests) == 1


def test_endpoint_without_json_mode_is_adapted_to(toy_free_server: LoopbackLLM):
    """json_schema refused, then json_object refused: the prompt alone asks for JSON, and that
    is remembered."""
    toy_free_server.add("novelty", GOOD, GOOD)
    c = client(toy_free_server)
    assert ask(c) == GOOD and ask(c) == GOOD
    formats = [r.response_format for r in toy_free_server.requests]
    assert formats == ["json_schema", "json_object", "json_object", None, None]  # json_object with a schema, then without
    assert c.response_format == "prompt"


@pytest.fixture
def toy_free_server():
    with LoopbackLLM(json_mode=False) as srv:
        yield srv


def test_unknown_model_warns_once_and_costs_nothing(llm_server: LoopbackLLM, caplog: pytest.LogCaptureFixture):  # noqa: F811
    llm_server.add("novelty", GOOD, GOOD)
    c = client(llm_server)
    with caplog.at_level(logging.WARNING, logger="agent.brains.llm.prices"):
        ask(c)
        ask(c)
    assert caplog.text.count("no price for model 'test-model'") == 1
    assert c.ledger.total_usd == 0 and c.ledger.summary()["prompt_tokens"] > 0
