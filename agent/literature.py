"""Evidence for the novelty stage: the literature, the archive's past ideas, and the
template's own bibliography.

    gather_evidence(idea, template, past, settings) -> NoveltyEvidence
    ├── search(query)          Semantic Scholar, then OpenAlex if it fails (online only)
    ├── similar_ideas(idea)    TF-IDF cosine (scikit-learn) against archived ideas (always)
    └── bib_entries(path)      the template's latex/references.bib (always)

The search never hangs the run, which is the most common complaint about AI-Scientist v1:
every HTTP call has a time cap, all calls of one stage share a `Deadline`, retries are
counted, a 429's Retry-After is honoured but capped, and a source that fails once is not
asked again in the same stage. When both sources fail, the stage carries on with the
archive and the bibliography and says so in `notes`; it never raises.

API keys are read from the environment at call time (`S2_API_KEY` or
`SEMANTIC_SCHOLAR_API_KEY`; `OPENALEX_EMAIL` for OpenAlex's polite pool). They are never
stored in settings, hits, notes or logs.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from agent.models import ArchivedIdea, Idea, LiteratureHit
from agent.paper import bibtex
from agent.template.contract import Template

log = logging.getLogger(__name__)

Source = Literal["semantic_scholar", "openalex"]
S2_DEFAULT_URL = "https://api.semanticscholar.org"
OPENALEX_DEFAULT_URL = "https://api.openalex.org"
S2_FIELDS = "title,abstract,year,authors,venue,citationCount,citationStyles"
FALLBACK_TAIL = "novelty judged against the archive and the template bibliography"
OFFLINE_NOTE = f"offline: literature search skipped; {FALLBACK_TAIL}"
USER_AGENT = "ai-scientist/0.1 (novelty check; https://github.com/)"


class LiteratureSettings(BaseModel):
    """How the novelty stage searches. API keys are not fields: they are read from the
    environment at call time, so they never appear in a dump of these settings."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    offline: bool = True
    """No network at all: judge novelty against the archive and the template bibliography."""
    s2_url: str = Field(default_factory=lambda: os.environ.get("AI_SCIENTIST_S2_URL", S2_DEFAULT_URL))
    """Semantic Scholar base URL (env `AI_SCIENTIST_S2_URL`); tests point it at a loopback fake."""
    openalex_url: str = Field(
        default_factory=lambda: os.environ.get("AI_SCIENTIST_OPENALEX_URL", OPENALEX_DEFAULT_URL)
    )
    """OpenAlex base URL (env `AI_SCIENTIST_OPENALEX_URL`)."""
    sources: list[Source] = Field(default_factory=lambda: ["semantic_scholar", "openalex"], min_length=1)
    """Sources in the order tried; the next one answers when the previous fails."""
    per_call_timeout_s: float = Field(default=10.0, gt=0)
    """Cap on one HTTP call, from connect to the last byte."""
    stage_budget_s: float = Field(default=60.0, gt=0)
    """Cap on all calls (and waits) of one idea's novelty stage together."""
    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries of one source for one query after a 429 or a 5xx, before falling back."""
    max_retry_after_s: float = Field(default=5.0, ge=0)
    """Longest single wait before a retry; a longer Retry-After from the server is cut to this."""
    backoff_s: float = Field(default=1.0, ge=0)
    """First wait when the server sends no Retry-After; doubled on each retry."""
    max_queries: int = Field(default=3, ge=1, le=5)
    """Queries built from one idea (title, hypothesis keywords, knobs with the template's topic)."""
    results_per_query: int = Field(default=8, ge=1, le=100)
    """Papers asked for per query."""
    max_response_bytes: int = Field(default=5_000_000, gt=0)
    """A larger answer is refused rather than held in memory."""


def _s2_key() -> str | None:
    return os.environ.get("S2_API_KEY") or os.environ.get("SEMANTIC_SCHOLAR_API_KEY") or None


def _openalex_email() -> str | None:
    return os.environ.get("OPENALEX_EMAIL") or None


class Deadline:
    """A time budget on the monotonic clock, shared by every call of one stage."""

    def __init__(self, budget_s: float):
        self.budget_s = budget_s
        self._end = time.monotonic() + budget_s

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def cap(self, seconds: float) -> float:
        """`seconds`, shortened to what is left of the budget."""
        return min(seconds, self.remaining())


class SourceFailed(Exception):
    """One source gave up on one query. `reason` is safe to show: it never holds a key."""

    def __init__(self, source: str, reason: str):
        self.source, self.reason = source, reason
        super().__init__(f"{source}: {reason}")


class SearchOutcome(BaseModel):
    """What one query returned, which source answered, and why the others did not."""

    query: str
    hits: list[LiteratureHit] = Field(default_factory=list)
    source: Source | None = None
    """The source that answered; None when every source failed."""
    errors: dict[str, str] = Field(default_factory=dict)
    """source -> why it failed, for the sources tried before (or instead of) `source`."""

    @property
    def ok(self) -> bool:
        return self.source is not None


class NoveltyEvidence(BaseModel):
    """Everything the novelty judge sees for one idea."""

    hits: list[LiteratureHit] = Field(default_factory=list)
    """Literature first, then archive, then bibliography hits; each group by score."""
    sources_used: list[str] = Field(default_factory=list)
    """Sources that contributed: semantic_scholar, openalex, archive, bib."""
    notes: list[str] = Field(default_factory=list)
    """Plain sentences on how the evidence was gathered (offline, fallbacks, budget)."""
    queries: list[str] = Field(default_factory=list)
    """Literature queries sent (empty offline)."""


# ---------------------------------------------------------------- HTTP with caps


class _TooSlow(Exception):
    pass


def _client() -> httpx.Client:
    return httpx.Client(headers={"User-Agent": USER_AGENT}, follow_redirects=True)


def _fetch(
    client: httpx.Client, url: str, params: dict[str, Any], headers: dict[str, str], cap_s: float, max_bytes: int
) -> tuple[int, httpx.Headers, bytes]:
    """One GET, read in chunks so that a server trickling bytes cannot outlast `cap_s`
    (httpx's own timeouts are per read, not per call)."""
    end = time.monotonic() + cap_s
    with client.stream("GET", url, params=params, headers=headers, timeout=httpx.Timeout(cap_s)) as r:
        body = bytearray()
        for chunk in r.iter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise ValueError(f"answer larger than {max_bytes} bytes")
            if time.monotonic() > end:
                raise _TooSlow
        return r.status_code, r.headers, bytes(body)


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if any."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _get_json(
    client: httpx.Client, source: str, url: str, params: dict[str, Any], headers: dict[str, str],
    settings: LiteratureSettings, deadline: Deadline,
) -> Any:
    """GET and decode JSON, retrying 429 and 5xx at most `max_retries` times within the
    deadline. Anything else that goes wrong raises `SourceFailed` at once."""
    for attempt in range(settings.max_retries + 1):
        cap = deadline.cap(settings.per_call_timeout_s)
        if cap < 0.1:  # too little left for any answer
            raise SourceFailed(source, "the stage's time budget is spent")
        try:
            status, resp_headers, body = _fetch(client, url, params, headers, cap, settings.max_response_bytes)
        except (httpx.TimeoutException, _TooSlow):
            raise SourceFailed(source, f"no complete answer within {cap:.1f}s") from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as e:
            raise SourceFailed(source, f"request failed ({type(e).__name__})") from None
        if status == 200:
            try:
                return json.loads(body)
            except ValueError:
                raise SourceFailed(source, "malformed JSON in the answer") from None
        if status in (401, 403):
            raise SourceFailed(source, f"HTTP {status}: the API key was refused; fix or unset it")
        if status != 429 and status < 500:
            raise SourceFailed(source, f"HTTP {status}")
        if attempt == settings.max_retries:
            tries = f"{attempt + 1} tries" if attempt else "1 try"
            raise SourceFailed(source, f"HTTP {status} after {tries}")
        wait = _retry_after(resp_headers) if status == 429 else None
        wait = min(settings.backoff_s * 2**attempt if wait is None else wait, settings.max_retry_after_s)
        if wait >= deadline.remaining():
            raise SourceFailed(source, f"HTTP {status}; waiting {wait:.1f}s would pass the stage's time budget")
        log.info("%s: HTTP %s, retrying in %.1fs (try %d of %d)", source, status, wait, attempt + 2,
                 settings.max_retries + 1)
        time.sleep(wait)
    raise AssertionError("unreachable: the loop returns or raises")


# ---------------------------------------------------------------- the two sources


def _ranked(hits: list[LiteratureHit]) -> list[LiteratureHit]:
    """Score by the source's own rank: 1.0 for its first answer, falling linearly."""
    n = len(hits)
    return [h.model_copy(update={"score": round(1.0 - i / n, 4)}) for i, h in enumerate(hits)]


def _parse_each(items: Any, parse: Callable[[dict], LiteratureHit | None], source: str) -> list[LiteratureHit]:
    if not isinstance(items, list):
        raise SourceFailed(source, "unexpected answer shape (no list of papers)")
    hits = []
    for item in items:
        try:
            hit = parse(item) if isinstance(item, dict) else None
        except (TypeError, ValueError, KeyError, AttributeError):
            hit = None  # one odd record should not cost the whole answer
        if hit is not None:
            hits.append(hit)
    return _ranked(hits)


def _valid_bibtex(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    entries = bibtex.parse(text)
    return entries[0].raw if len(entries) == 1 else None


def _s2_paper(p: dict) -> LiteratureHit | None:
    title = (p.get("title") or "").strip()
    if not title:
        return None
    authors = [a["name"] for a in p.get("authors") or [] if isinstance(a, dict) and a.get("name")]
    year = p["year"] if isinstance(p.get("year"), int) else None
    venue = p.get("venue") or ""
    styles = p.get("citationStyles") or {}
    bib = _valid_bibtex(styles.get("bibtex")) or bibtex.synthesize(
        title=title, authors=authors, year=year, venue=venue
    )
    return LiteratureHit(
        title=title, abstract=p.get("abstract") or "", year=year, authors=authors, venue=venue,
        source="semantic_scholar", bibtex=bib,
    )


def search_semantic_scholar(
    client: httpx.Client, query: str, limit: int, settings: LiteratureSettings, deadline: Deadline
) -> list[LiteratureHit]:
    key = _s2_key()
    data = _get_json(
        client, "semantic_scholar", settings.s2_url.rstrip("/") + "/graph/v1/paper/search",
        {"query": query, "limit": min(limit, 100), "fields": S2_FIELDS},
        {"x-api-key": key} if key else {}, settings, deadline,
    )
    return _parse_each(data.get("data") if isinstance(data, dict) else None, _s2_paper, "semantic_scholar")


def uninvert_abstract(index: Any) -> str:
    """OpenAlex ships abstracts as {word: [positions]}; put the words back in order."""
    if not isinstance(index, dict):
        return ""
    placed = [(pos, word) for word, positions in index.items() if isinstance(positions, list)
              for pos in positions if isinstance(pos, int)]
    return " ".join(word for _, word in sorted(placed))


def _openalex_work(w: dict) -> LiteratureHit | None:
    title = (w.get("title") or w.get("display_name") or "").strip()
    if not title:
        return None
    authors = [
        a["author"]["display_name"] for a in w.get("authorships") or []
        if isinstance(a, dict) and isinstance(a.get("author"), dict) and a["author"].get("display_name")
    ]
    year = w["publication_year"] if isinstance(w.get("publication_year"), int) else None
    venue = (((w.get("primary_location") or {}).get("source")) or {}).get("display_name") or ""
    doi = (w.get("doi") or "").removeprefix("https://doi.org/")
    return LiteratureHit(
        title=title, abstract=uninvert_abstract(w.get("abstract_inverted_index")), year=year,
        authors=authors, venue=venue, source="openalex",
        bibtex=bibtex.synthesize(title=title, authors=authors, year=year, venue=venue, doi=doi),
    )


def search_openalex(
    client: httpx.Client, query: str, limit: int, settings: LiteratureSettings, deadline: Deadline
) -> list[LiteratureHit]:
    params: dict[str, Any] = {"search": query, "per-page": min(limit, 200)}
    if mail := _openalex_email():
        params["mailto"] = mail
    data = _get_json(client, "openalex", settings.openalex_url.rstrip("/") + "/works", params, {}, settings,
                     deadline)
    return _parse_each(data.get("results") if isinstance(data, dict) else None, _openalex_work, "openalex")


_SEARCHERS: dict[str, Callable[..., list[LiteratureHit]]] = {
    "semantic_scholar": search_semantic_scholar,
    "openalex": search_openalex,
}


def search(
    query: str, *, limit: int = 10, settings: LiteratureSettings, deadline: Deadline | None = None,
    client: httpx.Client | None = None, sources: Iterable[Source] | None = None,
) -> SearchOutcome:
    """Ask each source in turn (default `settings.sources`) until one answers. Never raises
    for network trouble: failures are in `SearchOutcome.errors`."""
    deadline = deadline or Deadline(settings.stage_budget_s)
    own = client is None
    client = client or _client()
    errors: dict[str, str] = {}
    try:
        for source in sources if sources is not None else settings.sources:
            try:
                hits = _SEARCHERS[source](client, query, limit, settings, deadline)
            except SourceFailed as e:
                log.warning("literature search: %s; query %r", e, query)
                errors[source] = e.reason
                continue
            log.info("literature search: %s gave %d papers for %r", source, len(hits), query)
            return SearchOutcome(query=query, hits=hits, source=source, errors=errors)
        return SearchOutcome(query=query, errors=errors)
    finally:
        if own:
            client.close()


# ---------------------------------------------------------------- lexical similarity

_STOP = frozenset(
    """a an the and or of to in on for with by from at as is are was were be been being this that these
    those it its we our us they their can could may might will would should than then there here into over
    under about via using use used between across per each which what when where how why do does not no
    more most less such also both all any new effect effects study whether""".split()
)


def tokens(text: str) -> list[str]:
    """Lower-case content words with a light plural fold ("schedules" -> "schedule")."""
    out = []
    for w in re.findall(r"[a-z0-9]+", text.lower()):
        if len(w) < 2 or w in _STOP:
            continue
        if len(w) > 4 and w.endswith("ies"):
            w = w[:-3] + "y"
        elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return out


def _idea_tokens(title: str, hypothesis: str, knobs: Iterable[str] = ()) -> list[str]:
    toks = tokens(title) + tokens(hypothesis)
    for k in knobs:
        toks += [f"knob:{k}", *tokens(k.replace("_", " "))]  # the exact knob counts beyond its words
    return toks


def similarity(query: list[str], docs: list[list[str]]) -> list[float]:
    """TF-IDF cosine (sublinear tf, smoothed idf, fitted on the docs and the query) of `query`
    against each doc, in [0, 1]: 1 for a twin, 0 for a doc sharing no term.

    scikit-learn's vectorizer, over our own tokens. rank-bm25 was measured and not taken: its
    scores are unbounded (8.2 for the tests' near-repeat idea), a twin scores below zero when
    the archive holds a single idea (BM25Okapi's idf turns negative), and BM25Plus scores ideas
    that share no term above zero, so the thresholds on these scores (> 0 relevant, >= 0.8
    close) would lose their meaning. scikit-learn matches the formula we had to 1e-16.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer  # 0.7 s to import, so only when used

    if not query or not any(docs):
        return [0.0] * len(docs)
    vectors = TfidfVectorizer(analyzer=list, sublinear_tf=True, smooth_idf=True).fit_transform([*docs, query])
    cosines = (vectors[:-1] @ vectors[-1].T).toarray().ravel()  # rows are L2-normalised
    return [min(1.0, float(c)) for c in cosines]


def archive_venue(past: ArchivedIdea) -> str:
    """Where an archive hit came from and how it was judged: `archive tpl/name (overall 6.5, Accept)`."""
    verdict = ", ".join(x for x in (
        f"overall {past.score:g}" if past.score is not None else "", past.decision or "") if x)
    return f"archive {past.template}/{past.name}" + (f" ({verdict})" if verdict else "")


def hit_key(hit: LiteratureHit) -> str | None:
    """The citation key of a hit's BibTeX entry, if it has one."""
    entries = bibtex.parse(hit.bibtex) if hit.bibtex else []
    return entries[0].key if entries else None


def similar_ideas(idea: Idea, past: list[ArchivedIdea], top_k: int = 5) -> list[LiteratureHit]:
    """The `top_k` archived ideas closest to `idea` (title, hypothesis and knobs), best first.
    Ideas sharing no term with it are left out."""
    if not past:
        return []
    scores = similarity(_idea_tokens(idea.title, idea.hypothesis, idea.knobs),
                        [_idea_tokens(p.title, p.hypothesis, p.knobs) for p in past])
    ranked = sorted(zip(scores, range(len(past)), past, strict=True), key=lambda t: (-t[0], t[1]))
    return [
        LiteratureHit(title=p.title, abstract=p.hypothesis, venue=archive_venue(p), source="archive",
                      score=round(s, 4), knobs=p.knobs)
        for s, _, p in ranked[:top_k] if s > 0
    ]


def rescore(idea: Idea, hits: list[LiteratureHit]) -> list[LiteratureHit]:
    """The same hits scored by TF-IDF similarity of title + abstract to the idea, best first."""
    if not hits:
        return []
    scores = similarity(_idea_tokens(idea.title, idea.hypothesis, idea.knobs),
                        [tokens(f"{h.title} {h.abstract}") for h in hits])
    scored = [h.model_copy(update={"score": round(s, 4)}) for h, s in zip(hits, scores, strict=True)]
    return sorted(scored, key=lambda h: -h.score)


# ---------------------------------------------------------------- the template's bibliography


def bib_entries(path: Path) -> list[LiteratureHit]:
    """Every entry of a .bib file as a hit (source "bib", raw entry kept as `bibtex`).
    A missing file gives an empty list."""
    if not path.is_file():
        return []
    return [
        LiteratureHit(
            title=e.text("title"), abstract=e.text("abstract"), year=e.year, authors=e.authors,
            venue=e.text("journal") or e.text("booktitle") or e.text("publisher") or e.text("howpublished"),
            source="bib", bibtex=e.raw,
        )
        for e in bibtex.parse(path.read_text(errors="replace"))
    ]


def bib_keys(path: Path) -> list[str]:
    """Citation keys of a .bib file, in file order (empty if the file is missing)."""
    return [e.key for e in bibtex.parse(path.read_text(errors="replace"))] if path.is_file() else []


# ---------------------------------------------------------------- the stage


def build_queries(idea: Idea, template: Template, max_queries: int = 3) -> list[str]:
    """Up to `max_queries` distinct queries: the title, the hypothesis' key words, and the
    knobs with the template's topic."""
    def words(text: str, n: int) -> str:
        seen: list[str] = []
        for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9\-]*", text):
            if w.lower() not in _STOP and w.lower() not in (s.lower() for s in seen):
                seen.append(w)
        return " ".join(seen[:n])

    knob_words = " ".join(k.replace("_", " ") for k in idea.knobs)
    candidates = [words(idea.title, 12), words(idea.hypothesis, 8), words(f"{knob_words} {template.title}", 8)]
    out: list[str] = []
    for q in candidates:
        if q and q.lower() not in (o.lower() for o in out):
            out.append(q)
    return out[:max_queries]


def _norm_title(title: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", title.lower()))


def _unique_keys(hits: list[LiteratureHit], taken: set[str]) -> list[LiteratureHit]:
    """Give every hit's entry a key not in `taken` (smith2020x, smith2020xb, ...)."""
    out = []
    for h in hits:
        key = hit_key(h)
        if key is None:
            out.append(h)
            continue
        new, i = key, 0
        while new in taken:
            i += 1
            new = f"{key}{chr(ord('a') + i)}" if i < 26 else f"{key}{i}"
        taken.add(new)
        out.append(h if new == key else h.model_copy(update={"bibtex": bibtex.rekey(h.bibtex, new)}))
    return out


def _literature(
    idea: Idea, template: Template, settings: LiteratureSettings, known_titles: set[str]
) -> tuple[list[LiteratureHit], list[str], list[str], list[str]]:
    """Run the queries; return (hits, sources that answered, notes, queries sent)."""
    queries = build_queries(idea, template, settings.max_queries)
    deadline = Deadline(settings.stage_budget_s)
    alive: list[Source] = list(settings.sources)
    failures: dict[str, str] = {}
    answered: list[str] = []
    notes: list[str] = []
    found: dict[str, LiteratureHit] = {}
    sent: list[str] = []
    with _client() as client:
        for i, query in enumerate(queries):
            if deadline.expired:
                notes.append(f"literature: the {settings.stage_budget_s:g}s time budget ran out after "
                             f"{i} of {len(queries)} queries")
                break
            if not alive:
                break
            sent.append(query)
            outcome = search(query, limit=settings.results_per_query, settings=settings, deadline=deadline,
                             client=client, sources=list(alive))
            for source, reason in outcome.errors.items():
                failures[source] = reason
                alive.remove(source)  # a source that failed once is not asked again in this stage
            if outcome.source and outcome.source not in answered:
                answered.append(outcome.source)
            for h in outcome.hits:
                t = _norm_title(h.title)
                if t not in found and t not in known_titles:
                    found[t] = h
    for source, reason in failures.items():
        then = f"; used {', '.join(answered)}" if answered else ""
        notes.append(f"literature: {source} failed ({reason}){then}")
    if not answered:
        notes.append(f"online literature search failed; {FALLBACK_TAIL}")
    return list(found.values()), answered, notes, sent


def _archive_evidence(idea: Idea, past: list[ArchivedIdea], top_k: int = 5) -> list[LiteratureHit]:
    """The `top_k` most similar past ideas, plus any that varied exactly the same knobs,
    however worded: that is the repeat the novelty judges most need to see."""
    ranked = similar_ideas(idea, past, top_k=len(past))
    mine = set(idea.knobs)
    return [h for i, h in enumerate(ranked) if i < top_k or (mine and set(h.knobs) == mine)]


def gather_evidence(
    idea: Idea, template: Template, past: list[ArchivedIdea], settings: LiteratureSettings
) -> NoveltyEvidence:
    """All the evidence for judging one idea's novelty. Offline, or when every source
    fails, the archive and the template bibliography alone, with a note saying so."""
    bib_path = template.path / "latex" / "references.bib"
    bib = rescore(idea, bib_entries(bib_path))
    archive = _archive_evidence(idea, past)
    notes: list[str] = []
    literature: list[LiteratureHit] = []
    answered: list[str] = []
    queries: list[str] = []
    if settings.offline:
        notes.append(OFFLINE_NOTE)
    else:
        known = {_norm_title(h.title) for h in bib}  # the template already cites these
        literature, answered, lit_notes, queries = _literature(idea, template, settings, known)
        notes += lit_notes
        relevant = [h for h in rescore(idea, literature) if h.score > 0]  # no shared term: noise
        literature = _unique_keys(relevant, set(bib_keys(bib_path)))
    sources = [*answered, "archive", *(["bib"] if bib else [])]
    return NoveltyEvidence(hits=[*literature, *archive, *bib], sources_used=sources, notes=notes, queries=queries)


# ---------------------------------------------------------------- the search tool a brain drives


class LiteratureSearch:
    """The literature tool of one idea's stage (the novelty check, the citations of the writeup),
    driven by a brain one query at a time.

    `query` asks the online sources that still answer (Semantic Scholar, else OpenAlex) under
    one `Deadline` for the whole stage, with the caps and fallbacks of `search`, and adds the
    archive's past ideas and the bibliography's entries (the template's, and `known` hits from
    an earlier stage) closest to the query. Offline, or once every source has failed or the
    deadline has passed, only the latter answer, and `notes` says why. Every literature hit it
    returned is kept in `found`, each under one citation key that no other entry has.
    """

    def __init__(self, idea: Idea, template: Template, past: list[ArchivedIdea], settings: LiteratureSettings,
                 known: list[LiteratureHit] | None = None):
        self.idea, self.template, self.past, self.settings = idea, template, past, settings
        self.deadline = Deadline(settings.stage_budget_s)
        self.alive: list[Source] = list(settings.sources)
        self.notes: list[str] = [OFFLINE_NOTE] if settings.offline else []
        self.queries: list[str] = []
        bib_path = template.path / "latex" / "references.bib"
        self._bib = bib_entries(bib_path)
        self._bib_titles = {_norm_title(h.title) for h in self._bib}
        self._taken = set(bib_keys(bib_path))
        self._known = [h for h in known or [] if h.source not in ("archive", "bib")]
        self._taken |= {k for k in (hit_key(h) for h in self._known) if k}
        self.found: dict[str, LiteratureHit] = {_norm_title(h.title): h for h in self._known}

    def query(self, text: str, limit: int | None = None, *, online: bool = True) -> list[LiteratureHit]:
        """Hits for one query: literature first (by the source's rank), then the archive and the
        bibliography (by similarity to the query); `online=False` asks only the latter. Never
        raises for network trouble. `queries` lists what was asked online."""
        text = " ".join(text.split())[:300]
        hits: list[LiteratureHit] = []
        if online:
            self.queries.append(text)
        if online and not self.settings.offline:
            hits = self._online(text, limit or self.settings.results_per_query)
        nearby = self._closest(text, [*self._known, *self._bib], 3) if self._known or self._bib else []
        past = [h for h in similar_ideas(Idea(name="query", title=text, hypothesis=text, experiment="",
                                              interestingness=1, feasibility=1, novelty=1), self.past, 3)]
        seen = {_norm_title(h.title) for h in hits}
        return [*hits, *(h for h in nearby if _norm_title(h.title) not in seen), *past]

    def _online(self, text: str, limit: int) -> list[LiteratureHit]:
        if self.deadline.expired or not self.alive:
            why = "the time budget is spent" if self.deadline.expired else "every source has failed"
            note = f"literature: query {text!r} not sent online: {why}"
            if note not in self.notes:
                self.notes.append(note)
            return []
        with _client() as client:
            outcome = search(text, limit=limit, settings=self.settings, deadline=self.deadline, client=client,
                             sources=list(self.alive))
        for source, reason in outcome.errors.items():
            self.notes.append(f"literature: {source} failed ({reason})")
            if source in self.alive:
                self.alive.remove(source)  # a source that failed once is not asked again in this stage
        out = []
        for h in outcome.hits:
            title = _norm_title(h.title)
            if title in self._bib_titles:
                continue  # the template cites it already: the bibliography hit stands for it
            if title not in self.found:
                self.found[title] = _unique_keys([h], self._taken)[0]
            out.append(self.found[title])
        return out

    def _closest(self, text: str, pool: list[LiteratureHit], k: int) -> list[LiteratureHit]:
        scores = similarity(tokens(text), [tokens(f"{h.title} {h.abstract}") for h in pool])
        ranked = sorted(zip(scores, range(len(pool)), pool, strict=True), key=lambda t: (-t[0], t[1]))
        return [h.model_copy(update={"score": round(s, 4)}) for s, _, h in ranked[:k] if s > 0]

    def gather(self) -> NoveltyEvidence:
        """The fixed-query evidence of `gather_evidence` (for a brain that writes no queries);
        its literature hits are kept in `found` too."""
        evidence = gather_evidence(self.idea, self.template, self.past, self.settings)
        for h in evidence.hits:
            if h.source not in ("archive", "bib"):
                self.found.setdefault(_norm_title(h.title), h)
        self.queries += evidence.queries
        self.notes += [n for n in evidence.notes if n not in self.notes]
        return evidence

    def literature(self) -> list[LiteratureHit]:
        """Every literature hit returned so far (for the writeup to cite from)."""
        return list(self.found.values())
