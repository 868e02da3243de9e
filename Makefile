# Quick start: `make run` (a research run on the offline brain) and `make test`.
# Both set up what is missing first: Debian packages, then .venv with torch (CPU build) and the package.
SHELL := /bin/bash
PY := .venv/bin/python
APT_PACKAGES := texlive-latex-base texlive-latex-recommended texlive-fonts-recommended \
	texlive-bibtex-extra latexmk chktex bubblewrap poppler-utils chromium chromium-driver
TORCH := torch==2.13.0

.PHONY: setup apt venv run test check lint bench clean

setup: apt venv

apt:
	@bash scripts/apt-setup.sh $(APT_PACKAGES)

venv: .venv/.installed

.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The tree search with 6 runs per idea (the default, 8, is for nights), both ideas at once: on a
# fresh 2-core machine one idea after the other took 4.0 min for the run alone (bench/pipeline.py
# measures --parallel 2 at 1.7x), so this keeps 2 reviewed PDFs well within 5 minutes of setup.
run: setup
	.venv/bin/ai-scientist run --template 2d_diffusion --num-ideas 2 --scale smoke --search-budget 6 --parallel 2

test: setup
	.venv/bin/ruff check agent tests bench
	$(PY) -m pytest -q

# The fast tier while working: lint and every test not marked slow, on 2 workers (the tests wait
# on subprocesses as much as they compute). CI still runs `make test`, one test at a time.
check: setup
	.venv/bin/ruff check agent tests bench
	$(PY) -m pytest -q -m "not slow" -n 2

lint: venv
	.venv/bin/ruff check agent tests bench

bench: setup
	$(PY) bench/all.py

clean:
	rm -rf experiments/* archive/* .pytest_cache
