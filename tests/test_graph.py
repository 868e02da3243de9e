"""The graph in-process: built from a scripted brain, real sandbox, LaTeX and archive, run to
the end, with the routing of `graph.route` (here through --improve) and the SQLite checkpoint
showing every idea stage done once."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.archive.store import Archive
from agent.brains.llm.ledger import Ledger
from agent.brains.offline.brain import OfflineBrain
from agent.config import RunSettings
from agent.models import Outcome
from agent.pipeline.deps import Deps
from agent.pipeline.graph import NEXT, compile_graph, route
from agent.sandbox.executors import LocalExecutor
from agent.template.contract import load_template
from tests.helpers import scaffold

pytestmark = pytest.mark.slow


class ScriptedOffline(OfflineBrain):
    """The offline brain, recording which stage asked what, in order."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.asked: list[str] = []

    def __getattribute__(self, name: str):
        attr = super().__getattribute__(name)
        if callable(attr) and not name.startswith("_") and name in {
            "ideas", "novelty", "next_run", "plot_plan", "describe_figures", "write_section", "citations",
            "review", "meta_review", "revise",
        }:
            super().__getattribute__("asked").append(name)
        return attr


def test_the_graph_runs_in_process_and_routes_through_improve(tmp_path: Path) -> None:
    template = load_template(scaffold(tmp_path, "tiny"))
    settings = RunSettings(template=str(template.path), num_ideas=1, search="linear", max_runs=1, reviewers=1,
                           improve=True,
                           experiments=tmp_path / "experiments", archive=tmp_path / "archive")
    run_dir = settings.experiments / "run-in-process"
    run_dir.mkdir(parents=True, mode=0o700)
    brain = ScriptedOffline()
    deps = Deps(settings=settings, template=template, brain=brain, ledger=Ledger(),
                executor=LocalExecutor(), local=LocalExecutor(), archive=Archive(settings.archive), run_dir=run_dir)
    assert route(deps, "review") == "improve" and route(deps, "improve") == "archive"
    graph, conn = compile_graph(deps, run_dir)
    config = {"configurable": {"thread_id": "run-in-process"}, "recursion_limit": 100}
    try:
        seen = [e for e in graph.stream({"run_id": "run-in-process", "outcomes": []}, config,
                                        stream_mode="updates")]
        state = graph.get_state(config)
    finally:
        conn.close()
    [outcome] = [Outcome.model_validate(o) for o in state.values["outcomes"]]
    assert outcome.archived and outcome.paper_id and outcome.template == "tiny", outcome
    assert not state.next, "the run ended"
    stages = [name for update in seen for name in update]
    for stage in NEXT:  # every idea stage ran exactly once, in the order the routing gives
        assert stages.count(stage) == 1, stages
    assert stages.index("review") < stages.index("improve") < stages.index("archive")
    assert brain.asked.count("revise") == 1 and brain.asked.count("review") == 2  # reviewed again after revising
    [row] = Archive(settings.archive).list()
    assert row.id == outcome.paper_id and (settings.archive / row.id / "paper.pdf").is_file()
