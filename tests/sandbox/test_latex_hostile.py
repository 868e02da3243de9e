"""Hostile LaTeX: a paper written by a language model must not run commands, read files
outside its folder or write outside it. Compilation goes through `agent.latex.compile_pdf`
(latexmk in the sandbox, no shell escape, kpathsea paranoid mode); each test checks a canary.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.paper import latex
from agent.sandbox import runner as sandbox
from agent.sandbox.limits import Limits


@pytest.fixture
def disk_dir() -> Iterator[Path]:
    """A folder on the real disk (/var/tmp), not under /tmp, which the sandbox replaces with
    its own: a write that got out of the paper folder would land here and be seen."""
    base = Path("/var/tmp")
    d = Path(tempfile.mkdtemp(prefix="ai-scientist-latex-test-", dir=base if base.is_dir() else None))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def paper(d: Path, body: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "paper.tex").write_text(
        "\\documentclass{article}\n\\begin{document}\nStart of paper.\n" + body + "\nEnd of paper.\n\\end{document}\n"
    )
    return d


def seen(d: Path) -> str:
    """Everything the paper's build left to read: the log and the PDF's text."""
    text = (d / "paper.log").read_text(errors="replace") if (d / "paper.log").exists() else ""
    if (d / "paper.pdf").exists():
        text += subprocess.run(["pdftotext", str(d / "paper.pdf"), "-"], capture_output=True, text=True).stdout
    return text


def test_write18_and_piped_input_run_nothing(disk_dir):
    d = disk_dir / "paper"
    inside = d / "canary_abs"
    body = "\n".join([
        "\\immediate\\write18{touch canary_rel}",
        f"\\immediate\\write18{{touch {inside}}}",
        "\\write18{touch canary_shipout}",
        "\\input|\"touch canary_pipe\" ",
        f"\\immediate\\write18{{touch {disk_dir / 'canary_outside'}}}",
    ])
    latex.compile_pdf(paper(d, body))
    assert "runsystem(touch canary_rel)...disabled" in seen(d)  # TeX saw the command and refused it
    assert sorted(p.name for p in d.iterdir() if "canary" in p.name) == []
    assert not (disk_dir / "canary_outside").exists()


def test_a_latexmkrc_in_the_paper_folder_is_never_run(disk_dir):
    """latexmk runs the Perl in ./latexmkrc. TeX cannot write that name (it appends .tex,
    and paranoid mode refuses dot files), and even a planted one is ignored (-norc)."""
    d = disk_dir / "paper"
    rc = "$pdflatex = 'pdflatex -shell-escape %O %S'; system('touch canary_rc');\n"
    body = "\n".join([
        "\\newwrite\\rc",
        "\\immediate\\openout\\rc=latexmkrc \\immediate\\write\\rc{x}\\immediate\\closeout\\rc",
        "\\immediate\\openout\\rc=.latexmkrc \\immediate\\write\\rc{x}\\immediate\\closeout\\rc",
    ])
    latex.compile_pdf(paper(d, body))
    assert (d / "latexmkrc.tex").is_file() and not (d / "latexmkrc").exists() and not (d / ".latexmkrc").exists()
    for name in ("latexmkrc", ".latexmkrc"):
        (d / name).write_text(rc)
    result = latex.compile_pdf(paper(d, "\\immediate\\write18{touch canary_escape}"))
    assert result.pdf is not None
    assert not (d / "canary_rc").exists() and not (d / "canary_escape").exists()


HOSTILE_READS = "\n".join([
    "\\newread\\r",
    "\\openin\\r=/etc/os-release",
    "\\ifeof\\r \\typeout{NOTREAD-ABS}NOTREAD-ABS \\else \\read\\r to\\x \\typeout{GOT:\\x}\\fi",
    "\\openin\\r=../secret.txt",
    "\\ifeof\\r NOTREAD-PARENT \\else \\read\\r to\\y \\typeout{GOT:\\y}\\fi",
    "\\IfFileExists{/etc/passwd}{\\input{/etc/passwd}}{NOINPUT-PASSWD}",
    "\\IfFileExists{../secret.txt}{\\input{../secret.txt}}{NOINPUT-PARENT}",
])


def test_absolute_and_parent_paths_cannot_be_read(disk_dir):
    (disk_dir / "secret.txt").write_text("TOPSECRET-CANARY\n")
    d = paper(disk_dir / "paper", HOSTILE_READS)
    result = latex.compile_pdf(d)
    text = seen(d)
    assert result.pdf is not None
    for marker in ("NOTREAD-ABS", "NOTREAD-PARENT", "NOINPUT-PASSWD", "NOINPUT-PARENT", "End of paper."):
        assert marker in text, marker
    assert "GOT:" not in text and "TOPSECRET" not in text
    assert "root:x:0" not in text and "sandbox:x:" not in text


def test_paranoid_mode_is_what_stops_the_reads(disk_dir):
    """Control: the sandbox shows /etc/os-release and a made-up /etc/passwd, so with
    `openin_any=a` the same paper reads them. Paranoid mode, not luck, keeps them out."""
    d = paper(disk_dir / "paper", HOSTILE_READS)
    env = {**latex.TEX_ENV, "openin_any": "a"}
    res = sandbox.run(["pdflatex", "-interaction=nonstopmode", "-no-shell-escape", "paper.tex"], d,
                      Limits(timeout_s=120, memory_mb=2048), env=env)
    assert res.exit_code in (0, 1)
    text = seen(d)
    first = Path("/etc/os-release").read_text().splitlines()[0][:10]
    assert f"GOT:{first}" in text
    assert "root:x:0" in text


@pytest.mark.parametrize("target", ["ABS/escaped.txt", "../escaped.txt", ".hidden.tex"])
def test_writes_outside_the_folder_and_dot_files_are_refused(disk_dir, target):
    d = disk_dir / "paper"
    target = target.replace("ABS", str(disk_dir))
    write = "\\immediate\\openout\\w={} \\immediate\\write\\w{{x}}\\immediate\\closeout\\w"
    body = "\\newwrite\\w\n" + write.format("allowed.tex") + "\n" + write.format(target)
    latex.compile_pdf(paper(d, body))
    assert (d / "allowed.tex").is_file()  # writing inside the folder works
    assert "I can't write on file" in seen(d)
    assert not (disk_dir / "escaped.txt").exists()
    assert not (d / ".hidden.tex").exists()


@pytest.mark.slow  # waits out the LaTeX timeout on purpose
def test_a_paper_that_never_finishes_is_stopped_by_the_timeout(disk_dir):
    d = paper(disk_dir / "paper", "\\loop\\iftrue\\repeat")
    result = latex.compile_pdf(d, timeout_s=5)
    assert not result.ok and result.pdf is None
    assert result.problems[0] == "latexmk was stopped (timeout)"
    leftover = subprocess.run(["pgrep", "-f", str(d)], capture_output=True, text=True).stdout
    assert leftover == ""  # nothing of the run outlives it
