"""A loopback fake of the Semantic Scholar Graph API and OpenAlex, for the literature tests.

A real HTTP server (stdlib `ThreadingHTTPServer` on 127.0.0.1, a free port, in a thread)
answers `GET /graph/v1/paper/search` like Semantic Scholar and `GET /works` like OpenAlex,
from a small built-in corpus ranked by word overlap with the query. Each API follows a
script of behaviours, one per request, then its `default`:

    with FakeScholar() as fake:
        fake.script("s2", rate_limited(retry_after="1"), ok())
        fake.script("openalex", error(500))
        fake.default["s2"] = stall(30)
        ... fake.url ...; fake.requests  # every request seen, with headers

Behaviours: ok(), rate_limited(retry_after), error(status), stall(seconds) (answers only
after `seconds`), trickle(seconds) (sends headers, then a byte at a time for `seconds`),
malformed() (a 200 with broken JSON).
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PAPERS = [
    {
        "title": "Denoising Diffusion Probabilistic Models",
        "abstract": "We present high quality image synthesis results using diffusion probabilistic models, "
                    "a class of latent variable models inspired by nonequilibrium thermodynamics.",
        "year": 2020, "authors": ["Jonathan Ho", "Ajay Jain", "Pieter Abbeel"], "venue": "NeurIPS",
        "doi": "10.48550/arXiv.2006.11239",
        "bibtex": "@inproceedings{Ho2020DenoisingDD,\n  title={Denoising Diffusion Probabilistic Models},\n"
                  "  author={Jonathan Ho and Ajay Jain and P. Abbeel},\n  booktitle={NeurIPS},\n  year={2020}\n}",
    },
    {
        "title": "Improved Denoising Diffusion Probabilistic Models",
        "abstract": "We show that a cosine noise schedule and learned variances improve the log-likelihood "
                    "of denoising diffusion models.",
        "year": 2021, "authors": ["Alex Nichol", "Prafulla Dhariwal"], "venue": "ICML", "doi": "",
        "bibtex": None,  # no citation style: the client must synthesize one
    },
    {
        "title": "Common Diffusion Noise Schedules and Sample Steps are Flawed",
        "abstract": "Noise schedules used by common diffusion models do not enforce zero terminal SNR.",
        "year": 2024, "authors": ["Shanchuan Lin", "Bingchen Liu"], "venue": "WACV", "doi": "",
        "bibtex": "@['JournalArticle']{Lin2023CommonDN, title={Common Diffusion Noise Schedules}}",  # S2's odd type
    },
    {
        "title": "Grokking: Generalization Beyond Overfitting on Small Algorithmic Datasets",
        "abstract": "We study generalization of neural networks on small algorithmically generated datasets.",
        "year": 2022, "authors": ["Alethea Power", "Yuri Burda"], "venue": "", "doi": "",
        "bibtex": None,
    },
]


@dataclass
class Behaviour:
    kind: str  # ok | status | stall | trickle | malformed
    status: int = 200
    seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def ok() -> Behaviour:
    return Behaviour("ok")


def rate_limited(retry_after: str | None = "1") -> Behaviour:
    return Behaviour("status", 429, headers={"Retry-After": retry_after} if retry_after is not None else {})


def error(status: int = 500) -> Behaviour:
    return Behaviour("status", status)


def stall(seconds: float = 30.0) -> Behaviour:
    return Behaviour("stall", seconds=seconds)


def trickle(seconds: float = 30.0) -> Behaviour:
    return Behaviour("trickle", seconds=seconds)


def malformed() -> Behaviour:
    return Behaviour("malformed")


@dataclass
class Request:
    api: str  # s2 | openalex | other
    path: str
    params: dict[str, str]
    headers: dict[str, str]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _ranked(query: str, limit: int) -> list[dict]:
    q = _words(query)
    scored = sorted(PAPERS, key=lambda p: -len(q & _words(p["title"] + " " + p["abstract"])))
    return scored[:limit]


def _s2_body(query: str, limit: int) -> dict:
    data = []
    for i, p in enumerate(_ranked(query, limit)):
        data.append({
            "paperId": f"s2id{i}", "title": p["title"], "abstract": p["abstract"], "year": p["year"],
            "authors": [{"authorId": str(j), "name": a} for j, a in enumerate(p["authors"])],
            "venue": p["venue"], "citationCount": 100 - i,
            "citationStyles": {"bibtex": p["bibtex"]} if p["bibtex"] else None,
        })
    return {"total": len(data), "offset": 0, "data": data}


def _inverted(text: str) -> dict[str, list[int]]:
    index: dict[str, list[int]] = {}
    for pos, word in enumerate(text.split()):
        index.setdefault(word, []).append(pos)
    return index


def _openalex_body(query: str, limit: int) -> dict:
    results = []
    for i, p in enumerate(_ranked(query, limit)):
        results.append({
            "id": f"https://openalex.org/W{i}", "doi": f"https://doi.org/{p['doi']}" if p["doi"] else None,
            "title": p["title"], "display_name": p["title"], "publication_year": p["year"],
            "authorships": [{"author": {"display_name": a}} for a in p["authors"]],
            "primary_location": {"source": {"display_name": p["venue"]} if p["venue"] else None},
            "abstract_inverted_index": _inverted(p["abstract"]), "cited_by_count": 50 - i,
        })
    return {"meta": {"count": len(results)}, "results": results}


class FakeScholar:
    """Both APIs on one loopback server. Use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.default: dict[str, Behaviour] = {"s2": ok(), "openalex": ok()}
        self._scripts: dict[str, deque[Behaviour]] = {"s2": deque(), "openalex": deque()}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a stalled handler must not hold up the test's teardown
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, api: str, *behaviours: Behaviour) -> None:
        with self._lock:
            self._scripts[api].extend(behaviours)

    def seen(self, api: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.api == api]

    def __enter__(self) -> FakeScholar:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self, api: str) -> Behaviour:
        with self._lock:
            return self._scripts[api].popleft() if self._scripts[api] else self.default[api]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (stdlib name)
                parts = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                api = {"/graph/v1/paper/search": "s2", "/works": "openalex"}.get(parts.path, "other")
                with fake._lock:
                    fake.requests.append(Request(api, parts.path, params, {k.lower(): v for k, v in self.headers.items()}))
                if api == "other":
                    return self._send(404, b'{"error": "not found"}')
                b = fake._next(api)
                if b.kind == "stall" and fake._stopping.wait(b.seconds):
                    return
                if b.kind == "status":
                    return self._send(b.status, b'{"message": "scripted failure"}', b.headers)
                if b.kind == "malformed":
                    return self._send(200, b'{"data": [{"title": "Broken', {})
                if b.kind == "trickle":
                    return self._trickle(b.seconds)
                limit = int(params.get("limit") or params.get("per-page") or 10)
                query = params.get("query") or params.get("search") or ""
                body = _s2_body(query, limit) if api == "s2" else _openalex_body(query, limit)
                self._send(200, json.dumps(body).encode())

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _trickle(self, seconds: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"1\r\n{\r\n")
                self.wfile.flush()
                ticks = int(seconds / 0.1)
                for _ in range(ticks):  # a byte every 0.1 s: no single read ever times out
                    if fake._stopping.wait(0.1):
                        return
                    try:
                        self.wfile.write(b"1\r\n \r\n")
                        self.wfile.flush()
                    except OSError:
                        return  # the client gave up, as it should
                self.wfile.write(b"1\r\n}\r\n0\r\n\r\n")

        return Handler
