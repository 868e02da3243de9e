"""The PDF reader against plain `pdftotext`, on the PDF test set (what chose the reader).

Typesets the test set's review-bench papers in each of the three layouts
(agent/review/pdf_layouts.py) with real latexmk, reads each PDF both ways, and compares what
the offline reviewer then sees:

- sections found in order: the longest run of the typeset headings, in order, among the
  headings the reviewer's own heading finder picks out of the text (case and spacing aside);
- leaks: PDFs whose body text holds the running header or footer, the submission notice or
  a footnote;
- core sections the rubric reports missing although the paper has them.

    .venv/bin/python bench/pdf_reading.py [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.brains.offline import reviewer  # noqa: E402
from agent.paper import latex  # noqa: E402
from agent.review import pdf_layouts as layouts  # noqa: E402
from agent.review.bench import default_data_dir  # noqa: E402
from agent.review.paper_text import read_paper  # noqa: E402
from agent.sandbox import runner as sandbox  # noqa: E402
from agent.sandbox.limits import Limits  # noqa: E402

LEAKS = (layouts.RUNNING_HEADER, layouts.RUNNING_FOOTER, layouts.NOTICE, layouts.FOOTNOTE, layouts.THANKS)


def norm(heading: str) -> str:
    return re.sub(r"\s+", " ", heading.strip()).lower()


def in_order(expected: list[tuple[str, str]], found: list[str]) -> int:
    """How many typeset headings (number, title) the found ones hold in order (the longest
    common subsequence); a found heading matches with or without its number."""
    prev = [0] * (len(found) + 1)
    for number, title in expected:
        forms = {norm(title), norm(f"{number} {title}")}
        cur = [0]
        for j, f in enumerate(found):
            cur.append(prev[j] + 1 if norm(f) in forms else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def pdftotext(pdf: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-pdftotext-") as tmp:
        shutil.copy(pdf, Path(tmp) / "paper.pdf")
        res = sandbox.run(
            ["pdftotext", "-enc", "UTF-8", "paper.pdf", "paper.txt"], Path(tmp), Limits(timeout_s=60)
        )
        assert res.ok, res.error_tail()
        return (Path(tmp) / "paper.txt").read_text(errors="replace")


def measure(data: Path) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-pdf-") as tmp:
        for pid in layouts.TEST_PAPERS:
            text = (data / "papers" / f"{pid}.txt").read_text(errors="replace")
            for layout in layouts.LAYOUTS:
                folder = Path(tmp) / f"{pid}-{layout}"
                folder.mkdir()
                doc = layouts.write(text, layout, folder)
                built = latex.compile_pdf(folder)
                expected = [(h.number, h.title) for h in doc.headings]
                present = {k for h in doc.headings for k in reviewer.heading_kinds(h.title)} | {"abstract"}
                paper = read_paper(built.pdf)
                readers = {
                    "pdftotext": (pdftotext(built.pdf),) * 2,
                    "layout": (paper.markdown(), "\n".join(s.text for s in paper.sections)),
                }
                for name, (seen, body) in readers.items():
                    features = reviewer.extract(seen)
                    rows.append(
                        {
                            "paper": pid,
                            "layout": layout,
                            "reader": name,
                            "sections": len(expected),
                            "in_order": in_order(expected, features.headings),
                            "leaks": [leak for leak in LEAKS if leak[:25] in body],
                            "missing_present": sorted(set(reviewer.missing_sections(features)) & present),
                            "overall": reviewer.review(seen).overall,
                        }
                    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = measure(args.data)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for name in ("pdftotext", "layout"):
        mine = [r for r in rows if r["reader"] == name]
        found, total = sum(r["in_order"] for r in mine), sum(r["sections"] for r in mine)
        leaky = sum(bool(r["leaks"]) for r in mine)
        wrong = sum(bool(r["missing_present"]) for r in mine)
        print(
            f"{name:10s} sections in order {found}/{total} ({found / total:.0%}); PDFs with leaks {leaky}/{len(mine)}; "
            f"PDFs with a present section reported missing {wrong}/{len(mine)}"
        )
    for r in rows:
        print(
            f"  {r['reader']:10s} {r['paper']:12s} {r['layout']:8s} {r['in_order']:3d}/{r['sections']:<3d} "
            f"overall {r['overall']:2d} missing {','.join(r['missing_present']) or '-':20s} "
            f"leaks {len(r['leaks'])}"
        )


if __name__ == "__main__":
    main()
