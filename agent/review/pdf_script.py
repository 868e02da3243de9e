"""Runs inside the sandbox, as `python -I -c <this file's text> paper.pdf words.json figures/`:
a user's PDF is hostile, so its parser (pdfplumber over pdfminer.six, rendering with pypdfium2)
never runs in the orchestrator. The `agent` package is not importable there; only the venv is.

It writes, per page, the words with their box, font size and weight (what headings, running
headers and footnotes are told apart by), and renders each figure to a PNG in `figures/`.
The orchestrator (agent/review/paper_text.py) validates the JSON, and agent/review/pdf_layout.py
finds the structure.

    {"pages": [{"width": W, "height": H,
                "words": [[x0, top, x1, bottom, size, bold, text], ...],
                "rules": [[x0, top, x1], ...],
                "figures": [[x0, top, x1, bottom, "p1-1.png"], ...]}]}
"""

import json
import re
import sys

import pdfplumber

MAX_PAGES = 80
MAX_FIGURES = 24
FIGURE_DPI = 110
MIN_FIGURE_PT = 60  # smaller images are logos, bullets or rules
BOLD = re.compile(r"bold|black|heavy|semibold|demi|medi|cmbx|-bd|\.b$", re.IGNORECASE)
MARKS = set("0123456789*\u2020\u2021\u00a7\u00b6\u2217abc")  # footnote marks (digits, symbols, a-c)


def word_row(word):
    """[x0, top, x1, bottom, size, bold, text] of a word, without its raised footnote marks."""
    chars = word["chars"]
    size = max(c["size"] for c in chars)
    base = max(c["bottom"] for c in chars)
    keep = [
        c
        for c in chars
        if not (c["size"] < 0.8 * size and c["bottom"] < base - 0.2 * size and c["text"] in MARKS)
    ]
    if not keep:  # a lone mark: a footnote's own number at its start
        return None
    text = "".join(c["text"] for c in keep)
    bold = sum(len(c["text"]) for c in keep if BOLD.search(c.get("fontname", ""))) * 2 > len(text)
    size = max(c["size"] for c in keep)
    x0, x1 = min(c["x0"] for c in keep), max(c["x1"] for c in keep)
    top, bottom = min(c["top"] for c in keep), max(c["bottom"] for c in keep)
    return [round(x0, 2), round(top, 2), round(x1, 2), round(bottom, 2), round(size, 2), bold, text]


def graphics_boxes(page):
    """Boxes of figures: embedded images, and clusters of vector drawing that hold curves."""
    boxes = [
        [im["x0"], im["top"], im["x1"], im["bottom"]]
        for im in page.images
        if im["x1"] - im["x0"] >= MIN_FIGURE_PT and im["bottom"] - im["top"] >= MIN_FIGURE_PT
    ]
    shapes = [
        [s["x0"], s["top"], s["x1"], s["bottom"], kind == "curve"]
        for kind, items in (("curve", page.curves), ("rect", page.rects), ("line", page.lines))
        for s in items
    ][:20000]
    clusters = []
    for x0, top, x1, bottom, curve in sorted(shapes, key=lambda s: s[1]):
        for c in clusters:
            if x0 <= c[2] + 6 and x1 >= c[0] - 6 and top <= c[3] + 6 and bottom >= c[1] - 6:
                c[0], c[1], c[2], c[3] = min(c[0], x0), min(c[1], top), max(c[2], x1), max(c[3], bottom)
                c[4] = c[4] or curve
                break
        else:
            clusters.append([x0, top, x1, bottom, curve])
    for x0, top, x1, bottom, curve in clusters:
        if curve and x1 - x0 >= MIN_FIGURE_PT and bottom - top >= MIN_FIGURE_PT:
            boxes.append([x0, top, x1, bottom])
    return [[max(0, b[0]), max(0, b[1]), min(page.width, b[2]), min(page.height, b[3])] for b in boxes]


def rules(page):
    """Thin horizontal rules (a footnote rule, table rules): [x0, top, x1]."""
    out = [[r["x0"], r["top"], r["x1"]] for r in page.rects if r["bottom"] - r["top"] <= 1.5]
    out += [[ln["x0"], ln["top"], ln["x1"]] for ln in page.lines if abs(ln["bottom"] - ln["top"]) <= 1.5]
    return [[round(v, 2) for v in r] for r in out if r[2] - r[0] >= 10][:2000]


def main(pdf_path, out_path, figure_dir):
    pages, figures = [], 0
    with pdfplumber.open(pdf_path) as pdf:
        for number, page in enumerate(pdf.pages[:MAX_PAGES], 1):
            words = page.extract_words(
                x_tolerance=1.5, y_tolerance=3, return_chars=True, expand_ligatures=True
            )
            rows = [r for r in map(word_row, words) if r]
            found = []
            for i, box in enumerate(graphics_boxes(page), 1):
                if figures >= MAX_FIGURES or box[2] - box[0] < 1 or box[3] - box[1] < 1:
                    continue
                name = f"p{number}-{i}.png"
                page.crop(box).to_image(resolution=FIGURE_DPI).save(f"{figure_dir}/{name}")
                found.append([round(v, 2) for v in box] + [name])
                figures += 1
            pages.append(
                {
                    "width": float(page.width),
                    "height": float(page.height),
                    "words": rows,
                    "rules": rules(page),
                    "figures": found,
                }
            )
    with open(out_path, "w") as f:
        json.dump({"pages": pages}, f)


main(*sys.argv[1:4])
