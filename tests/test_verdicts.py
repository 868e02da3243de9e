"""The researcher's morning: verdicts in the archive (CLI, index, folder, rebuild), the one write
path of `archive serve` and every way it refuses, `archive compare`, and rating a paper in real
Chromium on its served page."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path

import pytest
from test_archive import make_entry

from agent.archive.store import Archive
from agent.archive.web.server import MAX_BODY, TOKEN_HEADER, serve_in_thread
from agent.errors import UserError
from tests.helpers import cli


@pytest.fixture
def arch(tmp_path: Path) -> Archive:
    a = Archive(tmp_path / "archive")
    for name, overall in (("first_idea", 4), ("second_idea", 6)):
        a.add(make_entry(tmp_path, name, overall=overall))
    return a


def ids(a: Archive) -> dict[str, str]:
    return {r.idea_name: r.id for r in a.list()}


def test_a_verdict_lives_in_the_index_and_the_folder_and_survives_a_rebuild(arch: Archive, tmp_path: Path) -> None:
    first = ids(arch)["first_idea"]
    res = cli("archive", "--archive", str(arch.root), "rate", first[:-4], "9", "--note", "worth a follow-up",
              "--follow-up")
    assert res.returncode == 0, res.stderr
    rows = json.loads(cli("archive", "--archive", str(arch.root), "list", "--json", "--sort", "human").stdout)
    assert [(r["idea_name"], r["human_score"], r["mark"]) for r in rows] == [
        ("first_idea", 9, "follow-up"), ("second_idea", None, None)]
    on_disk = json.loads((arch.root / first / "human_review.json").read_text())
    assert on_disk["latest"]["note"] == "worth a follow-up" and len(on_disk["history"]) == 1
    assert "worth a follow-up" in (arch.root / first / "index.html").read_text()  # the page shows it
    assert 'class="human num">9.0' in (arch.root / "index.html").read_text()
    (arch.root / "index.sqlite").unlink()
    assert cli("archive", "--archive", str(arch.root), "rebuild-index").returncode == 0
    [row] = [r for r in Archive(arch.root).list() if r.id == first]
    assert (row.human_score, row.mark, row.human_note) == (9, "follow-up", "worth a follow-up")


@pytest.mark.parametrize("args, why", [
    (["11"], "less than or equal to 10"), (["0"], "greater than or equal to 1"),
    (["5", "--follow-up", "--discard"], "exclude each other"),
])
def test_bad_verdicts_are_one_line_and_exit_2(arch: Archive, args: list[str], why: str) -> None:
    res = cli("archive", "--archive", str(arch.root), "rate", ids(arch)["first_idea"], *args)
    assert res.returncode == 2 and why in res.stderr and "Traceback" not in res.stderr
    assert not list(arch.root.glob("*/human_review.json"))
    with pytest.raises(UserError, match="no paper"):
        arch.rate("no-such-paper", 5)


# ---------------------------------------------------------------- the write endpoint


@pytest.fixture
def server(arch: Archive):
    srv, _ = serve_in_thread(arch.root)
    yield srv
    srv.shutdown()


def request(port: int, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    headers.setdefault("Host", f"127.0.0.1:{port}")
    for k, v in headers.items():
        conn.putheader(k.replace("_", "-"), v)
    if body:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    if body:
        conn.send(body)
    res = conn.getresponse()
    return res.status, res.read()


def page_token(port: int, paper: str) -> str:
    status, page = request(port, "GET", f"/{paper}/index.html")
    assert status == 200
    token = re.search(rb'<meta name="ai-scientist-token" content="([^"]+)">', page)
    assert token, "a served page carries the token"
    return token.group(1).decode()


def test_only_a_page_of_this_server_can_write_a_verdict(arch: Archive, server) -> None:
    port = server.server_address[1]
    paper = ids(arch)["second_idea"]
    token = page_token(port, paper)
    assert b'content=""' in (arch.root / paper / "index.html").read_bytes(), "the file on disk has no token"
    good = {"Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/json", TOKEN_HEADER: token}
    body = json.dumps({"paper_id": paper, "score": 8, "note": "solid", "mark": "follow-up"}).encode()
    form = b"paper_id=" + paper.encode() + b"&score=10"
    refused = [
        ({**good, "Host": "evil.example"}, body),  # DNS rebinding
        ({**good, "Origin": "http://evil.example"}, body),  # cross-origin
        ({**good, "Origin": "null"}, body),
        ({k: v for k, v in good.items() if k != "Origin"}, body),
        ({k: v for k, v in good.items() if k != TOKEN_HEADER}, body),  # no token
        ({**good, TOKEN_HEADER: token[:-1] + "x"}, body),  # wrong token
        ({"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"}, form),  # a form post
        ({**good, "Content-Type": "text/plain"}, body),
        (good, json.dumps({"paper_id": paper, "score": 8, "note": "x" * (MAX_BODY + 10)}).encode()),  # oversized
        (good, json.dumps({"paper_id": paper, "score": 11}).encode()),
        (good, json.dumps({"paper_id": paper, "score": 5, "admin": True}).encode()),
        (good, json.dumps({"paper_id": "no-such-paper", "score": 5}).encode()),
        (good, b"[" * 5000),
    ]
    for headers, payload in refused:
        status, _ = request(port, "POST", "/api/rate", payload, **headers)
        assert status == 403, (headers, payload[:60])
    assert request(port, "POST", "/index.html", body, **good)[0] == 403
    assert not list(arch.root.glob("*/human_review.json")), "a refused request wrote something"
    assert all(r.human_score is None for r in arch.list())

    status, answer = request(port, "POST", "/api/rate", body, **good)
    assert status == 200, answer
    assert json.loads(answer)["verdict"]["score"] == 8
    [row] = [r for r in arch.list() if r.id == paper]
    assert (row.human_score, row.human_note, row.mark) == (8, "solid", "follow-up")


def test_compare_from_the_cli_and_the_server(arch: Archive, server) -> None:
    a, b = ids(arch)["first_idea"], ids(arch)["second_idea"]
    arch.rate(b, 7, "better than the first")
    res = cli("archive", "--archive", str(arch.root), "compare", a, b, "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert (data["a"]["row"]["overall"], data["b"]["row"]["overall"]) == (4, 6)
    assert data["b"]["row"]["human_score"] == 7 and data["diff_note"]  # the fake bundles cannot be read
    port = server.server_address[1]
    status, page = request(port, "GET", f"/compare.html?a={a}&b={b}")
    assert status == 200 and b"better than the first" in page and b"first_idea" in page
    status, page = request(port, "GET", "/compare.html?a=nope&b=nada")
    assert status == 200 and b"no paper" in page
    assert cli("archive", "--archive", str(arch.root), "compare", a, "nope").returncode == 2


def test_review_bench_measures_the_archive_reviews_against_the_verdicts(tmp_path: Path) -> None:
    """Once 10 papers are rated: the same metrics and bootstrap CIs as the ICLR bench, with the
    researcher's scores as the truth; before that, one line and exit 2."""
    a = Archive(tmp_path / "archive")
    env = {"AI_SCIENTIST_ARCHIVE": str(a.root)}
    overall_and_yours = [(7, 8), (6, 9), (3, 2), (4, 5), (8, 7), (2, 3), (6, 4), (5, 7), (7, 9), (3, 1), (6, 6)]
    for i, (overall, yours) in enumerate(overall_and_yours):
        paper = a.add(make_entry(tmp_path, f"idea_{i}", overall=overall, decision="Accept" if overall >= 6 else "Reject"))
        if i == 9:
            few = cli("review-bench", "--archive", env=env)
            assert few.returncode == 2 and "9 rated paper(s); rate at least 10" in few.stderr
        a.rate(paper, yours)
    res = cli("review-bench", "--archive", "--json", "--resamples", "200", env=env)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["n"] == 11 and report["n_accept"] == 6
    # Reviewer accepts 7, 6, 8, 6, 7, 6 (six); the researcher accepts 8, 9, 7, 7, 9, 6: agreeing on 5 of each.
    assert report["confusion"] == {"tp": 5, "fp": 1, "tn": 4, "fn": 1}
    assert report["metrics"]["accuracy"]["value"] == pytest.approx(9 / 11)
    low, high = report["metrics"]["balanced_accuracy"]["low"], report["metrics"]["balanced_accuracy"]["high"]
    assert low <= report["metrics"]["balanced_accuracy"]["value"] <= high
    assert cli("review-bench", "--archive", "--as-pdf", env=env).returncode == 2
