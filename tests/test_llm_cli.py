"""Money and time at the command line: a budget that could not limit anything is refused
before a run starts, and `ai-scientist review` against an endpoint that accepts connections
and never answers ends in bounded time with one clear line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.template.contract import load_template
from tests.helpers import cli
from tests.llm_server import HungLLM, LoopbackLLM, ScriptedBrainAnswers, write_toy_template

ENV = {"AI_SCIENTIST_API_KEY": "sk-cli", "OPENAI_API_KEY": "", "AI_SCIENTIST_PRICES": ""}


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


def test_a_budget_for_an_unpriced_model_refuses_to_start(tmp_path: Path):
    template = write_toy_template(tmp_path / "templates")
    env = {**ENV, "AI_SCIENTIST_EXPERIMENTS": str(tmp_path / "experiments")}
    res = cli("run", "--template", str(template), "--model", "my-local-model", "--base-url", "http://127.0.0.1:9/v1",
              "--budget-usd", "2", cwd=tmp_path, env=env, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    [line] = error_lines(res.stderr)
    assert "--budget-usd cannot be enforced: model 'my-local-model' has no known price" in line
    assert "--price-in and --price-out" in line
    assert not (tmp_path / "experiments").exists()  # refused before anything started
    half = cli("run", "--template", str(template), "--model", "my-local-model", "--budget-usd", "2",
               "--price-in", "0.5", cwd=tmp_path, env=env, timeout=120)
    assert half.returncode == 2 and "give both --price-in and --price-out" in half.stderr


def test_review_with_a_price_on_the_command_line_runs_under_the_budget(tmp_path: Path):
    paper = tmp_path / "paper.txt"
    paper.write_text("A Study\n\nAbstract\nWe study a thing with three seeds.\n")
    toy = load_template(write_toy_template(tmp_path / "templates"))
    with LoopbackLLM(default=ScriptedBrainAnswers(toy)) as srv:
        refused = cli("review", str(paper), "--model", "my-local-model", "--base-url", srv.url, "--budget-usd", "1",
                      env=ENV, timeout=120)
        assert refused.returncode == 2 and "no known price" in refused.stderr and srv.requests == []
        ok = cli("review", str(paper), "--model", "my-local-model", "--base-url", srv.url, "--budget-usd", "1",
                 "--price-in", "0.1", "--price-out", "0.2", "--reviewers", "2", "--json", env=ENV, timeout=120)
        assert ok.returncode == 0, ok.stderr
        assert srv.stages().count("review") == 2


@pytest.mark.slow  # waits out two per-call timeouts on purpose
def test_review_against_a_hung_endpoint_ends_in_bounded_time(tmp_path: Path):
    paper = tmp_path / "paper.txt"
    paper.write_text("A Study\n\nAbstract\nWe study a thing.\n")
    timeout = 4
    with HungLLM() as hung:
        started = time.monotonic()
        res = cli("review", str(paper), "--model", "test-model", "--base-url", hung.url,
                  "--llm-timeout", str(timeout), "--reviewers", "3", env=ENV, timeout=300)
        took = time.monotonic() - started
        assert hung.connections >= 3  # every reviewer's call was sent, and none was answered
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    [line] = error_lines(res.stderr)
    assert "timed out" in line and "review" in line
    # Within 2x the per-call timeout, plus the CLI's own start (imports) on a busy machine; the
    # old client retried a timeout 5 times (at least 5 x 4 s = 20 s).
    assert took < 2 * timeout + 10, took
