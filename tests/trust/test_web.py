"""`archive serve` answers only this machine's browser, and never serves a run's output as active
content: a DNS-rebinding Host is refused, every answer carries a strict CSP and nosniff, and an
SVG or HTML file in a paper folder comes back as plain text."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest

from agent.archive.web.server import serve_in_thread


@pytest.fixture
def served(tmp_path: Path):
    (tmp_path / "index.html").write_text("<html><body>ours</body></html>")
    paper = tmp_path / "20260101-000000-t-i-abcd1234"
    paper.mkdir()
    (paper / "index.html").write_text("<html>paper page</html>")
    (paper / "evil.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>')
    (paper / "evil.html").write_text("<script>alert(1)</script>")
    (paper / "figure.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "archive.js").write_text("// ours")
    (paper / "steal.js").write_text("fetch('/')")
    server, _ = serve_in_thread(tmp_path)
    yield server.server_address[1], paper.name
    server.shutdown()


def get(port: int, path: str, host: str | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
    conn.endheaders()
    return conn.getresponse()


def test_only_loopback_host_names_on_our_port_are_answered(served) -> None:
    port, _ = served
    for host in ("evil.example:80", f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}", ""):
        res = get(port, "/index.html", host)
        assert res.status == 403, host
        assert b"ours" not in res.read()
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        res = get(port, "/index.html", host)
        assert res.status == 200 and res.read() == b"<html><body>ours</body></html>"


def test_every_answer_is_locked_down_and_run_output_is_inert(served) -> None:
    port, paper = served
    res = get(port, "/index.html")
    assert res.getheader("Content-Type").startswith("text/html")
    csp = res.getheader("Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert res.getheader("X-Content-Type-Options") == "nosniff"
    assert get(port, f"/{paper}/index.html").getheader("Content-Type").startswith("text/html")
    assert get(port, "/assets/archive.js").getheader("Content-Type").startswith("text/javascript")
    for name in ("evil.svg", "evil.html", "steal.js"):
        res = get(port, f"/{paper}/{name}")
        assert res.status == 200 and res.getheader("Content-Type").startswith("text/plain"), name
        assert res.getheader("X-Content-Type-Options") == "nosniff"
    assert get(port, f"/{paper}/figure.png").getheader("Content-Type") == "image/png"
