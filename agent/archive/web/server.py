"""Serve the archive folder over HTTP on 127.0.0.1 only, read-only but for one write endpoint.

The archive holds LLM-written text and the code of every run, so it is never exposed beyond
this machine: the host is fixed, not an option. To share it, copy the folder.

    GET  /...                 the archive's files; our own pages get the server's token
    GET  /compare.html?a&b    two papers side by side, rendered on request
    POST /api/rate            {paper_id, score, note, mark}: the researcher's verdict

Every request must name the server by its loopback name and port in `Host` (against DNS
rebinding). The write endpoint also requires an `Origin` of this server, a per-server random
token that only the pages it serves carry, a JSON body of at most MAX_BODY bytes that
validates, and a paper that exists; anything else gets 403 and writes nothing.
"""

from __future__ import annotations

import errno
import functools
import hmac
import json
import os
import re
import secrets
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent import safe_json
from agent.archive.store import Archive
from agent.errors import UserError

HOST = "127.0.0.1"
MAX_BODY = 8192
TOKEN_HEADER = "X-AI-Scientist-Token"
# The pages we render and their assets are the only active content; a paper folder's files are
# served as what they are (PDF, image) or as plain text, never as HTML, SVG or script.
PAGES = frozenset({"index.html", "last-night.html"})
INERT = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
         ".gif": "image/gif", ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
TEXT = frozenset({".json", ".md", ".diff", ".tex", ".bib", ".log", ".txt", ".jsonl"})
ACTIVE = frozenset({".html", ".htm", ".svg", ".xml", ".xhtml", ".js", ".mjs", ".css"})  # shown, never run
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
       "frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'; connect-src 'self'")
_TOKEN_TAG = re.compile(rb'<meta name="ai-scientist-token" content="">')


class RateRequest(BaseModel):
    """The write endpoint's body: nothing more is accepted."""

    model_config = ConfigDict(extra="forbid")

    paper_id: str = Field(min_length=1, max_length=200)
    score: int = Field(ge=1, le=10)
    note: str = Field(default="", max_length=2000)
    mark: Literal["follow-up", "discard"] | None = None


class ArchiveHandler(SimpleHTTPRequestHandler):
    """Static files from the archive to this machine's browser only: a request whose Host is not
    127.0.0.1 or localhost on our port is refused, hidden files (locks, temporary folders) are
    not served, and every answer carries a strict CSP and nosniff."""

    quiet = False
    port = 0
    token = ""
    archive: Archive | None = None

    # ------------------------------------------------------------ reading

    def do_GET(self) -> None:
        if not self._allowed():
            return
        if urlsplit(self.path).path == "/compare.html":
            self._compare()
            return
        path = Path(self.translate_path(self.path))
        if path.is_dir() and urlsplit(self.path).path.endswith("/"):
            path = path / "index.html"
        if self._ours(path) and path.is_file():
            self._page(path)
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        if self._allowed():
            super().do_HEAD()

    def _allowed(self) -> bool:
        if self.headers.get("Host", "") not in self._origins(""):
            self.send_error(403, "Forbidden: this server answers only to 127.0.0.1 and localhost")
            return False
        path = urlsplit(self.path).path
        if any(part.startswith(".") for part in path.split("/") if part):
            self.send_error(404, "Not found")
            return False
        return True

    def _origins(self, scheme: str) -> tuple[str, str]:
        return f"{scheme}127.0.0.1:{self.port}", f"{scheme}localhost:{self.port}"

    def _ours(self, path: Path) -> bool:
        """One of the pages we render: the index pages and each paper's page."""
        rel = path.relative_to(self.directory) if path.is_relative_to(self.directory) else path
        return (len(rel.parts) == 1 and path.name in PAGES) or (len(rel.parts) == 2 and path.name == "index.html")

    def _page(self, path: Path) -> None:
        """Our page, with this server's token in it, so that only pages it serves can write."""
        body = _TOKEN_TAG.sub(f'<meta name="ai-scientist-token" content="{self.token}">'.encode(), path.read_bytes())
        self._send(200, "text/html; charset=utf-8", body)

    def _compare(self) -> None:
        from agent.archive.compare import compare
        from agent.archive.web.render import render_compare

        query = parse_qs(urlsplit(self.path).query)
        a, b = query.get("a", [""])[0], query.get("b", [""])[0]
        try:
            page = render_compare(compare(self._archive(), a, b))
        except UserError as e:
            page = render_compare(None, str(e))
        body = _TOKEN_TAG.sub(f'<meta name="ai-scientist-token" content="{self.token}">'.encode(), page.encode())
        self._send(200, "text/html; charset=utf-8", body)

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        p = Path(path)
        suffix = p.suffix.lower()
        if self._ours(p):
            return "text/html; charset=utf-8"
        rel = p.relative_to(self.directory) if p.is_relative_to(self.directory) else p
        if suffix in (".css", ".js") and rel.parts[:1] == ("assets",):
            return INERT[suffix]
        if suffix in INERT and suffix not in (".css", ".js"):
            return INERT[suffix]
        return "text/plain; charset=utf-8" if suffix in TEXT | ACTIVE else "application/octet-stream"

    # ------------------------------------------------------------ the one write

    def do_POST(self) -> None:
        if not self._allowed():
            return
        why = self._refusal()
        if why:
            self._json(403, {"ok": False, "error": why})
            return
        try:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            req = RateRequest.model_validate(safe_json.loads(body, max_bytes=MAX_BODY, max_depth=4, what="body"))
            verdict = self._archive().rate(req.paper_id, req.score, req.note, req.mark)
        except (ValueError, ValidationError, UserError) as e:
            self._json(403, {"ok": False, "error": str(e).splitlines()[0][:300]})
            return
        self._json(200, {"ok": True, "verdict": verdict.model_dump()})

    def _refusal(self) -> str:
        """Why this POST may not write, or "" if it may (checked before its body is read)."""
        if urlsplit(self.path).path != "/api/rate":
            return "the only writable endpoint is /api/rate"
        if self.headers.get("Origin", "") not in self._origins("http://"):
            return "cross-origin requests may not write"
        if not hmac.compare_digest(self.headers.get(TOKEN_HEADER, "").encode(), self.token.encode()):
            return "missing or wrong token: rate from a page this server served"
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return "the body must be JSON"
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or not 0 < int(length) <= MAX_BODY:
            return f"the body must be between 1 and {MAX_BODY} bytes"
        return ""

    def _archive(self) -> Archive:
        return self.archive or Archive(Path(self.directory))

    # ------------------------------------------------------------ answers

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, "application/json", json.dumps(payload).encode())

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        if not self.quiet:
            super().log_message(format, *args)


def make_server(root: Path, port: int = 8000, *, quiet: bool = False) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:`port` (0 picks a free port) serving `root`, with a fresh token."""
    root = Path(root).resolve()
    handler = type("Handler", (ArchiveHandler,), {"quiet": quiet, "token": secrets.token_urlsafe(24),
                                                  "archive": Archive(root)})
    try:
        server = ThreadingHTTPServer((HOST, port), functools.partial(handler, directory=str(root)))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {HOST} is already in use; pick another with --port") from e
        raise
    handler.port = server.server_address[1]  # known only once bound (port 0 picks one)
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


def serve_in_thread(root: Path, port: int = 0) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start a quiet server in a daemon thread (for tests and embedding); call .shutdown() to stop."""
    server = make_server(root, port, quiet=True)
    thread = threading.Thread(target=server.serve_forever, name="archive-server", daemon=True)
    thread.start()
    return server, thread
