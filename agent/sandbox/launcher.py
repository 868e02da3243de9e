"""The first process of every sandboxed command, run as `python -I -S -c <this file's text>` so
that nothing of the sandbox's files is imported (it is not imported by the orchestrator).

It sets the rlimits there rather than in a preexec_fn: RLIMIT_NPROC only counts per sandbox
when set inside its user namespace, and preexec_fn is unsafe in threaded programs. With
"reap" (no bubblewrap, so no PID namespace to die with) it stays as a subreaper, the parent of
every orphan of the run, and kills them all when the command exits.

    argv: [spec as JSON: {"rlimits": {NAME: [soft, hard]}, "reap": bool}, command...]
"""

import json
import os
import resource
import sys


def execute(cmd):
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        sys.stderr.write(f"sandbox: cannot run {cmd[0]!r}: {e.strerror}\n")
        os._exit(127 if isinstance(e, FileNotFoundError) else 126)


def children(me):
    kids = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            continue
        if int(fields[1]) == me:
            kids.append(int(name))
    return kids


def reap(cmd):
    import ctypes

    libc = ctypes.CDLL(None)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG: SIGKILL when the orchestrator dies
    pid = os.fork()
    if pid == 0:
        libc.prctl(1, 9, 0, 0, 0)
        execute(cmd)
    _, status = os.waitpid(pid, 0)
    while True:
        kids = children(os.getpid())
        for kid in kids:
            try:
                os.kill(kid, 9)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            break
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


spec = json.loads(sys.argv[1])
for name, (soft, hard) in spec["rlimits"].items():
    resource.setrlimit(getattr(resource, name), (soft, hard))
reap(sys.argv[2:]) if spec["reap"] else execute(sys.argv[2:])
