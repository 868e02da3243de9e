"""The researcher's verdicts steer the next night: ideation sees the human score and note, the
paper marked follow-up is continued first from its own code, and the discarded idea is never
proposed again. Through the real CLI on the offline brain, and the LLM brain's prompt on the
loopback server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent.brains.llm.brain import LLMBrain
from agent.brains.llm.client import LLMClient
from agent.models import ArchivedIdea, IdeationContext
from agent.template.contract import load_template
from tests.helpers import cli
from tests.llm_server import LoopbackLLM, ScriptedBrainAnswers, write_toy_template
from tests.pipeline_helpers import archived, workspace

NOTE = "The init effect looks real; try it with more components."


def ideas_of(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "ideas-gen1.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("search", [("--search", "linear", "--max-runs", "1"),
                                    ("--search", "tree", "--search-budget", "3")], ids=["linear", "tree"])
def test_a_follow_up_is_continued_from_its_code_and_a_discard_never_returns(tmp_path: Path, search: tuple) -> None:
    template, env = workspace(tmp_path)
    args = ("run", "--template", str(template), "--num-ideas", "2", *search, "--reviewers", "1")
    first = cli(*args, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    papers = archived(tmp_path, env)
    assert len(papers) == 2, first.stdout[-2000:]
    keep, drop = papers[0], papers[1]
    for paper_id, verdict in ((keep["id"], ["9", "--note", NOTE, "--follow-up"]), (drop["id"], ["2", "--discard"])):
        assert cli("archive", "rate", paper_id, *verdict, cwd=tmp_path, env=env).returncode == 0

    second = cli(*args, cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    runs = sorted(p for p in (tmp_path / "experiments").iterdir() if (p / "settings.json").is_file())
    proposed = ideas_of(runs[-1])
    assert proposed[0]["continues"] == keep["id"], proposed
    assert NOTE in proposed[0]["experiment"], "the researcher's note reached ideation"
    assert all(p["name"] != drop["idea_name"] and set(p["knobs"]) != set(drop["knobs"]) for p in proposed), proposed
    # The continuation starts from the followed-up paper's code: its history, then a commit of ours.
    git_dir = runs[-1] / f"{proposed[0]['name']}.state" / "git"
    log = subprocess.run(["git", f"--git-dir={git_dir}", "log", "--format=%s"], capture_output=True,
                         text=True).stdout.splitlines()
    first_log = subprocess.run(["git", f"--git-dir={runs[0] / (keep['idea_name'] + '.state') / 'git'}", "log",
                                "--format=%s"], capture_output=True, text=True).stdout.splitlines()
    assert f"continue paper {keep['id']}" in log and set(first_log) <= set(log), log
    [continued] = [p for p in archived(tmp_path, env) if p["id"] not in {keep["id"], drop["id"]}
                   and p["idea_name"] == proposed[0]["name"]]
    assert continued["continues"] == keep["id"]
    tree_file = runs[-1] / f"{proposed[0]['name']}.state" / "search.json"
    if search[1] == "tree":  # the search grows from the continued code: its first node runs it unchanged
        first_node = json.loads(tree_file.read_text())["nodes"][1]
        subject = subprocess.run(["git", f"--git-dir={git_dir}", "log", "-1", "--format=%s", first_node["commit"]],
                                 capture_output=True, text=True).stdout.strip()
        assert subject == f"continue paper {keep['id']}" and not first_node["buggy"], first_node


def test_the_llm_is_told_the_verdicts_and_asked_for_continuations_first(tmp_path: Path) -> None:
    template = load_template(str(write_toy_template(tmp_path / "templates")))
    followed = ArchivedIdea(template=template.name, name="lr_probe", title="Learning rate probe", hypothesis="h",
                            knobs=["learning_rate"], score=4, paper_id="20260101-000000-toy-lr_probe-abcd1234",
                            human_score=9, note=NOTE, mark="follow-up")
    dropped = ArchivedIdea(template=template.name, name="bad_idea", title="A bad idea", hypothesis="h", score=6,
                           paper_id="20260101-000000-toy-bad_idea-abcd1234", human_score=2, mark="discard")
    ctx = IdeationContext(template=template, archive=[followed, dropped], seed_ideas=[], num_ideas=2,
                          reflections=0, follow_ups=[followed])
    with LoopbackLLM(default=ScriptedBrainAnswers(template)) as srv:
        LLMBrain(LLMClient("test-model", base_url=srv.url, api_key="k")).ideas(ctx)
        req, second = srv.for_stage("ideas")  # one conversation per idea (issue 12), the continuation first
    assert f"a continuation of paper {followed.paper_id}" in req.user
    assert "continuation of paper" not in second.user.rsplit("Propose idea", 1)[1]
    assert f"paper {followed.paper_id}" in req.user and NOTE in req.user and "researcher 9/10" in req.user
    assert "bad_idea" in req.user and "DISCARDED" in req.user
