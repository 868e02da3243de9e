"""The novelty stage's evidence: literature search against a loopback fake of Semantic
Scholar and OpenAlex (real HTTP), archive similarity, and the template bibliography."""

from __future__ import annotations

import email.utils
import logging
import re
import time
from pathlib import Path

import pytest

from agent.literature import (
    FALLBACK_TAIL,
    OFFLINE_NOTE,
    S2_FIELDS,
    LiteratureSettings,
    bib_entries,
    bib_keys,
    gather_evidence,
    hit_key,
    search,
    similar_ideas,
    uninvert_abstract,
)
from agent.models import ArchivedIdea, Idea
from agent.paper import bibtex
from agent.template.contract import Figure, Knob, Metric, ScaleProfile, Template
from tests.fake_scholar import PAPERS, FakeScholar, error, malformed, rate_limited, stall, trickle

ROOT = Path(__file__).resolve().parent.parent

OWN_BIB = r"""
% The template's seed bibliography.
@string{nips = "Advances in Neural Information Processing Systems"}

@inproceedings{ho2020denoising,
  title     = {Denoising Diffusion Probabilistic Models},
  author    = {Ho, Jonathan and Jain, Ajay and Abbeel, Pieter},
  booktitle = nips # " 33",
  year      = {2020}
}

@article{sohl2015deep,
  title   = "Deep Unsupervised Learning using {N}onequilibrium Thermodynamics",
  author  = {Sohl-Dickstein, Jascha and Weiss, Eric and Maheswaranathan, Niru and Ganguli, Surya},
  journal = {ICML},
  year    = 2015,
  note    = {Sch{\"o}lkopf's {\em remark} on {{nested {braces}}} and 50\% off}
}

@misc{broken entry, title = {keys cannot contain spaces}}

@comment{ @article{commented, title={not an entry}} }

@misc{kingma2014adam,
  title = {Adam: A Method for Stochastic Optimization},
  author = {Diederik P. Kingma and Jimmy Ba},
  year = {2014},
  howpublished = {arXiv:1412.6980}
}
"""


def make_template(tmp_path: Path, bib: str | None = OWN_BIB) -> Template:
    (tmp_path / "latex").mkdir(parents=True, exist_ok=True)
    if bib is not None:
        (tmp_path / "latex" / "references.bib").write_text(bib)
    return Template(
        name="toy_diffusion", path=tmp_path, title="Denoising diffusion on 2-D point clouds",
        description="A small DDPM.", datasets=["moons"], seeds=[0, 1],
        metrics=[Metric(name="kl", direction="minimize", primary=True)],
        scale={"smoke": ScaleProfile(timeout_s=60), "full": ScaleProfile(timeout_s=600)},
        knobs=[Knob(name="beta_schedule", type="choice", values=["linear", "cosine"], default="linear",
                    constant="BETA_SCHEDULE")],
        figures=[Figure(file="kl.png", shows="the KL divergence of each setting", metric="kl")],
    )


IDEA = Idea(
    name="cosine_schedule", title="Cosine noise schedules for low-dimensional diffusion",
    hypothesis="A cosine beta schedule lowers the KL divergence of a 2-D denoising diffusion model "
               "compared with the linear schedule.",
    experiment="Sweep beta_schedule over linear and cosine with 3 seeds.",
    interestingness=6, feasibility=9, novelty=5, knobs=["beta_schedule"],
)

PAST = [
    ArchivedIdea(template="toy_diffusion", name="lr_warmup", title="Learning rate warmup for diffusion training",
                 hypothesis="A linear learning rate warmup stabilises early training of the denoiser.",
                 knobs=["lr", "warmup_steps"], score=5.0, decision="Reject"),
    ArchivedIdea(template="toy_diffusion", name="beta_cosine",
                 title="Does a cosine beta schedule help 2-D diffusion?",
                 hypothesis="Replacing the linear beta schedule with a cosine schedule reduces KL on 2-D data.",
                 knobs=["beta_schedule"], score=6.5, decision="Accept"),
    ArchivedIdea(template="grokking", name="wd_grokking", title="Weight decay and the timing of grokking",
                 hypothesis="Stronger weight decay makes modular arithmetic generalise earlier.",
                 knobs=["weight_decay"]),
]


def online(fake: FakeScholar, **overrides: object) -> LiteratureSettings:
    values: dict = dict(offline=False, s2_url=fake.url, openalex_url=fake.url, per_call_timeout_s=2.0,
                        stage_budget_s=20.0, backoff_s=0.05, max_retry_after_s=1.5, max_retries=2)
    values.update(overrides)
    return LiteratureSettings(**values)


@pytest.fixture
def fake():
    with FakeScholar() as f:
        yield f


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("S2_API_KEY", "SEMANTIC_SCHOLAR_API_KEY", "OPENALEX_EMAIL", "AI_SCIENTIST_S2_URL",
                "AI_SCIENTIST_OPENALEX_URL"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------- search


def test_semantic_scholar_results_are_parsed(fake: FakeScholar) -> None:
    out = search("denoising diffusion probabilistic models", limit=3, settings=online(fake))

    assert out.ok and out.source == "semantic_scholar" and out.errors == {}
    (req,) = fake.requests
    assert req.api == "s2" and req.params["fields"] == S2_FIELDS and req.params["limit"] == "3"
    assert "x-api-key" not in req.headers
    titles = [h.title for h in out.hits]
    assert titles[0] == "Denoising Diffusion Probabilistic Models" and len(titles) == 3
    first = out.hits[0]
    assert first.authors == ["Jonathan Ho", "Ajay Jain", "Pieter Abbeel"]
    assert (first.year, first.venue, first.source) == (2020, "NeurIPS", "semantic_scholar")
    assert "latent variable models" in first.abstract
    assert hit_key(first) == "Ho2020DenoisingDD"  # the API's own BibTeX is kept
    assert [h.score for h in out.hits] == sorted((h.score for h in out.hits), reverse=True)
    # Entries without BibTeX, or with S2's invalid `@['JournalArticle']` type, get a synthesized one.
    by_title = {h.title: h for h in out.hits}
    improved = by_title["Improved Denoising Diffusion Probabilistic Models"]
    assert hit_key(improved) == "nichol2021improved"
    (entry,) = bibtex.parse(improved.bibtex)
    assert entry.type == "article" and entry.text("journal") == "ICML" and entry.year == 2021


def test_openalex_results_are_parsed(fake: FakeScholar, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENALEX_EMAIL", "lab@example.org")
    out = search("grokking generalization", limit=2, settings=online(fake, sources=["openalex"]))

    assert out.source == "openalex"
    (req,) = fake.requests
    assert req.api == "openalex" and req.params["per-page"] == "2" and req.params["mailto"] == "lab@example.org"
    top = out.hits[0]
    assert top.title.startswith("Grokking") and top.authors == ["Alethea Power", "Yuri Burda"]
    paper = next(p for p in PAPERS if p["title"] == top.title)
    assert top.abstract == paper["abstract"]  # rebuilt from abstract_inverted_index
    (entry,) = bibtex.parse(top.bibtex)
    assert entry.type == "misc" and entry.key == "power2022grokking"  # no venue: @misc
    ddpm = next(h for h in out.hits if h.title == "Denoising Diffusion Probabilistic Models")
    assert "doi = {10.48550/arXiv.2006.11239}" in ddpm.bibtex


def test_uninvert_abstract_orders_words_and_tolerates_junk() -> None:
    assert uninvert_abstract({"world": [1], "hello": [0, 2]}) == "hello world hello"
    assert uninvert_abstract({"a": "x", "b": [0]}) == "b"
    assert uninvert_abstract(None) == ""


@pytest.mark.timeout(30)
def test_rate_limit_backs_off_then_succeeds(fake: FakeScholar) -> None:
    fake.script("s2", rate_limited(retry_after="1"), rate_limited(retry_after="0"))
    out = search("diffusion", settings=online(fake))

    assert out.source == "semantic_scholar" and out.hits
    assert len(fake.seen("s2")) == 3 and fake.seen("openalex") == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("retry_after", ["3600", "http-date"])
def test_long_retry_after_is_capped(fake: FakeScholar, retry_after: str) -> None:
    if retry_after == "http-date":
        retry_after = email.utils.formatdate(time.time() + 3600, usegmt=True)
    fake.script("s2", rate_limited(retry_after=retry_after))
    out = search("diffusion", settings=online(fake, max_retry_after_s=0.2))

    assert out.source == "semantic_scholar"  # waited the capped 0.2 s, not an hour
    assert len(fake.seen("s2")) == 2


def test_rate_limit_past_the_retries_falls_back(fake: FakeScholar) -> None:
    fake.default["s2"] = rate_limited(retry_after="0")
    out = search("diffusion", settings=online(fake, max_retries=2))

    assert out.source == "openalex" and out.hits
    assert out.errors["semantic_scholar"] == "HTTP 429 after 3 tries"
    assert len(fake.seen("s2")) == 3


def test_server_error_falls_back_to_openalex(fake: FakeScholar) -> None:
    fake.default["s2"] = error(500)
    out = search("noise schedule", settings=online(fake, max_retries=1))

    assert out.source == "openalex" and out.hits[0].source == "openalex"
    assert "HTTP 500 after 2 tries" in out.errors["semantic_scholar"]
    assert len(fake.seen("s2")) == 2


def test_malformed_json_falls_back_without_retry(fake: FakeScholar) -> None:
    fake.script("s2", malformed())
    out = search("noise schedule", settings=online(fake))

    assert out.source == "openalex"
    assert out.errors["semantic_scholar"] == "malformed JSON in the answer"
    assert len(fake.seen("s2")) == 1


def test_unreachable_source_falls_back(fake: FakeScholar) -> None:
    with FakeScholar() as gone:
        dead_url = gone.url
    out = search("diffusion", settings=online(fake, s2_url=dead_url))  # connection refused

    assert out.source == "openalex"
    assert out.errors["semantic_scholar"].startswith("request failed")


@pytest.mark.timeout(30)
def test_trickling_server_is_cut_at_the_call_cap(fake: FakeScholar) -> None:
    # One byte every 0.1 s: no single read times out, so only a whole-call cap ends it.
    fake.script("s2", trickle(25))
    out = search("diffusion", settings=online(fake, per_call_timeout_s=1.0))

    assert out.source == "openalex"
    assert "no complete answer within" in out.errors["semantic_scholar"]


# ---------------------------------------------------------------- the stage


def test_online_evidence_combines_literature_archive_and_bib(fake: FakeScholar, tmp_path: Path) -> None:
    ev = gather_evidence(IDEA, make_template(tmp_path), PAST, online(fake))

    assert ev.sources_used == ["semantic_scholar", "archive", "bib"]
    assert 1 <= len(ev.queries) <= 3 and len(fake.seen("s2")) == len(ev.queries)
    assert fake.seen("openalex") == []
    sources = [h.source for h in ev.hits]
    assert sources == sorted(sources, key=["semantic_scholar", "archive", "bib"].index)
    lit = [h for h in ev.hits if h.source == "semantic_scholar"]
    # The template already cites DDPM: the search's copy is dropped, not duplicated.
    assert "Denoising Diffusion Probabilistic Models" not in [h.title for h in lit]
    assert len({h.title for h in lit}) == len(lit)  # three queries, no paper twice
    keys = [hit_key(h) for h in ev.hits if h.bibtex]
    assert len(keys) == len(set(keys)) and all(keys)
    assert all(0.0 <= h.score <= 1.0 for h in ev.hits)
    # Literature is rescored against the idea: the noise-schedule paper beats grokking.
    scores = {h.title: h.score for h in lit}
    assert scores["Common Diffusion Noise Schedules and Sample Steps are Flawed"] > scores.get(
        "Grokking: Generalization Beyond Overfitting on Small Algorithmic Datasets", 0.0)


def test_offline_makes_no_request_and_says_so(fake: FakeScholar, tmp_path: Path) -> None:
    settings = online(fake, offline=True)
    ev = gather_evidence(IDEA, make_template(tmp_path), PAST, settings)

    assert fake.requests == []
    assert ev.notes == [OFFLINE_NOTE] and ev.queries == []
    assert ev.sources_used == ["archive", "bib"]
    assert {h.source for h in ev.hits} == {"archive", "bib"}
    assert LiteratureSettings().offline is True  # offline is the default


def test_both_sources_down_degrade_to_archive_and_bib(fake: FakeScholar, tmp_path: Path) -> None:
    fake.default["s2"] = error(503)
    fake.default["openalex"] = error(500)
    ev = gather_evidence(IDEA, make_template(tmp_path), PAST, online(fake, max_retries=1))

    assert ev.sources_used == ["archive", "bib"]
    assert {h.source for h in ev.hits} == {"archive", "bib"}
    assert any(FALLBACK_TAIL in n for n in ev.notes)
    assert any("semantic_scholar failed (HTTP 503 after 2 tries)" in n for n in ev.notes)
    # A source that failed is not asked again for the next queries.
    assert len(fake.seen("s2")) == 2 and len(fake.seen("openalex")) == 2


def test_missing_bibliography_is_fine(tmp_path: Path) -> None:
    ev = gather_evidence(IDEA, make_template(tmp_path, bib=None), [], LiteratureSettings())

    assert ev.hits == [] and ev.sources_used == ["archive"] and ev.notes == [OFFLINE_NOTE]


@pytest.mark.timeout(60)
def test_stage_budget_bounds_a_stalled_server(fake: FakeScholar, tmp_path: Path) -> None:
    fake.default["s2"] = stall(60)
    fake.default["openalex"] = stall(60)
    budget = 2.0
    start = time.monotonic()
    ev = gather_evidence(IDEA, make_template(tmp_path), PAST,
                         online(fake, per_call_timeout_s=30.0, stage_budget_s=budget))
    elapsed = time.monotonic() - start

    # The requirement is boundedness: the per-call cap of 30 s is cut to the stage budget.
    assert elapsed < 3 * budget
    assert {h.source for h in ev.hits} == {"archive", "bib"}
    assert any(FALLBACK_TAIL in n for n in ev.notes)
    assert len(fake.seen("s2")) == 1


def test_api_key_is_sent_and_never_leaks(
    fake: FakeScholar, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s2-key-7f3c9a1e"
    monkeypatch.setenv("SEMANTIC_SCHOLAR_API_KEY", secret)
    caplog.set_level(logging.DEBUG)
    settings = online(fake)
    ev = gather_evidence(IDEA, make_template(tmp_path), PAST, settings)

    assert fake.seen("s2") and all(r.headers.get("x-api-key") == secret for r in fake.seen("s2"))
    assert secret not in ev.model_dump_json() and secret not in settings.model_dump_json()

    fake.default["s2"] = error(403)  # a refused key: the note says so without repeating it
    ev = gather_evidence(IDEA, make_template(tmp_path), PAST, settings)
    assert any("API key was refused" in n for n in ev.notes)
    assert all("x-api-key" not in r.headers for r in fake.seen("openalex"))
    assert secret not in ev.model_dump_json() and secret not in caplog.text


def test_s2_api_key_variable_takes_precedence(fake: FakeScholar, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2_API_KEY", "primary")
    monkeypatch.setenv("SEMANTIC_SCHOLAR_API_KEY", "secondary")
    search("diffusion", settings=online(fake))
    assert fake.seen("s2")[0].headers["x-api-key"] == "primary"


def test_base_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_SCIENTIST_S2_URL", "http://127.0.0.1:9/s2")
    monkeypatch.setenv("AI_SCIENTIST_OPENALEX_URL", "http://127.0.0.1:9/oa")
    s = LiteratureSettings()
    assert (s.s2_url, s.openalex_url) == ("http://127.0.0.1:9/s2", "http://127.0.0.1:9/oa")
    assert LiteratureSettings.model_fields["stage_budget_s"].description  # every field documented
    assert all(f.description for f in LiteratureSettings.model_fields.values())


# ---------------------------------------------------------------- archive similarity


def test_archive_similarity_ranks_the_truly_similar_idea_first() -> None:
    hits = similar_ideas(IDEA, PAST, top_k=5)

    assert hits[0].title == "Does a cosine beta schedule help 2-D diffusion?"
    assert hits[0].knobs == ["beta_schedule"] and hits[0].abstract == PAST[1].hypothesis  # knobs typed, not in text
    assert "toy_diffusion/beta_cosine" in hits[0].venue and "Accept" in hits[0].venue
    assert all(h.source == "archive" and 0.0 < h.score <= 1.0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].score > 2 * hits[1].score
    # The grokking idea shares no term with a diffusion-schedule idea.
    assert "Weight decay and the timing of grokking" not in [h.title for h in hits]


def test_the_llm_judge_sees_the_knob_set_of_archive_hits() -> None:
    from agent.brains.llm.summaries import hits_brief

    brief = hits_brief(similar_ideas(IDEA, PAST, top_k=5)).splitlines()
    assert brief[0].startswith("[1] Does a cosine beta schedule help 2-D diffusion?")
    assert brief[0].endswith("[varied: beta_schedule]")


def test_archive_similarity_sees_knobs_and_respects_top_k() -> None:
    same_knob = Idea(name="x", title="Another look", hypothesis="Something else entirely.", experiment="-",
                     interestingness=1, feasibility=1, novelty=1, knobs=["weight_decay"])
    hits = similar_ideas(same_knob, PAST, top_k=1)
    assert [h.title for h in hits] == ["Weight decay and the timing of grokking"]
    assert similar_ideas(IDEA, []) == []


def test_identical_idea_scores_one() -> None:
    twin = ArchivedIdea(template="t", name=IDEA.name, title=IDEA.title, hypothesis=IDEA.hypothesis,
                        knobs=IDEA.knobs)
    (hit,) = similar_ideas(IDEA, [twin])
    assert hit.score == pytest.approx(1.0)


# ---------------------------------------------------------------- bibliography


def test_bib_parsing_of_own_string(tmp_path: Path) -> None:
    path = tmp_path / "references.bib"
    path.write_text(OWN_BIB)

    assert bib_keys(path) == ["ho2020denoising", "sohl2015deep", "kingma2014adam"]
    ho, sohl, adam = bib_entries(path)
    assert ho.title == "Denoising Diffusion Probabilistic Models"
    assert ho.authors == ["Jonathan Ho", "Ajay Jain", "Pieter Abbeel"] and ho.year == 2020
    assert ho.venue == "nips 33"  # @string macros are not expanded, but concatenation is read
    assert ho.bibtex.startswith("@inproceedings{ho2020denoising,") and ho.bibtex.endswith("}")
    assert sohl.title == "Deep Unsupervised Learning using Nonequilibrium Thermodynamics"
    assert sohl.year == 2015 and sohl.authors[0] == "Jascha Sohl-Dickstein"
    (entry,) = bibtex.parse(sohl.bibtex)
    assert entry.text("note") == "Scholkopf's remark on nested braces and 50% off"
    assert adam.venue == "arXiv:1412.6980" and all(h.source == "bib" for h in (ho, sohl, adam))
    assert bib_keys(tmp_path / "missing.bib") == [] and bib_entries(tmp_path / "missing.bib") == []


def test_unterminated_entry_does_not_hide_the_others() -> None:
    text = "@article{good1, title={One}}\n@article{cut, title={never closed\n@article{good2, title={Two}}"
    assert [e.key for e in bibtex.parse(text)] == ["good1", "good2"]


def test_hostile_bibtex_yields_its_good_entries_and_never_raises() -> None:
    text = (
        "@@@ {{{ junk @['JournalArticle']{s2odd, title={odd type}}\n"
        "@misc{, title={no key}}\n@misc{a b, title={space in key}}\n"
        "@misc{twice, title={first}, title={second}}\n"
        "@misc{deep, title={" + "{" * 3000 + "x" + "}" * 3000 + "}}\n"
        '@misc(paren, title = "a" # {b} # c, year = 2020)\n'
        "@article{cut, title={never closed"
    )
    entries = {e.key: e for e in bibtex.parse(text)}
    assert list(entries) == ["twice", "deep", "paren"]
    assert entries["twice"].text("title") == "second"
    assert entries["deep"].text("title") == "x"  # deeper than pylatexenc recurses: braces dropped
    assert entries["paren"].fields["title"] == "abc" and entries["paren"].year == 2020
    assert bibtex.split_authors("{Barnes and Noble} and von Neumann, John") == ["Barnes and Noble", "John von Neumann"]


def test_synthesized_bibtex_round_trips() -> None:
    text = bibtex.synthesize(title="Score {matching} & 100% of SDE_s", authors=["Yang Song", "Stefano Ermon"],
                             year=2019, venue="NeurIPS")
    (e,) = bibtex.parse(text)
    assert e.key == "song2019score" and e.type == "article"
    assert e.text("title") == "Score matching & 100% of SDE_s"
    assert e.authors == ["Yang Song", "Stefano Ermon"] and e.year == 2019
    assert bibtex.make_key(["Jürgen Schmidhuber"], 1992, "On the learning of ...") == "schmidhuber1992learning"
    assert bibtex.make_key([], None, "2-D diffusion") == "anondiffusion"


TEMPLATE_BIBS = sorted(ROOT.glob("templates/*/latex/references.bib"))


@pytest.mark.skipif(not TEMPLATE_BIBS, reason="no template bibliographies yet")
@pytest.mark.parametrize("path", TEMPLATE_BIBS, ids=lambda p: p.parent.parent.name)
def test_template_bibliographies_parse(path: Path) -> None:
    text = path.read_text()
    declared = [t for t in re.findall(r"^\s*@\s*(\w+)", text, flags=re.M)
                if t.lower() not in ("comment", "string", "preamble")]
    keys = bib_keys(path)
    hits = bib_entries(path)

    assert keys and len(keys) == len(set(keys)) == len(hits) == len(declared)
    assert all(h.title and h.bibtex.startswith("@") for h in hits)


def test_same_knob_set_reaches_the_offline_judge_however_ranked(tmp_path: Path) -> None:
    from agent.brains.offline.brain import OfflineBrain

    crowd = [ArchivedIdea(template="toy_diffusion", name=f"cosine_{i}", title=f"Cosine noise schedule study {i}",
                          hypothesis="Cosine schedules for low-dimensional diffusion lower the KL.", knobs=["lr"])
             for i in range(8)]
    repeat = ArchivedIdea(template="toy_diffusion", name="old", title="An unrelated wording",
                          hypothesis="Varying it changes things.", knobs=["beta_schedule"])
    ev = gather_evidence(IDEA, make_template(tmp_path), [*crowd, repeat], LiteratureSettings())

    archive = [h for h in ev.hits if h.source == "archive"]
    assert archive[-1].title == "An unrelated wording" and len(archive) == 6  # top 5 + the knob twin
    assert OfflineBrain(seed=0).novelty(IDEA, ev.hits).novel is False
    ev = gather_evidence(IDEA, make_template(tmp_path), crowd, LiteratureSettings())
    assert OfflineBrain(seed=0).novelty(IDEA, ev.hits).novel is True
