"""The experiment search of one idea (`--search tree`): a best-first tree over code states, in
stages, expanded in parallel, saved after every node, and confirmed on fresh seeds.

    n0 root: the unchanged template (its run is the cached baseline)
    ├── tune ...           1. the baseline's own settings, around their defaults
    ├── draft ── improve   2. the idea: drafted, improved, and its buggy leaves debugged
    │     └── debug
    ├── ablate ...         3. the selected node with one of its changes undone
    └── replicate          4. confirmation: the selected node and the root, rerun on fresh seeds

This module owns the tree, the budget, selection and running; a brain only proposes one child
at a time (`Brain.expand`). Every node has a work tree of its own (`IdeaWorkdir.node_dir`),
made from its parent's commit, and its code is committed before it runs, so a node's commit is
exactly the code it ran and no two runs ever share a folder.

- Budget: `--search-budget` nodes besides the root, split over the stages (`stage_budgets`);
  what a stage leaves rolls over to the next. `--search-minutes` caps exploration's wall time;
  confirmation always runs.
- Buggy: the run crashed or was killed, left no valid final_info.json, its edit or flags were
  refused, or the brain flags it when asked to expand it. The brain can add a bug, never
  clear one. A buggy node is debugged with probability `search_debug_prob` (drawn once per
  node, seeded), while fewer than `search_debug_depth` debug nodes lead to it.
- Selection: best-first on `SearchNode.score`, the primary metric's mean relative change
  against the root on the same seeds, signed by the metric's direction. The node the paper is
  about is the best of the idea's own stage (nodes run on every seed first), chosen when that
  stage ends; ablations then take it apart, and confirmation reruns it.
- Successive halving: a brain may ask for its child to be screened on the first seed. Once
  `RUNG` screened nodes of a stage are done (or nothing else is left to do), the better half of
  them, if they also beat their parent on that seed, get a `replicate` child on every search
  seed; only nodes run on every seed are expanded further or selected first.
- Durable: the tree is saved (atomically, in the state folder) when a node is planned, when it
  is ready to run and when it is done. A resumed search runs the planned nodes from their saved
  plans, without asking the brain again, and never reruns a done one.
- Parallel: up to `--parallel-runs` nodes run at once through `Deps.executor` (local sandboxes
  or Ray tasks). The brain, git and the tree are used from the calling thread only.
- Confirmation: the paper's statistics come only from the two confirmation nodes, run on seeds
  the search never used (`adopt` makes them the idea's run_0 and run_1). The exploration is
  reported as exploration (`summary`), never as evidence.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from pydantic import BaseModel, Field

from agent.edits import EditRefused, apply_edits
from agent.gitrepo import TEMPLATE_TAG
from agent.models import (
    STAGES,
    ExpandContext,
    ExperimentContext,
    Idea,
    NodeKind,
    PlannedRun,
    RunRecord,
    SearchNode,
    SearchStage,
    SearchTree,
)
from agent.pipeline.deps import Deps
from agent.pipeline.progress import emit
from agent.pipeline.workdir import IdeaWorkdir
from agent.sandbox import files
from agent.template.knobs import run_settings, settings_label
from agent.template.run import RunOutcome, refused_flags, run_experiment

RUNG = 2
"""Screened nodes per round of successive halving; the better half is promoted."""
CONFIRM = ("baseline", "selected")
"""What confirmation reruns on fresh seeds: one node each."""
ERROR_CHARS = 3000


# ---------------------------------------------------------------- the tree's numbers


def stage_budgets(budget: int) -> dict[str, int]:
    """Nodes per stage: two for confirmation, a fifth of the rest each for tuning and ablation
    (none when the rest is too small to spare them), the remainder for the idea itself."""
    explore = budget - len(CONFIRM)
    tune = explore // 5 if explore >= 5 else 0
    ablate = explore // 5 if explore >= 4 else 0
    return {"tune": tune, "research": explore - tune - ablate, "ablate": ablate, "confirm": len(CONFIRM)}


def fresh_seeds(seeds: list[int]) -> list[int]:
    """As many seeds as the search used, none of them among those."""
    start = max(seeds) + 1
    return list(range(start, start + len(seeds)))


def _per_seed(results: dict[str, Any], metric: str) -> dict[str, list[float]]:
    return {ds: [float(v) for v in block["per_seed"][metric]] for ds, block in results.items()}


def primary_mean(results: dict[str, Any], metric: str) -> float:
    """The primary metric's mean over datasets (each dataset's mean over its seeds)."""
    by_ds = _per_seed(results, metric)
    return sum(sum(v) / len(v) for v in by_ds.values()) / len(by_ds)


def score_of(tree: SearchTree, results: dict[str, Any], seeds: list[int]) -> float | None:
    """Mean over datasets of the relative change of the primary metric against the root on the
    same seeds, signed so that higher is better; None on seeds the root did not run."""
    if not set(seeds) <= set(tree.seeds):
        return None
    root = _per_seed(tree.nodes[0].results or {}, tree.metric)
    mine = _per_seed(results, tree.metric)
    sign = -1.0 if tree.direction == "minimize" else 1.0
    changes = []
    for ds, values in mine.items():
        base = [root[ds][tree.seeds.index(s)] for s in seeds]
        b, m = sum(base) / len(base), sum(values) / len(values)
        changes.append(sign * (m - b) / (abs(b) if b else 1.0))
    return sum(changes) / len(changes)


def _rank(node: SearchNode) -> tuple[bool, float, int]:
    """Best first: nodes run on every seed before screened ones, then by score, then oldest."""
    return (not node.screened, node.score if node.score is not None else -math.inf, -node.id)


# ---------------------------------------------------------------- the controller


def root_node(seeds: list[int], results: dict[str, Any], commit: str = "") -> SearchNode:
    """The unchanged template, done: its run is the cached baseline."""
    return SearchNode(id=0, parent=None, kind="root", plan=PlannedRun(description="The unchanged template"),
                      seeds=seeds, commit=commit, run="run_0", status="done", results=results)


def new_tree(deps: Deps, idea: Idea, wd: IdeaWorkdir) -> SearchTree:
    """A tree holding only the root: the template's commit and the cached baseline's results."""
    seeds = deps.template.seeds_for(deps.settings.scale)
    primary = deps.template.primary
    commit = str(wd.repo.run("rev-parse", TEMPLATE_TAG)).strip()
    root = root_node(seeds, deps.baseline(), commit)
    tree = SearchTree(
        idea=idea.name,
        metric=primary.name,
        direction=primary.direction,
        budget=deps.settings.search_budget,
        budgets=stage_budgets(deps.settings.search_budget),
        seeds=seeds,
        fresh_seeds=fresh_seeds(seeds),
        nodes=[root],
        wall_cap_s=deps.settings.search_minutes * 60 if deps.settings.search_minutes else None,
    )
    root.metric, root.score = primary_mean(root.results or {}, primary.name), 0.0
    head = wd.repo.head()
    if idea.continues and head != commit:  # a continuation: the search starts from that paper's code
        tree.nodes.append(
            SearchNode(
                id=1,
                parent=0,
                kind="draft",
                stage="research",
                seeds=seeds,
                commit=head,
                run="run_1",
                plan=PlannedRun(description=f"The final code of paper {idea.continues}, continued"),
            )
        )
    return tree


class Search:
    """One idea's search, from a new tree or the one its state folder holds."""

    def __init__(self, deps: Deps, idea: Idea, wd: IdeaWorkdir):
        self.deps, self.idea, self.wd = deps, idea, wd
        self.tree = wd.search() or new_tree(deps, idea, wd)
        self._session = time.time()
        self._elapsed_before = self.tree.elapsed_s
        self._queue: deque[int] = deque(n.id for n in self.tree.nodes if n.status == "planned")

    # ------------------------------------------------------------ the loop

    def run(self) -> SearchTree:
        t = self.tree
        self._save()
        width = self.deps.settings.parallel_runs
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix=f"search-{t.idea}") as pool:
            running: dict[Future[RunOutcome], int] = {}
            while True:
                while len(running) < width and not t.done:
                    if not self._queue:
                        planned = self._plan_next()
                        if not planned:
                            if running or not self._advance():
                                break
                            continue
                        self._queue.extend(n.id for n in planned)
                    node = t.nodes[self._queue.popleft()]
                    refused = self._prepare(node)
                    if refused:
                        self._record(node, RunOutcome(False, None, refused, 0.0), time.time())
                    else:
                        node.started = time.time()
                        self._save()
                        running[pool.submit(self._execute, node.model_copy(deep=True))] = node.id
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    self._record(t.nodes[running.pop(future)], future.result(), time.time())
        t.done = True
        self._save()
        return t

    def _save(self) -> None:
        self.tree.elapsed_s = round(self._elapsed_before + time.time() - self._session, 2)
        self.wd.save_search(self.tree)

    def _over_time(self) -> bool:
        cap = self.tree.wall_cap_s
        return cap is not None and self._elapsed_before + time.time() - self._session > cap

    def _left(self, stage: SearchStage) -> int:
        """Nodes this exploration stage may still add: its budget, plus what earlier ones left."""
        upto = STAGES[: STAGES.index(stage) + 1]
        return sum(self.tree.budgets[s] for s in upto) - sum(self.tree.used(s) for s in upto)

    def _advance(self) -> bool:
        """Move to the next stage; False when the search is over."""
        t = self.tree
        if t.stage == "confirm":
            return False
        for n in t.nodes:  # a rung the stage left unfinished is not promoted
            if n.halving == "waiting":
                n.halving = "pruned"
        if t.stage == "research":
            t.selected = self._select()
        t.stage = STAGES[STAGES.index(t.stage) + 1]
        self._save()
        return not (t.stage == "confirm" and t.selected is None)  # no run of the idea: nothing to confirm

    def _select(self) -> int | None:
        """The node the paper is about: the best one of the idea's own stage, once it is over.
        Ablations and the tuned baseline are exploration around it, never the selection."""
        pool = [n for n in self.tree.nodes if n.stage == "research" and n.status == "done" and not n.buggy]
        return max(pool, key=_rank).id if pool else None

    # ------------------------------------------------------------ what to run next

    def _plan_next(self) -> list[SearchNode]:
        t = self.tree
        if t.stage == "confirm":
            return self._confirmation()
        if self._left(t.stage) <= 0 or self._over_time():
            return []
        return (
            self._promotions(whole_rung=True)
            or self._debug()
            or self._expansion()
            or self._promotions(whole_rung=False)
        )

    def _confirmation(self) -> list[SearchNode]:
        t = self.tree
        todo = [("baseline", 0), ("selected", t.selected)]
        out = []
        for role, target in todo:
            if role in t.confirmed or target is None:
                continue
            parent = t.nodes[target]
            node = self._child(
                parent, "replicate", parent.plan.model_copy(update={"edits": []}), seeds=t.fresh_seeds
            )
            node.plan.description = f"Confirmation of n{target} on fresh seeds: {parent.plan.description}"
            t.confirmed[role] = node.id
            out.append(node)
        self._save()
        return out

    def _promotions(self, *, whole_rung: bool) -> list[SearchNode]:
        """Successive halving: the better half of a finished rung of screened nodes, among those
        that beat their parent on the screening seed, is rerun on every search seed."""
        t = self.tree
        waiting = [n for n in t.nodes if n.stage == t.stage and n.halving == "waiting"]
        if not waiting or (whole_rung and len(waiting) < RUNG):
            return []
        if not whole_rung and any(
            n.screened and n.status == "planned" for n in t.nodes if n.stage == t.stage
        ):
            return []  # a screened node still runs: wait for it to complete the rung
        waiting.sort(key=_rank, reverse=True)
        keep = min(math.ceil(len(waiting) / 2), self._left(t.stage))
        out = []
        for n in waiting:
            promising = len(out) < keep and (n.score or 0.0) > self._parent_score(n)
            n.halving = "promoted" if promising else "pruned"
            if promising:
                node = self._child(n, "replicate", n.plan.model_copy(update={"edits": []}), seeds=t.seeds)
                node.plan.description = f"n{n.id} on every seed: {n.plan.description}"
                out.append(node)
        self._save()
        return out

    def _parent_score(self, node: SearchNode) -> float:
        parent = self.tree.nodes[node.parent or 0]
        if parent.results is None:
            return 0.0
        values = _per_seed(parent.results, self.tree.metric)
        seeds = [s for s in node.seeds if s in parent.seeds]
        sub = {
            ds: {"per_seed": {self.tree.metric: [v[parent.seeds.index(s)] for s in seeds]}}
            for ds, v in values.items()
        }
        return score_of(self.tree, sub, seeds) or 0.0

    def _debug(self) -> list[SearchNode]:
        t = self.tree
        leaves = [
            n
            for n in t.nodes
            if n.stage == t.stage
            and n.buggy
            and n.debug
            and not t.children(n.id)
            and "debug" not in n.exhausted
        ]
        for node in sorted(leaves, key=lambda n: -n.id):
            child = self._ask(node, "debug")
            if child is not None:
                return [child]
        return []

    def _expansion(self) -> list[SearchNode]:
        """Best first: the best node run on every seed that the brain still has a child for."""
        t = self.tree
        if t.stage == "ablate":
            pool = [t.nodes[t.selected]] if t.selected is not None else []
        else:
            stages = {"tune": (None, "tune"), "research": (None, "tune", "research")}[t.stage]
            pool = [
                n
                for n in t.nodes
                if n.stage in stages and n.status == "done" and not n.buggy and not n.screened
            ]
        for node in sorted(pool, key=_rank, reverse=True):
            kind = self._kind(node)
            if kind in node.exhausted:
                continue
            child = self._ask(node, kind)
            if child is not None:
                return [child]
        return []

    def _kind(self, node: SearchNode) -> NodeKind:
        stage = self.tree.stage
        if stage == "research":
            return "improve" if node.stage == "research" else "draft"
        return "ablate" if stage == "ablate" else "tune"

    def _ask(self, node: SearchNode, kind: NodeKind) -> SearchNode | None:
        """The brain's child of `node`, as a planned node; None (and remembered) when it has none."""
        ctx = ExpandContext(
            idea=self.idea,
            template=self.deps.template,
            scale=self.deps.settings.scale,
            tree=self.tree,
            node=node.id,
            kind=kind,
            code=self._code(node),
            baseline=self.tree.nodes[0].results or {},
            memory=self.wd.memory(),
        )
        emit(self.idea.name, "experiments", note=f"expanding n{node.id} ({kind})", search=progress(self.tree))
        got = self.deps.brain.expand(ctx)
        self.wd.save_memory(ctx.memory)
        asked = kind
        # The brain may add a bug, never clear one, and never to the root: its results are the
        # template's own baseline, validated (a weak model flagged it and so ended the search).
        if got is not None and got.flag and not node.buggy and node.id != 0:
            node.buggy, node.bug, node.debug = True, f"flagged by the brain: {got.flag[:300]}", True
            kind = "debug"
        if (
            got is None
            or got.plan is None
            or (kind == "debug" and node.debug_depth >= self.deps.settings.search_debug_depth)
        ):
            node.exhausted.append(asked)  # never asked again for this kind of child of this node
            self._save()
            return None
        # Screening pays only where a promotion can follow it.
        screen = got.screen and len(self.tree.seeds) > 1 and self._left(self.tree.stage) > RUNG
        child = self._child(node, kind, got.plan, seeds=self.tree.seeds[:1] if screen else self.tree.seeds)
        child.screened = screen
        self._save()
        return child

    def _code(self, node: SearchNode) -> str:
        try:
            return self.wd.repo.show(node.commit, "experiment.py").decode(errors="replace")
        except Exception:  # noqa: BLE001 - a template may keep its code elsewhere; the brain sees none
            return ""

    def _child(self, parent: SearchNode, kind: NodeKind, plan: PlannedRun, *, seeds: list[int]) -> SearchNode:
        t = self.tree
        settings = {**parent.settings, **run_settings(self.deps.template, plan)}
        defaults = {k.name: k.default for k in self.deps.template.knobs}
        node = SearchNode(
            id=len(t.nodes),
            parent=parent.id,
            kind=kind,
            stage=t.stage,
            plan=plan,
            args={**parent.args, **plan.args},
            seeds=list(seeds),
            run=f"run_{len(t.nodes)}",
            settings={k: v for k, v in settings.items() if defaults.get(k, object()) != v},
            commit=parent.commit if kind == "replicate" else "",
            debug_depth=parent.debug_depth + (kind == "debug"),
        )
        t.nodes.append(node)
        return node

    # ------------------------------------------------------------ running one node

    def _prepare(self, node: SearchNode) -> str | None:
        """The node's own work tree: its parent's commit, its edits applied and committed.
        Returns why it cannot run (refused flags or edit), or None."""
        folder = self.wd.node_dir(node.id)
        folder.parent.mkdir(parents=True, exist_ok=True)
        files.remove(folder.parent, folder.name)  # a half-made folder of an interrupted session
        folder.mkdir()
        parent = self.tree.nodes[node.parent or 0]
        preset = bool(node.commit)  # a replicate's, a continuation's, or committed before an interruption
        self.wd.repo.checkout_files(node.commit or parent.commit, folder)
        node.commit = node.commit or parent.commit  # until its own edits are committed
        refused = refused_flags(node.args)
        if refused:
            return refused
        if not preset:
            try:
                apply_edits(folder, node.plan.edits, self.deps.template.editable_files)
            except EditRefused as e:
                return f"edit refused: {e}"
            node.commit = self.wd.repo.commit_node(
                folder, parent.commit, f"n{node.id}", f"n{node.id} {node.kind}: {node.plan.description[:60]}"
            )
        return None

    def _execute(self, node: SearchNode) -> RunOutcome:
        """Run in a pool thread: the sandboxed run only (no git, no brain, no tree)."""
        return run_experiment(
            self.deps.executor,
            self.deps.template,
            self.deps.settings.scale,
            self.wd.node_dir(node.id),
            node.run,
            node.args,
            log_name=f"n{node.id}",
            seeds=node.seeds,
        )

    def _record(self, node: SearchNode, got: RunOutcome, finished: float) -> None:
        t = self.tree
        node.status, node.finished, node.wall_s, node.shared = "done", finished, got.wall_s, got.shared
        if got.ok and got.results is not None:
            node.results = got.results
            node.metric = primary_mean(got.results, t.metric)
            node.score = score_of(t, got.results, node.seeds)
            if node.screened:
                node.halving = "waiting"
        else:
            error = got.error or "no results"
            node.buggy, node.bug = True, _bug(error)
            node.error_tail = error[-ERROR_CHARS:]
            if node.stage != "confirm":
                draw = random.Random(f"{self.deps.settings.seed}|{t.idea}|{node.id}").random()
                node.debug = node.debug_depth < self.deps.settings.search_debug_depth and (
                    draw < self.deps.settings.search_debug_prob
                )
        self._save()
        self._notebook(node)
        emit(
            t.idea,
            "experiments",
            run=f"n{node.id}",
            note=f"n{node.id} {node.kind}: " + ("buggy" if node.buggy else f"{t.metric} {node.metric:.4g}"),
            search=progress(self.tree),
            cost_usd=self.deps.ledger.summary(t.idea)["cost_usd"],
        )


    def _notebook(self, node: SearchNode) -> None:
        """The brain's lab-notebook entry for a finished node (the LLM brain writes it in the
        coder's conversation; the offline brain states the facts)."""
        t = self.tree
        seeds = f"{len(node.seeds)} seed{'s' if len(node.seeds) != 1 else ''}"
        record = RunRecord(
            name=f"n{node.id} ({node.kind}, {node.stage} stage, parent n{node.parent}, {seeds})",
            planned=node.plan.model_copy(update={"args": node.args}),
            ok=not node.buggy,
            results=node.results,
            error=node.bug if node.buggy else None,
            wall_s=node.wall_s,
            shared=node.shared,
        )
        ctx = ExperimentContext(
            idea=self.idea, template=self.deps.template, scale=self.deps.settings.scale,
            baseline=t.nodes[0].results or {}, max_runs=t.budget, code=self._code(node), memory=self.wd.memory(),
        )
        self.wd.note(self.deps.brain.run_notes(ctx, record))
        self.wd.save_memory(ctx.memory)


def _bug(error: str) -> str:
    """The failure's first line ("exit code 2") and, when the tail ends in another, its last
    (argparse's or Python's own error), which is what a reader of the reason wants."""
    lines = [ln.strip() for ln in error.strip().splitlines() if ln.strip()]
    if not lines:
        return "no results"
    last = lines[-1][:150]
    return (lines[0] if len(lines) == 1 else f"{lines[0][:50]}: {last}")[:200]


def progress(tree: SearchTree) -> dict[str, Any]:
    """What `ai-scientist status` shows of a search: its stage, nodes done, buggy, best so far."""
    done = [n for n in tree.nodes if n.id and n.status == "done"]
    ok = [
        n
        for n in tree.nodes
        if n.status == "done" and not n.buggy and n.stage != "confirm" and n.metric is not None
    ]
    best = max(ok, key=_rank) if ok else None
    return {
        "stage": tree.stage,
        "nodes": len(done),
        "budget": tree.budget,
        "buggy": sum(n.buggy for n in done),
        "best": best.metric if best else None,
        "best_node": best.id if best else None,
    }


# ---------------------------------------------------------------- after the search


def adopt(deps: Deps, wd: IdeaWorkdir, tree: SearchTree) -> list[RunRecord]:
    """Make the confirmation the idea's runs: the selected node's code in the work tree, the
    root's confirmation as run_0 and the selected node's as run_1 (for plot.py), and runs.json
    holding the confirmation run only. Returns it (empty when nothing could be confirmed)."""
    if tree.selected is None or "selected" not in tree.confirmed:
        return []
    selected = tree.nodes[tree.selected]
    wd.repo.checkout_files(selected.commit, wd.tree)
    for role, run in (("baseline", "run_0"), ("selected", "run_1")):
        node = tree.nodes[tree.confirmed[role]]
        files.remove(wd.tree, run)
        if not node.buggy:
            files.copy_tree(wd.node_dir(node.id), node.run, wd.tree, run)
    confirm = tree.nodes[tree.confirmed["selected"]]
    planned = PlannedRun(
        description=f"n{selected.id} ({selected.kind}): {selected.plan.description}",
        args=selected.args,
        knobs=selected.settings,
    )
    runs = [
        RunRecord(
            name="run_1",
            planned=planned,
            ok=not confirm.buggy,
            results=confirm.results,
            error=confirm.error_tail or None,
            wall_s=confirm.wall_s,
            shared=confirm.shared,
        )
    ]
    wd.save_runs(runs)
    wd.note(
        f"## search: n{selected.id} selected; confirmed against the baseline on fresh seeds "
        f"{tree.fresh_seeds} as run_1"
    )
    wd.commit(f"search: n{selected.id} selected, confirmed on seeds {','.join(map(str, tree.fresh_seeds))}")
    return runs


class ExplorationRow(BaseModel):
    """One explored node as the paper's exploration table shows it."""

    node: int
    parent: int | None
    kind: str
    stage: str
    label: str
    settings: dict[str, bool | int | float | str] = Field(description="The knob values its label names")
    seeds: int
    metric: float | None = Field(description="Primary metric, mean over datasets and the node's seeds")
    change_pct: float | None = Field(description="Relative change against the baseline on the same seeds, %")
    buggy: bool
    bug: str = ""


class SearchSummary(BaseModel):
    """`results.json`'s `search`: how the confirmed runs were found. Exploration only: none of
    these numbers is evidence, since they were measured on the seeds that selected them."""

    budget: int
    nodes: int
    buggy: int
    debug_nodes: int
    screened: int
    promoted: int
    by_stage: dict[str, int]
    seeds: list[int]
    fresh_seeds: list[int]
    selected: int | None
    selected_label: str
    confirmed: dict[str, int]
    path: list[int] = Field(description="Root to the selected node")
    exploration: list[ExplorationRow]


def _label(node: SearchNode) -> str:
    return settings_label(node.settings) or (
        "template defaults" if not node.id else node.plan.description[:80]
    )


def summary(tree: SearchTree) -> SearchSummary:
    explored = [n for n in tree.nodes if n.stage != "confirm"]
    rows = [
        ExplorationRow(
            node=n.id,
            parent=n.parent,
            kind=n.kind,
            stage=n.stage or "root",
            label=_label(n),
            settings=n.settings,
            seeds=len(n.seeds),
            metric=n.metric,
            change_pct=tree.change_pct(n),
            buggy=n.buggy,
            bug=n.bug,
        )
        for n in explored
    ]
    selected = tree.nodes[tree.selected] if tree.selected is not None else None
    return SearchSummary(
        budget=tree.budget,
        nodes=len(tree.nodes) - 1,
        buggy=sum(n.buggy for n in tree.nodes),
        debug_nodes=sum(n.kind == "debug" for n in tree.nodes),
        screened=sum(n.screened for n in explored),
        promoted=sum(n.halving == "promoted" for n in tree.nodes),
        by_stage={s: tree.used(s) for s in STAGES},
        seeds=tree.seeds,
        fresh_seeds=tree.fresh_seeds,
        selected=tree.selected,
        selected_label=_label(selected) if selected else "",
        confirmed=tree.confirmed,
        path=[n.id for n in tree.ancestors(tree.selected)] if selected else [],
        exploration=rows,
    )


# ---------------------------------------------------------------- for the archive page

DIFF_CHARS = 60_000
LOG_CHARS = 4_000


def archive_view(wd: IdeaWorkdir, tree: SearchTree) -> dict[str, Any]:
    """`search.json` of a paper folder: the tree as the archive page shows it, each node with
    its plan, its diff against its parent, its metric and the tail of its log."""
    nodes = []
    for n in tree.nodes:
        parent = tree.nodes[n.parent] if n.parent is not None else None
        diff = ""
        if parent is not None and n.commit and n.commit != parent.commit:
            diff = wd.repo.diff(parent.commit, n.commit)[:DIFF_CHARS]
        nodes.append(
            {
                "id": n.id,
                "parent": n.parent,
                "kind": n.kind,
                "stage": n.stage or "root",
                "description": n.plan.description,
                "args": n.args,
                "settings": n.settings,
                "seeds": n.seeds,
                "commit": n.commit,
                "metric": n.metric,
                "change_pct": tree.change_pct(n),
                "buggy": n.buggy,
                "bug": n.bug,
                "screened": n.screened,
                "halving": n.halving,
                "wall_s": n.wall_s,
                "diff": diff,
                "log_tail": _log_tail(wd, n),
            }
        )
    return {
        "metric": tree.metric,
        "direction": tree.direction,
        "budget": tree.budget,
        "seeds": tree.seeds,
        "fresh_seeds": tree.fresh_seeds,
        "selected": tree.selected,
        "confirmed": tree.confirmed,
        "path": [n.id for n in tree.ancestors(tree.selected)] if tree.selected is not None else [],
        "nodes": nodes,
    }


def _log_tail(wd: IdeaWorkdir, node: SearchNode) -> str:
    """The end of a node's log, read as hostile text: its stderr, else its stdout, else the
    log files its run wrote into its output folder; its error tail when there is none."""
    if not node.id or node.status != "done":
        return node.error_tail
    folder = wd.node_dir(node.id)
    names = [f"n{node.id}.stderr.log", f"n{node.id}.stdout.log"]
    try:
        names += [f"{node.run}/{name}" for name in files.list_files(folder, node.run, (".log", ".txt"))]
    except (OSError, files.UnsafeFile):
        pass
    for name in names:
        try:
            text = files.read_text(folder, name)
        except (OSError, files.UnsafeFile):
            continue
        if text.strip():
            return text[-LOG_CHARS:]
    return node.error_tail
