"""The archive browser in a real headless Chromium, driven by Playwright.

`ai-scientist archive serve` runs as a subprocess on a free 127.0.0.1 port; the archive
holds papers compiled by pdflatex with matplotlib figures. The browser sorts, filters,
opens a paper page and checks the PDF, the figures and the review. The same index is also
opened from disk (file://) to check it works without a server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_archive import REVIEW, make_entry, search_view

from agent.archive.store import Archive
from agent.archive.web.render import REVIEW_FIELDS
from agent.archive.web.server import CSP  # what `archive serve` sends; pages need nothing more
from agent.models import Outcome

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian chromium is not installed (apt-get install chromium)"
    ),
]
# (idea, template, overall, decision, hours after t0): score order differs from date order.
PAPERS = [
    ("noise_schedule", "2d_diffusion", 7, "Accept", 0),
    ("weight_decay", "grokking", 3, "Reject", 3),
    ("embedding_dim", "2d_diffusion", 5, "Reject", 4),
]


def compile_pdf(folder: Path, title: str) -> bytes:
    """A real paper.pdf from a tiny LaTeX document."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "paper.tex").write_text(
        "\\documentclass{article}\n\\begin{document}\n"
        f"\\section*{{{title}}}\nThe archive browser test paper.\n\\end{{document}}\n"
    )
    subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "paper.tex"],
        cwd=folder,
        capture_output=True,
        check=True,
        timeout=120,
    )
    return (folder / "paper.pdf").read_bytes()


def draw_figures(folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for name, ys in (("loss.png", [3, 2, 1.5, 1.2]), ("kl.png", [0.5, 0.4, 0.42, 0.3])):
        fig, ax = plt.subplots(figsize=(3, 2), dpi=60)
        ax.plot(ys)
        fig.savefig(folder / name)
        plt.close(fig)
        names.append(name)
    return names


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    tmp = tmp_path_factory.mktemp("browser")
    pdf = compile_pdf(tmp / "latex", "Noise schedules for 2-D diffusion")
    figures = draw_figures(tmp / "latex")
    arch = Archive(tmp / "archive")
    t0 = datetime(2025, 6, 1, 22, 0, tzinfo=UTC)
    for idea, template, overall, decision, hours in PAPERS:
        paper = tmp / f"paper-{idea}"
        paper.mkdir()
        (paper / "paper.pdf").write_bytes(pdf)
        (paper / "paper.tex").write_text((tmp / "latex" / "paper.tex").read_text())
        for name in figures:
            (paper / name).write_bytes((tmp / "latex" / name).read_bytes())
        entry = make_entry(
            tmp,
            idea,
            run_id="night-1",
            template=template,
            overall=overall,
            decision=decision,
            paper_dir=paper,
        )
        entry.search = search_view() if idea == "noise_schedule" else None  # a --search tree paper
        arch.add(entry, created_at=t0 + timedelta(hours=hours))
    arch.record_outcome(Outcome(run_id="night-1", template="2d_diffusion", idea_name="bad_lr", title="A doomed idea", stage="experiment", status="failed", reason="run_1 crashed 3 times: NaN loss"))
    return arch


@pytest.fixture(scope="module")
def served(archive: Archive) -> Iterator[str]:
    """`ai-scientist archive serve --port 0` through the real entry point; yields its URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "archive",
            "--archive",
            str(archive.root),
            "serve",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout=60)
    try:
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line[0] if line else "")
        assert match, f"serve printed no 127.0.0.1 URL: {line!r}"
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGINT)  # serve stops cleanly on Ctrl-C
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


def scores(page) -> list[float]:  # noqa: ANN001 (playwright Page)
    return [float(s) for s in page.locator("#papers tbody tr:visible td.score").all_inner_texts()]


def ideas(page) -> list[str]:  # noqa: ANN001
    return page.locator("#papers tbody tr:visible .sub").all_inner_texts()


def test_index_sorts_filters_and_opens_a_paper(served: str, browser, archive: Archive) -> None:  # noqa: ANN001
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(served)

    assert scores(page) == [7, 5, 3]  # ranked by score as served
    page.click("#sort-date")
    assert ideas(page) == ["embedding_dim", "weight_decay", "noise_schedule"]  # newest first
    page.click("#sort-score")
    assert scores(page) == [7, 5, 3]
    page.click("#sort-score")
    assert scores(page) == [3, 5, 7]
    assert page.locator("#papers th[aria-sort=ascending] #sort-score").count() == 1
    page.click("#sort-score")
    assert scores(page) == [7, 5, 3]

    page.select_option("#f-template", "2d_diffusion")
    assert ideas(page) == ["noise_schedule", "embedding_dim"]
    page.select_option("#f-decision", "Reject")
    assert ideas(page) == ["embedding_dim"]
    page.select_option("#f-template", "")
    page.select_option("#f-decision", "")
    page.fill("#f-from", "2025-06-02")  # noise_schedule is from 06-01, the others from 06-02 (UTC)
    assert ideas(page) == ["embedding_dim", "weight_decay"]
    page.fill("#f-from", "")
    assert page.inner_text("#shown") == "3 of 3 shown"

    page.click("#papers tbody tr:first-child td.title a")
    page.wait_for_load_state("load")
    assert page.inner_text("#paper-title") == "Does noise schedule help?"

    # The PDF: embedded, and served as a real PDF.
    embed = page.locator("iframe#pdf-embed")
    assert embed.get_attribute("src") == "paper.pdf"
    pdf = page.request.get(page.url.rsplit("/", 1)[0] + "/paper.pdf")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF") and b"%%EOF" in pdf.body()[-32:]

    # The figures: every <img> decoded (naturalWidth > 0).
    imgs = page.locator("#figures img")
    assert imgs.count() == 2
    page.wait_for_function("Array.from(document.querySelectorAll('#figures img')).every(i => i.complete)")
    widths = page.eval_on_selector_all("#figures img", "els => els.map(e => e.naturalWidth)")
    assert all(w > 0 for w in widths), widths

    # The review: every field of the meta-review, and each reviewer.
    for field, _label, _top in REVIEW_FIELDS:
        cell = page.locator(f'dl[data-review="meta"] dd[data-field="{field}"]')
        assert cell.count() == 1 and cell.inner_text().strip(), field
    assert page.inner_text('dl[data-review="meta"] dd[data-field="summary"]') == REVIEW["summary"]
    assert page.inner_text('dl[data-review="meta"] dd[data-field="overall"]').startswith("7")
    assert page.locator("details.reviewer").count() == 2
    assert page.inner_text("#brain") == "offline brain (no LLM)"
    assert page.inner_text("#cost-total") == "$0.0125"
    assert page.locator("#diff pre.diff span.add").count() >= 1
    assert "beta_schedule" in page.inner_text("#idea")

    page.click("header nav >> text=Last night")
    page.wait_for_load_state("load")
    stopped = page.locator("#stopped tbody tr")
    assert stopped.count() == 1
    assert page.inner_text('#stopped tr[data-idea="bad_lr"] td.stage') == "experiment"
    assert "NaN loss" in page.inner_text("#stopped")
    assert page.locator("#night-papers tbody tr").count() == 3
    assert errors == []
    page.close()


def test_index_works_from_disk_without_a_server(browser, archive: Archive) -> None:  # noqa: ANN001
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((archive.root / "index.html").resolve().as_uri())
    assert scores(page) == [7, 5, 3]
    page.click("#sort-date")
    assert ideas(page) == ["embedding_dim", "weight_decay", "noise_schedule"]
    # The stylesheet loaded from assets/ (a file:// relative link).
    assert page.eval_on_selector("main", "e => getComputedStyle(e).maxWidth") == "1200px"
    page.click("#papers tbody tr:first-child td.title a")
    page.wait_for_load_state("load")
    assert page.locator("iframe#pdf-embed").count() == 1
    widths = page.eval_on_selector_all("#figures img", "els => els.map(e => e.naturalWidth)")
    assert widths and all(w > 0 for w in widths)
    assert errors == []
    assert os.path.basename(page.url) == "index.html"
    page.close()


def test_every_page_works_under_the_strict_csp(served: str, browser) -> None:  # noqa: ANN001
    """Every response gets the CSP header; Chromium reports each violation on the console."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    def with_csp(route) -> None:  # noqa: ANN001 (playwright Route)
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": CSP})

    page.route(served + "**", with_csp)
    page.goto(served)
    assert page.eval_on_selector("main", "e => getComputedStyle(e).maxWidth") == "1200px"  # style-src 'self'
    page.click("#sort-date")  # script-src 'self': archive.js runs
    assert ideas(page) == ["embedding_dim", "weight_decay", "noise_schedule"]
    page.fill("#f-q", "weight")
    page.press("#f-q", "Enter")  # the filter form never submits: filtering is live
    page.wait_for_timeout(250)  # room for a navigation, were the submit not prevented
    assert ideas(page) == ["weight_decay"] and page.url == served
    page.fill("#f-q", "")

    page.click("#papers tbody tr:first-child td.title a")
    page.wait_for_load_state("load")
    page.wait_for_function("Array.from(document.querySelectorAll('#figures img')).every(i => i.complete)")
    widths = page.eval_on_selector_all("#figures img", "els => els.map(e => e.naturalWidth)")
    assert widths and all(w > 0 for w in widths)  # img-src 'self'
    assert any(f.url.endswith("/paper.pdf") for f in page.frames)  # frame-src 'self' lets the PDF in

    page.click("header nav >> text=Last night")
    page.wait_for_load_state("load")
    assert page.locator("#stopped tbody tr").count() == 1
    assert errors == []
    page.close()


def test_rate_a_paper_on_its_page_and_compare_two(served: str, browser, archive: Archive) -> None:  # noqa: ANN001
    """The morning: rate a paper and mark it follow-up on its served page; the verdict is in
    `archive list --json` and survives `archive rebuild-index`; tick two papers to compare them."""
    from playwright.sync_api import expect

    from tests.helpers import cli

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(served)
    page.click("#papers tbody tr:first-child td.title a")
    page.wait_for_load_state("load")
    assert page.is_visible("#rate-form") and not page.is_visible("#rate-offline")
    page.select_option("#rate-score", "9")
    page.fill("#rate-note", "The schedule result is worth a longer run.")
    page.check("#rate-follow-up")
    page.click("#rate-submit")
    expect(page.locator("#rate-status")).to_have_text("saved", timeout=15000)  # no eval: the page's CSP forbids it
    assert "9/10" in page.inner_text("#verdict-now")

    def rated() -> dict:
        res = cli("archive", "--archive", str(archive.root), "list", "--json")
        assert res.returncode == 0, res.stderr
        return {r["idea_name"]: (r["human_score"], r["mark"], r["human_note"]) for r in json.loads(res.stdout)}

    expected = (9, "follow-up", "The schedule result is worth a longer run.")
    assert rated()["noise_schedule"] == expected
    assert cli("archive", "--archive", str(archive.root), "rebuild-index").returncode == 0
    assert rated()["noise_schedule"] == expected

    page.goto(served)
    assert page.inner_text("#papers tbody tr:first-child td.human").startswith("9.0")
    page.click("#sort-human")
    assert page.locator("#papers tbody tr:visible .sub").all_inner_texts()[0] == "noise_schedule"
    picks = page.locator("input.compare-pick")
    picks.nth(0).check()
    picks.nth(1).check()
    page.click("#compare-link")
    page.wait_for_load_state("load")
    assert page.locator("#compare").count() == 1 and "noise_schedule" in page.inner_text("#compare")
    assert not errors, errors


def test_clicking_a_search_node_shows_its_plan_diff_metric_and_log(served: str, browser, archive: Archive) -> None:  # noqa: ANN001
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    [row] = [r for r in archive.list() if r.idea_name == "noise_schedule"]
    page.goto(f"{served}{row.id}/index.html")
    assert page.locator("#search button.node").count() == 4
    assert page.locator(".node-detail:visible").count() == 1 and page.locator("#node-1").is_visible()
    page.click('#search button.node[data-node="2"]')
    detail = page.locator("#node-2")
    assert detail.is_visible() and not page.locator("#node-1").is_visible()
    assert "Debug" in detail.locator('[data-field="plan"]').inner_text()
    assert "exit code 1" in detail.locator('[data-field="bug"]').inner_text()
    assert "Traceback: boom" in detail.locator('[data-field="log"]').inner_text()
    assert page.get_attribute('#search button.node[data-node="2"]', "aria-pressed") == "true"
    page.click('#search button.node[data-node="1"]')
    one = page.locator("#node-1")
    assert one.locator('[data-field="metric"]').inner_text() == "1.5"
    assert one.locator("pre.diff span.add").inner_text() == '+INIT = "random"'
    assert "step 100 loss" in one.locator('[data-field="log"]').inner_text()
    assert errors == []
    page.close()
