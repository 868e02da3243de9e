"""The trust suite's second pass: the same tests, with the orchestrator an unprivileged user.

As root, sandboxed code runs as the dedicated uid; as a normal user, it runs as that user, and
the protections differ (private run folders, setuid bits cleared, unlistable folders as errors:
root can list any folder, so only this pass meets that trap). So when the suite runs as root,
this test runs it again as `nobody` (see unprivileged.py), and passes only if all of it does.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import REPO

PASS_ENV = "AI_SCIENTIST_TRUST_PASS"
HERE = Path(__file__).resolve().parent


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the suite already runs as an unprivileged user here")
@pytest.mark.skipif(os.environ.get(PASS_ENV) == "unprivileged", reason="this is the unprivileged pass")
def test_the_trust_suite_passes_as_an_unprivileged_orchestrator() -> None:
    nobody = pwd.getpwnam("nobody")
    work = Path(tempfile.mkdtemp(prefix="ai-scientist-trust-user-", dir="/var/tmp"))
    os.chown(work, nobody.pw_uid, nobody.pw_gid)
    home = work / "home"
    home.mkdir()
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    folders = {sys.prefix, os.path.realpath(sys.prefix), sys.base_prefix,
               os.path.dirname(os.path.realpath(sys.executable)), str(REPO)}
    needed = sorted(f for f in folders if not any(f != g and f.startswith(g + "/") for g in folders))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(REPO), "TMPDIR": str(work), PASS_ENV: "unprivileged"}
    cmd = [sys.executable, "-I", "-S", str(HERE / "unprivileged.py"), str(nobody.pw_uid), str(nobody.pw_gid),
           ":".join(needed), "--",
           sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "--basetemp", str(work / "pytest"), str(HERE)]
    try:
        done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1500)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    assert done.returncode == 0, f"as nobody:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    assert " passed" in done.stdout and " failed" not in done.stdout, done.stdout[-2000:]
