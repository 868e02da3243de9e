"""Who sandboxed code runs as on the host, and so who owns the files it leaves.

bubblewrap maps the sandbox's uid 1000 to the uid that starts it. For a normal user that is
the user: the files a run leaves are theirs, the run folders are private (0700), and the
post-run scan clears any setuid/setgid bit before anything reads the folder. For root it would
be root, and a run could leave a root-owned setuid binary. So a root orchestrator starts
bubblewrap through `dropuid.py` as `DEDICATED_UID`, an unprivileged uid no account uses: the
run's files belong to it, and no file the run makes can ever carry root's privileges.

`isolation()` says which of these is in force here (`doctor` prints it).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from pydantic import BaseModel

from agent.sandbox.bwrap import SYSTEM_DIRS

# Far above every range that accounts, systemd's dynamic users and container subuid maps use.
DEDICATED_UID = 2_100_000_000
DROPUID = (Path(__file__).with_name("dropuid.py")).read_text()


class Isolation(BaseModel):
    """How this machine keeps what a sandboxed run leaves from carrying privileges."""

    mode: str  # dedicated-uid | own-uid | root-uid
    uid: int  # the host uid that owns what a run writes
    detail: str


def _stageable(path: Path) -> bool:
    """Whether the dedicated uid could not reach `path` by itself (so it must be staged)."""
    return not any(path == Path(d) or path.is_relative_to(d) for d in SYSTEM_DIRS)


def dropuid_argv(bwrap_argv: list[str], sources: Sequence[Path], stage: Path, cgroup_procs: Path | None) -> list[str]:
    """The command that joins the cgroup, stages `sources` under `stage` and runs `bwrap_argv` as
    the dedicated uid. bwrap_argv must bind each source from `staged(stage, i)`."""
    spec = {"cgroup_procs": str(cgroup_procs) if cgroup_procs else None, "stage": str(stage),
            "sources": [str(s) for s in sources], "uid": DEDICATED_UID, "gid": DEDICATED_UID}
    return [sys.executable, "-I", "-S", "-c", DROPUID, json.dumps(spec), "--", *bwrap_argv]


def staged(stage: Path, index: int) -> Path:
    return stage / str(index)


def staging(paths: Sequence[Path]) -> list[Path]:
    """Of the folders a sandbox binds, those to stage for the dedicated uid."""
    return [p for p in paths if _stageable(p)]


@cache
def isolation() -> Isolation:
    """Probe once per process: can root hand sandboxes to the dedicated uid here?"""
    if os.geteuid() != 0:
        return Isolation(mode="own-uid", uid=os.geteuid(), detail=(
            "sandboxed code runs as your own uid; run folders are private (0700) and setuid/setgid "
            "bits are cleared after every run, before anything reads the folder"))
    taken = _uid_taken(DEDICATED_UID)
    problem = taken or _probe()
    if problem is None:
        return Isolation(mode="dedicated-uid", uid=DEDICATED_UID, detail=(
            f"running as root: sandboxed code runs as the unprivileged uid {DEDICATED_UID}, which owns "
            "everything a run writes, so no root-owned setuid file can appear"))
    return Isolation(mode="root-uid", uid=0, detail=(
        f"running as root, and sandboxes cannot use the unprivileged uid {DEDICATED_UID} ({problem}): "
        "a run's files are root-owned; run folders are private (0700) and setuid/setgid bits are "
        "cleared after every run. Run as a normal user, or enable unprivileged user namespaces."))


def _uid_taken(uid: int) -> str | None:
    try:
        return f"account {pwd.getpwuid(uid).pw_name!r} already has that uid"
    except KeyError:
        return None


def _probe() -> str | None:
    """Run `true` in a minimal sandbox as the dedicated uid; None if it worked, else why not."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed"
    with tempfile.TemporaryDirectory(prefix="ai-scientist-probe-") as tmp:
        stage = Path(tmp)
        inner = [bwrap, "--unshare-user", "--disable-userns", "--ro-bind", "/", "/", "true"]
        done = subprocess.run(dropuid_argv(inner, [], stage, None), capture_output=True, text=True, timeout=60)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["failed"])[-1]
