"""The tree search end to end through the real CLI, with both brains: bubblewrap, git, LaTeX,
SQLite checkpoints, the archive; a real local Ray cluster; the loopback OpenAI server.

- the offline brain on the tiny scaffold template at smoke scale: a staged tree, confirmation on
  fresh seeds, the paper's statistics from the confirmation only, the Search paragraph, the
  exploration table and the tree figure, the archive page's tree;
- SIGKILL mid-search, then `resume`: the same tree as a run never killed, no node run twice;
- parallel expansion: two nodes at once as Ray tasks;
- the LLM brain, whose scripted draft crashes and must be debugged.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from test_archive import _ActiveContent
from test_pipeline_llm import PLOT_PY

from agent.models import STAGES, SearchTree
from agent.paper import faithfulness
from agent.template.contract import load_template
from tests.helpers import cli
from tests.llm_server import CRASH_LINE, LoopbackLLM, ScriptedBrainAnswers, crashing_edit, write_toy_template
from tests.pipeline_helpers import (
    archived,
    kill_group,
    leftover_processes,
    only_run,
    start_run,
    wait_for,
    workspace,
)

pytestmark = pytest.mark.slow

BUDGET = 8
ARGS = ("--num-ideas", "1", "--reviewers", "1", "--search", "tree", "--search-budget", str(BUDGET))


def trees(run_dir: Path) -> dict[str, SearchTree]:
    return {
        p.parent.name.removesuffix(".state"): SearchTree.model_validate_json(p.read_text())
        for p in run_dir.glob("*.state/search.json")
    }


def shape(tree: SearchTree) -> list[tuple]:
    """What the search decided, node by node (not when, nor the commits' timestamps)."""
    return [
        (n.id, n.parent, n.kind, n.stage, n.seeds, sorted(n.settings.items()), n.buggy, n.halving)
        for n in tree.nodes
    ]


def sandbox_names(run_dir: Path) -> Counter:
    return Counter(json.loads(line)["name"] for line in (run_dir / "sandbox.jsonl").read_text().splitlines())


def git(run_dir: Path, idea: str, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={run_dir / f'{idea}.state' / 'git'}", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    """One whole offline run with the tree search, never interrupted."""
    tmp = tmp_path_factory.mktemp("search")
    template, env = workspace(tmp)
    res = cli("run", "--template", str(template), *ARGS, cwd=tmp, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    return tmp, env, only_run(tmp)


def test_the_offline_search_ends_in_a_paper_on_confirmed_runs(reference: tuple[Path, dict, Path]) -> None:
    tmp, env, run_dir = reference
    [(idea, tree)] = trees(run_dir).items()
    assert tree.done and all(n.status == "done" for n in tree.nodes)
    assert 3 <= len(tree.nodes) - 1 <= BUDGET, "the budget bounds the nodes"
    order = [STAGES.index(n.stage) for n in tree.nodes[1:]]
    assert order == sorted(order), "the stages run in order"
    research = [n for n in tree.nodes if n.stage == "research"]
    assert research and all(n.settings for n in research[:1]), "the idea's own knobs were searched"
    assert any(n.screened for n in tree.nodes), "new settings are screened on one seed first"
    assert tree.selected is not None and tree.nodes[tree.selected].stage == "research"
    base, sel = tree.nodes[tree.confirmed["baseline"]], tree.nodes[tree.confirmed["selected"]]
    assert (base.parent, sel.parent) == (0, tree.selected) and base.kind == sel.kind == "replicate"
    assert base.seeds == sel.seeds == tree.fresh_seeds and not set(tree.fresh_seeds) & set(tree.seeds)
    for n in tree.nodes[1:]:  # each node's commit is the code it ran, kept under refs/nodes
        if n.kind != "replicate" and n.plan.edits:
            assert git(run_dir, idea, "rev-parse", f"refs/nodes/n{n.id}").strip() == n.commit
            assert git(run_dir, idea, "diff", tree.nodes[n.parent].commit, n.commit).strip()

    [paper] = archived(tmp, env)
    folder = tmp / "archive" / paper["id"]
    results = json.loads((folder / "results.json").read_text())
    # The paper's statistics come from the confirmation alone; the exploration is apart.
    assert list(results["runs"]) == ["run_1"] and results["seeds"] == tree.fresh_seeds
    assert results["runs"]["run_1"]["final_info"] == sel.results and results["baseline"] == base.results
    assert results["analysis"]["setup"]["seeds"] == tree.fresh_seeds and results["analysis"]["n_runs"] == 1
    explored = {r["node"] for r in results["search"]["exploration"]}
    assert explored == {n.id for n in tree.nodes if n.stage != "confirm"}
    tex = (folder / "paper.tex").read_text()
    assert "\\paragraph{Search.}" in tex and "tab:exploration" in tex and "search_tree.png" in tex
    report = faithfulness.check(tex, results)
    assert report.ok, report.bad
    assert (folder / "search_tree.png").read_bytes()[:4] == b"\x89PNG"
    page = (folder / "index.html").read_text()
    assert 'class="search-tree"' in page and all(f'id="node-{n.id}"' in page for n in tree.nodes)
    parser = _ActiveContent()
    parser.feed(page)
    assert parser.found == [], "the tree view runs under the strict CSP"
    search = json.loads((folder / "search.json").read_text())
    edited = {n.id for n in tree.nodes if n.plan.edits and n.kind != "replicate"}
    assert all(bool(n["diff"]) == (n["id"] in edited) for n in search["nodes"]), "a diff for code changes only"
    assert all(n["log_tail"] for n in search["nodes"][1:]), "every node that ran shows its log"

    status = cli("status", cwd=tmp, env={**env, "COLUMNS": "200"})
    assert status.returncode == 0 and f"{len(tree.nodes) - 1}/{BUDGET} nodes" in status.stdout, status.stdout


def test_kill_mid_search_then_resume_gives_the_same_tree(
    tmp_path: Path, reference: tuple[Path, dict, Path]
) -> None:
    [expected] = trees(reference[2]).values()
    template, env = workspace(tmp_path)
    proc = start_run(tmp_path, env, "--template", str(template), *ARGS)

    def mid_search() -> bool:
        for run in (tmp_path / "experiments").glob("*/"):
            for tree in trees(run).values() if (run / "settings.json").is_file() else []:
                done = [n for n in tree.nodes[1:] if n.status == "done"]
                running = [n for n in tree.nodes if n.status == "planned" and n.started]
                if len(done) >= 2 and running:
                    return True
        return False

    wait_for(
        lambda: (tmp_path / "experiments").is_dir() and mid_search(), proc, what="a node running mid-search"
    )
    kill_group(proc)
    run_dir = only_run(tmp_path)
    assert not leftover_processes(str(tmp_path)), "the sandboxed node died with the run"
    [before] = trees(run_dir).values()
    finished = {n.id: n for n in before.nodes if n.status == "done"}

    res = cli("resume", run_dir.name, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    [after] = trees(run_dir).values()
    assert shape(after) == shape(expected), "the resumed tree is the one an uninterrupted run grows"
    ran = {"commit", "seeds", "args", "results", "buggy", "started", "finished", "wall_s"}
    for i, n in finished.items():
        assert after.nodes[i].model_dump(include=ran) == n.model_dump(include=ran), (
            f"n{i} was kept as it finished"
        )
    runs = sandbox_names(run_dir)
    names = {f"n{n.id}" for n in after.nodes[1:] if n.started is not None}
    assert {name: runs[name] for name in names} == dict.fromkeys(names, 1), (
        "every node ran once: none lost, none rerun"
    )
    assert len(archived(tmp_path, env)) == 1


def test_parallel_expansion_on_a_local_ray_cluster(tmp_path: Path) -> None:
    template, env = workspace(tmp_path)
    res = cli(
        "run",
        "--template",
        str(template),
        "--num-ideas",
        "1",
        "--reviewers",
        "1",
        "--search",
        "tree",
        "--search-budget",
        "6",
        "--parallel-runs",
        "2",
        "--executor",
        "ray",
        cwd=tmp_path,
        env={**env, "RAY_ADDRESS": ""},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    [tree] = trees(only_run(tmp_path)).values()
    ran = [n for n in tree.nodes[1:] if n.started is not None]
    assert ran and all(n.results is not None or n.buggy for n in ran), (
        "results came back from the Ray workers"
    )
    overlapping = [
        (a.id, b.id)
        for a in ran
        for b in ran
        if a.id < b.id and a.started < b.finished and b.started < a.finished
    ]
    assert overlapping, "two nodes were expanded at once"
    assert all(n.shared for n in ran), "a run on a Ray cluster counts as having shared the machine"
    assert len(archived(tmp_path, env)) == 1


def test_the_llm_brain_debugs_its_own_crashing_draft(tmp_path: Path) -> None:
    template = write_toy_template(tmp_path / "templates")
    (template / "plot.py").write_text(PLOT_PY)
    answers = ScriptedBrainAnswers(load_template(str(template)))
    env = {
        "AI_SCIENTIST_API_KEY": "sk-test",
        "OPENAI_API_KEY": "",
        "AI_SCIENTIST_EXPERIMENTS": str(tmp_path / "experiments"),
        "AI_SCIENTIST_ARCHIVE": str(tmp_path / "archive"),
        "AI_SCIENTIST_SEARCH_DEBUG_PROB": "1",
    }
    with LoopbackLLM(default=answers) as srv:
        srv.add("expand:draft", crashing_edit((template / "experiment.py").read_text()))
        res = cli(
            "run",
            "--template",
            str(template),
            "--model",
            "test-model",
            "--base-url",
            srv.url,
            "--num-ideas",
            "1",
            "--reviewers",
            "1",
            "--literature",
            "offline",
            "--search",
            "tree",
            "--search-budget",
            "6",
            cwd=tmp_path,
            env=env,
            timeout=600,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        debug_requests = [r for r in srv.for_stage("expand") if r.stage == "expand:debug"]
    debug_prompts = [r.prompt for r in debug_requests]
    [tree] = trees(only_run(tmp_path)).values()
    [crashed] = [n for n in tree.nodes if n.kind == "draft" and n.buggy]
    assert "exit code" in crashed.bug and "injected crash" in crashed.error_tail
    [fix] = tree.children(crashed.id)
    assert fix.kind == "debug" and not fix.buggy and fix.results is not None, "the debug child ran and worked"
    assert debug_prompts and "injected crash" in debug_prompts[0] and CRASH_LINE in debug_prompts[0], (
        "the debugger saw the error tail and the node's code"
    )
    assert "PATH from the root" in debug_prompts[0]
    # The expansions are asked in the coder's conversation, and the model writes each node's notes.
    assert len(debug_requests[0].messages) > 2, "the debugger was asked with the earlier nodes' turns"
    [state] = only_run(tmp_path).glob("*.state")
    turns = json.loads((state / "memory.json").read_text())["turns"]
    assert any(f"child of search node n{crashed.id}" in turn["content"] for turn in turns)
    notes = (state / "notes.md").read_text()
    assert f"In n{fix.id} we changed one setting" in notes and f"## n{crashed.id} (draft" in notes
    [paper] = archived(tmp_path, env)
    nodes = json.loads((tmp_path / "archive" / paper["id"] / "search.json").read_text())["nodes"]
    assert CRASH_LINE in nodes[crashed.id]["diff"] and "injected crash" in nodes[crashed.id]["log_tail"]
