"""The paper's LaTeX: fill the template, compile it in the sandbox, repair it until it builds.

LaTeX written by a language model is untrusted code, so every compilation (and chktex)
runs in the sandbox (through an executor) with the work folder set to the paper folder, latexmk's rc
files ignored (`-norc`, so a written `latexmkrc` cannot run Perl), `-no-shell-escape`, and
kpathsea in paranoid mode (`openin_any=p`, `openout_any=p`): no absolute paths, no `..`,
no dot files. `\\input{/etc/passwd}` fails even where the sandbox shows that file. What a
compilation leaves in the paper folder is then hostile too, so the orchestrator reads and writes
it through agent.sandbox.files only; the logs of latexmk and chktex go to a folder of ours.

The repair loop fixes what it can deterministically first (undefined references and
citations, missing figures, duplicated sections, bare underscores), and only then asks the
brain for SEARCH/REPLACE edits, applied strictly; a refused edit is reported back to it.
"""

from __future__ import annotations

import difflib
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from agent.brains.base import Brain
from agent.edits import EditRefused, apply_edits
from agent.errors import ToolMissing
from agent.models import Citation
from agent.paper import bibtex
from agent.sandbox import files
from agent.sandbox.executors import LocalExecutor
from agent.sandbox.limits import Limits
from agent.template.contract import PLACEHOLDERS, Template

TEX = "paper.tex"
BIB = "references.bib"
GRAPHIC_EXTS = (".pdf", ".png", ".jpg", ".jpeg")
LOG_TAIL_CHARS = 4000

# Paranoid kpathsea: reads and writes only below the work folder, never dot files.
TEX_ENV = {
    "openin_any": "p",
    "openout_any": "p",
    "shell_escape": "f",
    "TEXMFVAR": "/tmp/texmf-var",  # font caches go to the sandbox's private /tmp
    "TEXMFOUTPUT": "",
    "max_print_line": "1000",  # unwrapped log lines, so warnings parse in one piece
    "error_line": "254",
    "half_error_line": "238",
}
LATEXMK = [
    "latexmk", "-norc", "-pdf", "-f", "-interaction=nonstopmode", "-no-shell-escape", TEX,
]
# Without -halt-on-error one pass reports every error, and `-f` still runs bibtex; but after
# an error latexmk skips the reruns, so undefined references are then read from the source
# (see `log_problems`). Errors keep TeX's classic `! ...` / `l.N` form, which brains (and
# the offline brain's parser) know best.
# chktex warnings worth a repair round: unbalanced braces and math mode left open. The
# rest (spacing, dashes, `~`) is style, and intervals like [0, 1) trip the bracket checks.
CHKTEX_SERIOUS = {9, 10, 15, 16, 17}


class CompileResult(BaseModel):
    """One compilation: whether a PDF was built cleanly, and what is still wrong."""

    ok: bool = Field(description="latexmk succeeded and the PDF exists")
    pdf: Path | None = None
    log_tail: str = Field(default="", description="Errors with context, then the end of the log")
    problems: list[str] = Field(default_factory=list, description="Remaining issues, one line each")
    rounds: int = Field(default=0, description="Repair rounds used (repair_loop only)")
    fixes: list[str] = Field(default_factory=list, description="What the repair loop changed")

    @property
    def clean(self) -> bool:
        return self.ok and not self.problems


# ---------------------------------------------------------------- assembling


def fill_template(template_tex: str, parts: dict[str, str]) -> str:
    """Replace `%%TITLE%%`, `%%ABSTRACT%%`, ... by `parts` (keys case-insensitive).

    One pass over the text, so a part that itself contains a placeholder is not expanded
    again. Placeholders without a part become empty; an unknown part name is an error.
    """
    values = {k.upper(): v for k, v in parts.items()}
    unknown = sorted(set(values) - set(PLACEHOLDERS))
    if unknown:
        raise ValueError(f"unknown paper parts {unknown}; known: {[p.lower() for p in PLACEHOLDERS]}")
    pattern = re.compile("%%(" + "|".join(PLACEHOLDERS) + ")%%")
    return pattern.sub(lambda m: values.get(m.group(1), ""), template_tex)


def merge_bib(base: str, extra: list[Citation]) -> str:
    """The template's bibliography plus `extra` entries whose keys it lacks (first wins)."""
    keys = {e.key for e in bibtex.parse(base)}
    out = [base.rstrip()]
    for c in extra:
        if c.key in keys:
            continue
        keys.add(c.key)
        out.append(c.bibtex.strip())
    return "\n\n".join(s for s in out if s) + "\n"


def assemble_paper(
    paper_dir: Path, template: Template, parts: dict[str, str], bib_extra: list[Citation], figures: Sequence[Path],
) -> Path:
    """Write `paper.tex` and `references.bib` into `paper_dir` with the template's style files
    and copies of `figures`; return the .tex. `paper_dir` and the figures' folder are ones a
    sandbox has written, so everything goes through agent.sandbox.files."""
    files.make_dirs(paper_dir.parent, paper_dir.name)
    latex_dir = template.path / "latex"
    for f in sorted(latex_dir.iterdir()):  # style or class files a template may ship (ours: trusted)
        if f.is_file() and f.name not in ("template.tex", BIB):
            files.write_bytes(paper_dir, f.name, f.read_bytes())
    for fig in figures:
        files.copy_file(fig.parent, fig.name, paper_dir, fig.name)
    files.write_text(paper_dir, TEX, fill_template((latex_dir / "template.tex").read_text(), parts))
    files.write_text(paper_dir, BIB, merge_bib((latex_dir / BIB).read_text(), bib_extra))
    return paper_dir / TEX


# ---------------------------------------------------------------- compiling


def _require_tools() -> None:
    for tool, pkg in (("latexmk", "latexmk"), ("pdflatex", "texlive-latex-base")):
        if shutil.which(tool) is None:
            raise ToolMissing(f"{tool} is not installed; install it with `sudo apt-get install {pkg}` (or `make setup`)")


def compile_pdf(paper_dir: Path, log_dir: Path | None = None, executor: LocalExecutor | None = None,
                timeout_s: int = 180) -> CompileResult:
    """latexmk (pdflatex + bibtex) on `paper_dir/paper.tex` in the sandbox, then chktex. The
    commands' output goes to `log_dir` (default: `<paper_dir>.logs` beside it), out of reach of
    the compilation."""
    _require_tools()
    executor = executor or LocalExecutor()
    log_dir = log_dir or paper_dir.with_name(f"{paper_dir.name}.logs")
    for stale in ("paper.pdf", "paper.log"):  # a stale PDF or log must not pass for a fresh one
        files.remove(paper_dir, stale)
    limits = Limits(timeout_s=timeout_s, memory_mb=2048, disk_mb=512, max_procs=64, file_size_mb=128)
    res = executor.run(LATEXMK, paper_dir, limits, env=TEX_ENV, log_dir=log_dir, log_name="latexmk")
    log = _read(paper_dir, "paper.log")
    tex = _read(paper_dir, TEX)
    problems = log_problems(log) + source_problems(tex, paper_dir)
    if res.timed_out or res.killed_for:
        problems.insert(0, f"latexmk was stopped ({'timeout' if res.timed_out else res.killed_for})")
    if res.violation:
        problems.insert(0, f"the compilation left {res.violation}")
    problems += chktex(paper_dir, log_dir, executor)
    built = files.is_file(paper_dir, "paper.pdf")
    ok = res.exit_code == 0 and built
    if not ok and not log:
        problems.append("latexmk produced no log: " + res.error_tail(5).replace("\n", " | "))
    return CompileResult(
        ok=ok, pdf=paper_dir / "paper.pdf" if built else None, log_tail=log_tail(log, res.stdout_tail),
        problems=_unique(problems),
    )


def chktex(paper_dir: Path, log_dir: Path, executor: LocalExecutor) -> list[str]:
    """Serious chktex warnings as `chktex line L: message` (empty if chktex is absent)."""
    if shutil.which("chktex") is None:
        return []
    limits = Limits(timeout_s=60, memory_mb=512, disk_mb=64, max_procs=8, file_size_mb=16)
    rc = [Path("/etc/chktexrc")] if Path("/etc/chktexrc").is_file() else []  # its defaults, read-only
    executor.run(
        ["chktex", "-q", "-f", "%l:%c:%n:%m\n", TEX], paper_dir, limits, extra_ro=rc,
        log_dir=log_dir, log_name="chktex",
    )
    found = []
    for line in _read(log_dir, "chktex.stdout.log").splitlines():
        m = re.match(r"(\d+):(\d+):(\d+):(.*)", line)
        if not m or int(m.group(3)) not in CHKTEX_SERIOUS:
            continue
        msg = m.group(4).strip()
        if int(m.group(3)) != 16 and "{" not in msg and "}" not in msg:
            continue  # bracket checks only count for braces: [0, 1) is fine prose
        found.append(f"chktex line {m.group(1)}: {msg}")
    return found


def _read(folder: Path, name: str) -> str:
    """A text file of a folder LaTeX ran in; empty when missing or refused (a link, a FIFO)."""
    try:
        return files.read_text(folder, name)
    except (OSError, files.UnsafeFile):
        return ""


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# ---------------------------------------------------------------- reading the log

_FILE_LINE_ERR = re.compile(r"^(?:\./)?[^\s:]+\.tex:(\d+): (.+)$", re.M)
_BANG_ERR = re.compile(r"^! (.+)$", re.M)
_UNDEF = re.compile(r"Warning: (Reference|Citation) [`'](.+?)' on page \S+ undefined", re.M)
_MISSING_FILE = re.compile(r"File [`'](.+?)' not found", re.M)


def log_problems(log: str) -> list[str]:
    """LaTeX errors (with their line), missing files, and (when there was no error, so
    bibtex and the reruns happened) undefined references and citations."""
    problems = []
    for m in _FILE_LINE_ERR.finditer(log):
        if "==> Fatal error" not in m.group(2):
            problems.append(f"error on line {m.group(1)}: {m.group(2).strip()}")
    for m in _BANG_ERR.finditer(log):
        line = re.search(r"^l\.(\d+)", log[m.end():m.end() + 2000], re.M)
        where = f" on line {line.group(1)}" if line else ""
        if "Emergency stop" not in m.group(1) and "==> Fatal error" not in m.group(1):
            problems.append(f"error{where}: {m.group(1).strip()}")
    if not problems:  # after an error latexmk skips the reruns, so these may be stale
        for m in _UNDEF.finditer(log):
            problems.append(f"undefined {m.group(1).lower()} `{m.group(2)}`")
    for m in _MISSING_FILE.finditer(log):
        if "\\" not in m.group(1):  # `\Gin@base .png` is graphicx's echo of the same file
            problems.append(f"missing file `{m.group(1)}`")
    return _unique(problems)


def log_tail(log: str, fallback: str = "", limit: int = LOG_TAIL_CHARS) -> str:
    """What a brain needs to fix the paper: each error with a few lines of context, then
    the end of the log, within `limit` characters."""
    if not log:
        return fallback[-limit:]
    lines = log.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.startswith("!") or _FILE_LINE_ERR.match(line):
            end = next((j for j in range(i + 1, min(i + 9, len(lines))) if re.match(r"l\.\d+", lines[j])), i + 3)
            blocks.append("\n".join(lines[i:end + 2]))
        elif "Warning" in line and ("undefined" in line or "not found" in line):
            blocks.append(line)
    tail = "\n".join(lines[-15:])[-limit // 4:]
    errors = "\n".join(_unique(blocks))[:limit - len(tail) - 5]
    return f"{errors}\n...\n{tail}" if errors else tail


# ---------------------------------------------------------------- checking the source

_LABEL = re.compile(r"\\label\{([^}]*)\}")
_REF = re.compile(r"\\(?:ref|eqref|autoref|cref|Cref|pageref|nameref)\{([^}]*)\}")
_CITE = re.compile(r"\\(?:cite|citep|citet|citealp|citealt|citeauthor|citeyear|nocite)\*?(?:\[[^\]]*\]){0,2}\{([^}]*)\}")
_GRAPHIC = re.compile(r"\\includegraphics\s*(?:\[[^\]]*\])?\s*\{([^}]*)\}")
_SECTION = re.compile(r"^[ \t]*\\section\*?\{([^}]*)\}[ \t]*\n?", re.M)


def _strip_comments(tex: str) -> str:
    return re.sub(r"(?<!\\)%.*", "", tex)


def undefined_refs(tex: str) -> set[str]:
    body = _strip_comments(tex)
    labels = set(_LABEL.findall(body))
    return {k.strip() for m in _REF.findall(body) for k in m.split(",")} - labels


def cited_keys(tex: str) -> set[str]:
    """Every key a \\cite-like command of `tex` names (outside comments)."""
    return {k.strip() for m in _CITE.findall(_strip_comments(tex)) for k in m.split(",") if k.strip()}


def undefined_cites(tex: str, bib: str) -> set[str]:
    keys = {e.key for e in bibtex.parse(bib)}
    return {k for k in cited_keys(tex) if k not in keys}


def missing_graphics(tex: str, paper_dir: Path) -> set[str]:
    return {name for name in _GRAPHIC.findall(_strip_comments(tex)) if not _graphic_exists(paper_dir, name.strip())}


def _graphic_exists(paper_dir: Path, name: str) -> bool:
    candidates = [name] if Path(name).suffix.lower() in GRAPHIC_EXTS else []
    return any(_is_file(paper_dir, c) for c in [*candidates, *(f"{name}{ext}" for ext in GRAPHIC_EXTS)])


def _is_file(folder: Path, name: str) -> bool:
    try:
        return files.is_file(folder, name)
    except files.UnsafeFile:  # `..` or an absolute path in \includegraphics: never there
        return False


def duplicate_sections(tex: str) -> list[str]:
    seen: set[str] = set()
    dups = []
    for title in _SECTION.findall(_strip_comments(tex)):
        norm = " ".join(title.lower().split())
        if norm in seen:
            dups.append(title)
        seen.add(norm)
    return dups


def source_problems(tex: str, paper_dir: Path) -> list[str]:
    """What can be seen in the source whether or not LaTeX got that far."""
    bib = _read(paper_dir, BIB)
    problems = [f"undefined reference `{k}`" for k in sorted(undefined_refs(tex))]
    problems += [f"undefined citation `{k}`" for k in sorted(undefined_cites(tex, bib))]
    problems += [f"missing file `{k}`" for k in sorted(missing_graphics(tex, paper_dir))]
    problems += [f"duplicate section `{t}`" for t in duplicate_sections(tex)]
    return problems


# ---------------------------------------------------------------- deterministic fixes


def _rename_or_drop(bad: set[str], known: set[str]) -> dict[str, str | None]:
    """Each bad name -> a close known one (a typo such as `fig:los` for `fig:loss`), or None."""
    out: dict[str, str | None] = {}
    for name in bad:
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        out[name] = close[0] if close else None
    return out


def _report(mapping: dict[str, str | None], what: str) -> list[str]:
    return [f"renamed {what} `{k}` to `{v}`" if v else f"removed {what} `{k}`" for k, v in sorted(mapping.items())]


def _remap(keys: str, mapping: dict[str, str | None]) -> list[str]:
    """A `\\ref`/`\\cite` argument's keys after renaming (None drops a key), deduplicated."""
    out = (mapping.get(k, k) for k in (k.strip() for k in keys.split(",")) if k)
    return list(dict.fromkeys(k for k in out if k))


# Each captures (the word or space before it, the command with its options, the keys).
_REF_USE = re.compile(
    r"((?:Figure|Fig\.|Table|Tab\.|Section|Sec\.|Equation|Eq\.|Appendix|Algorithm)~?\s*)?"
    r"(\\(?:ref|eqref|autoref|cref|Cref|pageref|nameref))\{([^}]*)\}"
)
_CITE_USE = re.compile(
    r"(~|[ \t]*)?(\\(?:cite|citep|citet|citealp|citealt|citeauthor|citeyear|nocite)\*?(?:\[[^\]]*\]){0,2})"
    r"\{([^}]*)\}"
)


def drop_undefined_refs(tex: str) -> tuple[str, list[str]]:
    """Point a `\\ref` to an undefined label at a close existing label, else remove it (with
    the `Figure~`/`Table~` word before it)."""
    return _rewrite_keys(tex, undefined_refs(tex), set(_LABEL.findall(_strip_comments(tex))),
                         _REF_USE, "reference to undefined label")


def drop_undefined_cites(tex: str, bib: str) -> tuple[str, list[str]]:
    """Replace unknown keys in `\\cite`s by a close known key, else drop them; a cite left
    empty goes, with the space before it."""
    return _rewrite_keys(tex, undefined_cites(tex, bib), {e.key for e in bibtex.parse(bib)},
                         _CITE_USE, "citation of unknown key")


def _rewrite_keys(tex: str, bad: set[str], known: set[str], use: re.Pattern[str],
                  what: str) -> tuple[str, list[str]]:
    """Each `bad` key in the uses `use` matches renamed to a close `known` one, else dropped;
    a use left with no key goes with the word or space before it."""
    if not bad:
        return tex, []
    mapping = _rename_or_drop(bad, known)

    def sub(m: re.Match) -> str:
        kept = _remap(m.group(3), mapping)
        return f"{m.group(1) or ''}{m.group(2)}{{{','.join(kept)}}}" if kept else ""

    return use.sub(sub, tex), _report(mapping, what)


def drop_missing_graphics(tex: str, paper_dir: Path) -> tuple[str, list[str]]:
    """Remove a figure whose image is missing: the whole float when it holds only that
    image, else just the `\\includegraphics`. Labels inside it go too (refs fixed later)."""
    missing = missing_graphics(tex, paper_dir)
    if not missing:
        return tex, []
    float_re = re.compile(r"\\begin\{(figure\*?|wrapfigure)\}.*?\\end\{\1\}[ \t]*\n?", re.S)

    def drop_float(m: re.Match) -> str:
        names = [n.strip() for n in _GRAPHIC.findall(m.group(0))]
        return "" if names and all(n in missing for n in names) else m.group(0)

    tex = float_re.sub(drop_float, tex)
    tex = _GRAPHIC.sub(lambda m: "" if m.group(1).strip() in missing else m.group(0), tex)
    return tex, [f"removed figure with missing file `{k}`" for k in sorted(missing)]


def dedupe_sections(tex: str) -> tuple[str, list[str]]:
    """Drop the heading of a repeated `\\section{X}`, keeping its text under the first one."""
    seen: set[str] = set()
    fixes = []

    def sub(m: re.Match) -> str:
        norm = " ".join(m.group(1).lower().split())
        if norm in seen:
            fixes.append(f"merged duplicate section `{m.group(1)}`")
            return ""
        seen.add(norm)
        return m.group(0)

    return _SECTION.sub(sub, tex), fixes


# Arguments that hold names, not prose: an underscore there is legal and must stay.
_NAME_ARG = re.compile(
    r"\\(?:label|ref|eqref|cref|Cref|autoref|pageref|nameref|cite\w*|nocite|includegraphics|input|include|"
    r"url|href|bibliography\w*|begin|end|usepackage|texttt|verb)\*?(?:\[[^\]]*\])?\{[^}]*\}"
)
_MATH = re.compile(r"\$\$.*?\$\$|\$.*?\$|\\\(.*?\\\)|\\\[.*?\\\]", re.S)


def escape_underscores(tex: str, lines: set[int]) -> tuple[str, list[str]]:
    """On the given (1-based) lines, escape `_` in prose: outside math and name arguments."""
    out = tex.splitlines(keepends=True)
    fixes = []
    for n in sorted(lines):
        if not 1 <= n <= len(out):
            continue
        line = out[n - 1]
        if line.lstrip().startswith("%") or "\\begin{equation" in line or "\\begin{align" in line:
            continue
        keep = [(m.start(), m.end()) for r in (_MATH, _NAME_ARG) for m in r.finditer(line)]
        chars = list(line)
        changed = False
        for i, c in enumerate(line):
            if c == "_" and (i == 0 or line[i - 1] != "\\") and not any(a <= i < b for a, b in keep):
                chars[i] = "\\_"
                changed = True
        if changed:
            out[n - 1] = "".join(chars)
            fixes.append(f"escaped underscores on line {n}")
    return "".join(out), fixes


def _missing_dollar_lines(log: str) -> set[int]:
    lines = {int(m.group(1)) for m in re.finditer(r"^(?:\./)?[^\s:]+\.tex:(\d+): Missing \$ inserted", log, re.M)}
    for m in re.finditer(r"^! Missing \$ inserted", log, re.M):
        line = re.search(r"^l\.(\d+)", log[m.end():m.end() + 2000], re.M)
        if line:
            lines.add(int(line.group(1)))
    return lines


def deterministic_fixes(paper_dir: Path) -> list[str]:
    """Apply every fix that needs no judgement to paper.tex; return what changed."""
    tex = _read(paper_dir, TEX)
    fixes: list[str] = []
    for step in (
        lambda t: escape_underscores(t, _missing_dollar_lines(_read(paper_dir, "paper.log"))),
        lambda t: drop_missing_graphics(t, paper_dir),
        drop_undefined_refs,  # after figures, whose labels may have gone with them
        lambda t: drop_undefined_cites(t, _read(paper_dir, BIB)),
        dedupe_sections,
    ):
        new, done = step(tex)
        if new != tex:  # a fix that changed nothing must not buy another round
            tex, fixes = new, fixes + done
    if fixes:
        files.write_text(paper_dir, TEX, tex)
    return fixes


# ---------------------------------------------------------------- the loop


def repair_loop(paper_dir: Path, brain: Brain, log_dir: Path | None = None, executor: LocalExecutor | None = None,
                max_rounds: int = 4, timeout_s: int = 180, idea: str = "") -> CompileResult:
    """Compile; while it fails or has problems, fix deterministically, else ask the brain.

    Returns the last compilation. `rounds` counts repair rounds used; `fixes` lists every
    change made. A refused brain edit changes nothing and goes into the next log tail.
    """
    result = compile_pdf(paper_dir, log_dir, executor, timeout_s)
    fixes: list[str] = []
    refusal = ""
    rounds = 0
    while not result.clean and rounds < max_rounds:
        rounds += 1
        done = deterministic_fixes(paper_dir)
        if not done:
            done, refusal = _brain_round(paper_dir, brain, result, refusal, idea)
        if done:
            fixes += done
            result = compile_pdf(paper_dir, log_dir, executor, timeout_s)
        elif not refusal:
            break  # nobody could change anything: another compile would give the same result
    return result.model_copy(update={"rounds": rounds, "fixes": fixes})


def _brain_round(paper_dir: Path, brain: Brain, result: CompileResult, refusal: str,
                 idea: str) -> tuple[list[str], str]:
    """One `fix_latex` request; returns (changes made, refusal message for next round)."""
    feedback = "Problems:\n" + "\n".join(f"- {p}" for p in result.problems) + "\n\nLog:\n" + result.log_tail
    if refusal:
        feedback = f"Your previous edit was refused: {refusal}\n\n{feedback}"
    edits = brain.fix_latex(_read(paper_dir, TEX), feedback, idea=idea)
    if not edits:
        return [], ""
    try:
        apply_edits(paper_dir, edits, {TEX})
    except EditRefused as e:
        return [], str(e)
    return [f"applied {len(edits)} edit(s) from the brain"], ""
