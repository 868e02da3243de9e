"""Serve the archive folder over HTTP on 127.0.0.1 only.

The archive holds LLM-written text and the code of every run, so it is never exposed
beyond this machine: the host is fixed, not an option. To share it, copy the folder.
"""

from __future__ import annotations

import errno
import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from agent.errors import UserError

HOST = "127.0.0.1"


# The pages we render and their assets are the only active content; a paper folder's files are
# served as what they are (PDF, image) or as plain text, never as HTML, SVG or script.
PAGES = frozenset({"index.html", "last-night.html"})
INERT = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
         ".gif": "image/gif", ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
TEXT = frozenset({".json", ".md", ".diff", ".tex", ".bib", ".log", ".txt", ".jsonl"})
ACTIVE = frozenset({".html", ".htm", ".svg", ".xml", ".xhtml", ".js", ".mjs", ".css"})  # shown, never run
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
       "frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'")


class ArchiveHandler(SimpleHTTPRequestHandler):
    """Static files from the archive, read-only, to this machine's browser only: a request whose
    Host is not 127.0.0.1 or localhost on our port (DNS rebinding) is refused, hidden files
    (locks, temporary folders) are not served, and every answer carries a strict CSP and nosniff."""

    quiet = False
    port = 0

    def do_GET(self) -> None:
        if self._allowed():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._allowed():
            super().do_HEAD()

    def _allowed(self) -> bool:
        if self.headers.get("Host", "") not in (f"127.0.0.1:{self.port}", f"localhost:{self.port}"):
            self.send_error(403, "Forbidden: this server answers only to 127.0.0.1 and localhost")
            return False
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if any(part.startswith(".") for part in path.split("/") if part):
            self.send_error(404, "Not found")
            return False
        return True

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        p = Path(path)
        rel = p.relative_to(self.directory) if p.is_relative_to(self.directory) else p
        suffix = p.suffix.lower()
        page = (len(rel.parts) == 1 and p.name in PAGES) or (len(rel.parts) == 2 and p.name == "index.html")
        if page:
            return "text/html; charset=utf-8"
        if suffix in (".css", ".js") and rel.parts[:1] == ("assets",):
            return INERT[suffix]
        if suffix in INERT and suffix not in (".css", ".js"):
            return INERT[suffix]
        return "text/plain; charset=utf-8" if suffix in TEXT | ACTIVE else "application/octet-stream"

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
    """A server bound to 127.0.0.1:`port` (0 picks a free port) serving `root`."""
    handler = type("Handler", (ArchiveHandler,), {"quiet": quiet})
    try:
        server = ThreadingHTTPServer((HOST, port), functools.partial(handler, directory=str(Path(root).resolve())))
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
