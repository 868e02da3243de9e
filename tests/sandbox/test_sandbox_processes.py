"""Hostile scripts that try to outlive their run or take the orchestrator down: detached children
(setsid, double fork) and signals to the parent, to init and to every process it can see."""

from __future__ import annotations

import subprocess
import time

import pytest

from agent.sandbox import runner as sandbox
from agent.sandbox.limits import Limits
from tests.sandbox.hostile import Site, assert_contained, marker, processes_with, run_script

DELAY_S = 1.5

DETACH = """
import os, subprocess, sys, time
mark, delay = sys.argv[1], float(sys.argv[2])
later = f"import time; time.sleep({delay}); open('canary_setsid.txt', 'w').write('outlived')"
subprocess.Popen([sys.executable, "-c", later, mark], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:  # the classic daemon: fork, setsid, fork again, parent exits
    os.setsid()
    if os.fork() == 0:
        time.sleep(delay)
        open("canary_daemon.txt", "w").write("outlived")
    os._exit(0)
open("parent_done.txt", "w").write("exiting, children left running")
"""


@pytest.mark.parametrize("unsafe", [False, True], ids=["sandbox", "unsafe-no-sandbox"])
def test_detached_children_die_with_the_run(site: Site, unsafe: bool):
    """Under bubblewrap the PID namespace dies with the command; without it, the launcher is
    the run's subreaper and kills the orphans."""
    before = site.snapshot()
    mark = marker()
    result = run_script(
        site, DETACH, Limits(timeout_s=60), mark, str(DELAY_S), unsafe_no_sandbox=unsafe
    )
    assert result.ok, result.error_tail()
    assert (site.workdir / "parent_done.txt").exists()
    assert processes_with(mark) == []
    time.sleep(DELAY_S + 1)  # past the moment the children would have written their canaries
    assert not (site.workdir / "canary_setsid.txt").exists()
    assert not (site.workdir / "canary_daemon.txt").exists()
    assert_contained(site, before, mark)


KILL_PARENT = """
import json, os, signal
report = {"pid": os.getpid(), "ppid": os.getppid()}
if os.getppid() != 1:  # never fire kill(-1) unless in a PID namespace of our own
    report["refused"] = "not in a PID namespace"
else:
    for name, target in (("parent", os.getppid()), ("init", 1), ("everyone", -1)):
        try:
            os.kill(target, signal.SIGKILL)
            report[name] = "sent"
        except OSError as e:
            report[name] = type(e).__name__
open("report.json", "w").write(json.dumps(report))
raise SystemExit(3)
"""


def test_killing_the_parent_and_everyone_reaches_only_the_sandbox(site: Site):
    before = site.snapshot()
    bystander = subprocess.Popen(["sleep", "60"])  # a process of ours, outside the sandbox
    try:
        mark = marker()
        result = run_script(site, KILL_PARENT, Limits(timeout_s=30), mark)
        report = (site.workdir / "report.json").read_text()
        assert '"refused"' not in report, report
        assert result.exit_code == 3 and result.killed_for is None  # it lived on and was reported
        assert bystander.poll() is None  # kill(-1) did not reach outside
    finally:
        bystander.kill()
        bystander.wait()
    assert_contained(site, before, mark)


def test_a_breach_kills_only_the_run(site: Site):
    """The timeout kills the run's process group and the processes seen in it: a process in
    another group of the same user is left alone."""
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        result = sandbox.run(
            ["sleep", "30"], site.workdir, Limits(timeout_s=0.5), unsafe_no_sandbox=True
        )
        assert result.timed_out
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
