"""Serve the archive folder over HTTP on 127.0.0.1 only.

The archive holds LLM-written text and the code of every run, so it is never exposed
beyond this machine: the host is fixed, not an option. To share it, copy the folder.
"""

from __future__ import annotations

import errno
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from agent.errors import UserError

HOST = "127.0.0.1"


class ArchiveHandler(SimpleHTTPRequestHandler):
    """Static files from the archive; hidden files (locks, temporary folders) are not served."""

    quiet = False

    def do_GET(self) -> None:
        if self._hidden():
            self.send_error(404, "Not found")
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        if self._hidden():
            self.send_error(404, "Not found")
            return
        super().do_HEAD()

    def _hidden(self) -> bool:
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        return any(part.startswith(".") for part in path.split("/") if part)

    def log_message(self, format: str, *args: object) -> None:
        if not self.quiet:
            super().log_message(format, *args)


def make_server(root: Path, port: int = 8000, *, quiet: bool = False) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:`port` (0 picks a free port) serving `root`."""
    handler = type("Handler", (ArchiveHandler,), {"quiet": quiet})
    try:
        return ThreadingHTTPServer((HOST, port), functools.partial(handler, directory=str(root)))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {HOST} is already in use; pick another with --port") from e
        raise


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


def serve_in_thread(root: Path, port: int = 0) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start a quiet server in a daemon thread (for tests and embedding); call .shutdown() to stop."""
    server = make_server(root, port, quiet=True)
    thread = threading.Thread(target=server.serve_forever, name="archive-server", daemon=True)
    thread.start()
    return server, thread
