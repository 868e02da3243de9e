"""Hostile scripts that try to get out: the network, secrets, other runs, writes outside the work
folder, the orchestrator's config and limits, credentials in the environment. Each asserts on a
canary, and that nothing outside the work folder changed. Where it helps to show the canary can
fire, a control runs the same script with --unsafe-no-sandbox."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import threading
import tomllib

import pytest

from agent.sandbox import files
from agent.sandbox.limits import Limits
from tests.sandbox.hostile import CANARY, Site, assert_contained, marker, run_script

QUICK = Limits(timeout_s=60, memory_mb=1024)


class CanaryServer:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def server():
    srv = CanaryServer()
    yield srv
    srv.close()


NETWORK = """
import json, socket, sys
port = int(sys.argv[1])
report = {}
for name, family, addr in [("loopback", socket.AF_INET, ("127.0.0.1", port)),
                           ("ipv6 loopback", socket.AF_INET6, ("::1", port)),
                           ("outside", socket.AF_INET, ("1.1.1.1", 53))]:
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(addr)
        report[name] = "CONNECTED"
    except OSError as e:
        report[name] = type(e).__name__
try:
    socket.getaddrinfo("example.com", 80)
    report["dns"] = "RESOLVED"
except OSError as e:
    report["dns"] = type(e).__name__
report["interfaces"] = [name for _, name in socket.if_nameindex()]
open("report.json", "w").write(json.dumps(report))
"""


def test_no_network_not_even_loopback(site: Site, server: CanaryServer):
    before = site.snapshot()
    result = run_script(site, NETWORK, QUICK, str(server.port))
    assert result.ok, result.error_tail()
    report = json.loads((site.workdir / "report.json").read_text())
    assert "CONNECTED" not in report.values() and report["dns"] != "RESOLVED"
    assert report["interfaces"] == ["lo"]  # its own, empty loopback
    assert server.connections == 0
    assert_contained(site, before)


def test_control_the_network_canary_fires_without_the_sandbox(site: Site, server: CanaryServer):
    result = run_script(site, NETWORK, QUICK, str(server.port), unsafe_no_sandbox=True)
    assert result.ok and not result.sandboxed
    assert json.loads((site.workdir / "report.json").read_text())["loopback"] == "CONNECTED"
    assert server.connections >= 1


READ_SECRETS = """
import json, os, sys
targets = json.loads(sys.argv[1])
canary = sys.argv[2] + sys.argv[3]  # in two halves, so its own command line doesn't hold it
report = {}
for path in targets + [os.path.expanduser("~/.ssh/id_rsa"), "/root/.ssh/id_rsa", "/etc/shadow"]:
    try:
        report[path] = "READ" if canary in open(path).read() else "read, no canary"
    except OSError as e:
        report[path] = type(e).__name__
# Search everything it can see, but the system and the interpreter, which hold nothing of ours.
skip = ("/proc", "/sys", "/dev", "/usr", sys.prefix, sys.base_prefix)
found = []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if not os.path.join(top, d).startswith(skip)]
    for f in files:
        try:
            if canary in open(os.path.join(top, f), errors="ignore").read(1_000_000):
                found.append(os.path.join(top, f))
        except OSError:
            pass
# Other processes' environments and command lines (the orchestrator holds the keys).
for pid in filter(str.isdigit, os.listdir("/proc")):
    for part in ("environ", "cmdline"):
        try:
            if canary.encode() in open(f"/proc/{pid}/{part}", "rb").read():
                found.append(f"/proc/{pid}/{part}")
        except OSError:
            pass
report["found"] = found
report["root"] = sorted(os.listdir("/"))
report["home"] = os.environ.get("HOME")
report["/root"] = sorted(os.listdir("/root")) if os.path.isdir("/root") else []
report["processes"] = len([p for p in os.listdir("/proc") if p.isdigit()])
open("report.json", "w").write(json.dumps(report))
"""


def test_secrets_other_runs_and_the_archive_are_invisible(site: Site, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)  # the orchestrator's key, in its environment
    before = site.snapshot()
    targets = [str(p) for p in site.secrets] + [str(site.config)]
    result = run_script(site, READ_SECRETS, QUICK, json.dumps(targets), CANARY[:12], CANARY[12:])
    assert result.ok, result.error_tail()
    report = json.loads((site.workdir / "report.json").read_text())
    for path in targets:
        assert report[path] == "FileNotFoundError", path
    assert report["/root/.ssh/id_rsa"] == "FileNotFoundError" and report["/etc/shadow"] == "FileNotFoundError"
    assert report["home"] == "/tmp/home" and report["/tmp/home/.ssh/id_rsa"] == "FileNotFoundError"
    assert report["found"] == []
    assert report["/root"] in ([], [".pyenv"])  # only the interpreter's prefix, never the rest of $HOME
    assert report["processes"] <= 3  # its own PID namespace: bwrap's init, itself
    assert CANARY not in result.stdout_tail + result.stderr_tail
    assert_contained(site, before)


def test_control_the_secret_canaries_fire_without_the_sandbox(site: Site):
    targets = [str(p) for p in site.secrets]
    script = (
        READ_SECRETS.split("# Search everything")[0] + 'open("report.json", "w").write(json.dumps(report))\n'
    )
    result = run_script(
        site, script, QUICK, json.dumps(targets), CANARY[:12], CANARY[12:], unsafe_no_sandbox=True
    )
    assert result.ok
    report = json.loads((site.workdir / "report.json").read_text())
    assert all(report[path] == "READ" for path in targets)


ENV_DUMP = """
import json, os
open("env.json", "w").write(json.dumps(dict(os.environ)))
"""


def test_api_keys_and_tokens_are_scrubbed_from_the_environment(site: Site, monkeypatch: pytest.MonkeyPatch):
    for name in ("OPENAI_API_KEY", "AI_SCIENTIST_API_KEY", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "LANG"):
        monkeypatch.setenv(name, CANARY if name != "LANG" else "C.UTF-8")
    passed = {"HF_TOKEN": CANARY, "my_password": CANARY, "OPENAI_API_KEY": CANARY, "RUN_LABEL": "seed-3"}
    result = run_script(site, ENV_DUMP, QUICK, env=passed)
    assert result.ok, result.error_tail()
    env = json.loads((site.workdir / "env.json").read_text())
    assert CANARY not in json.dumps(env)
    assert env["RUN_LABEL"] == "seed-3" and env["LANG"] == "C.UTF-8"  # the allowlist and `env` still pass
    assert env["HOME"] == "/tmp/home" and "PYTHONPATH" not in env


WRITE_OUTSIDE = """
import json, os, sys
targets = json.loads(sys.argv[1])
report = {}
for path in targets:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("escaped")
        report[path] = "WROTE"
    except OSError as e:
        report[path] = type(e).__name__
# A symlink in the work folder that points outside leads nowhere: the target isn't mounted.
os.symlink(targets[0], "link_out")
try:
    open("link_out/escaped.txt", "w").write("escaped")
    report["symlink"] = "WROTE"
except OSError as e:
    report["symlink"] = type(e).__name__
open("report.json", "w").write(json.dumps(report))
"""


def test_writes_outside_the_work_folder_fail(site: Site):
    before = site.snapshot()
    targets = [
        str(site.outside / "escaped.txt"),
        str(site.workdir.parent / "escaped.txt"),
        str(site.workdir / ".." / "escaped_rel.txt"),
        str(site.home / ".bashrc"),
        str(site.project / "agent" / "sandbox.py"),
        f"{sys.prefix}/lib/escaped.py",
        "/usr/lib/escaped.so",
        "/etc/escaped.conf",
        "/escaped",
    ]
    result = run_script(site, WRITE_OUTSIDE, QUICK, json.dumps(targets))
    assert result.ok, result.error_tail()
    report = json.loads((site.workdir / "report.json").read_text())
    assert "WROTE" not in report.values(), report
    assert_contained(site, before)


REWRITE_CONFIG = """
import json, os, resource, sys, time
config = sys.argv[1]
report = {}
try:
    open(config).read()
    report["read config"] = "READ"
except OSError as e:
    report["read config"] = type(e).__name__
try:
    with open(config, "w") as f:
        f.write("[sandbox]\\ntimeout_s = 99999\\n")
    report["config"] = "REWROTE"
except OSError as e:
    report["config"] = type(e).__name__
for name in ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE"):
    limit = getattr(resource, name)
    try:
        resource.setrlimit(limit, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        report[name] = "RAISED"
    except (ValueError, OSError) as e:
        report[name] = type(e).__name__
open("report.json", "w").write(json.dumps(report))
sys.stdout.flush()
time.sleep(120)
open("woke.txt", "w").write("the timeout did not hold")
"""


def test_rewriting_the_timeout_changes_nothing(site: Site):
    """The orchestrator reads its limit from its config; the code can neither see that file nor
    raise its own rlimits, and the wall-clock limit lives in the parent process anyway."""
    before = site.snapshot()
    timeout = tomllib.loads(site.config.read_text())["sandbox"]["timeout_s"]
    mark = marker()
    result = run_script(site, REWRITE_CONFIG, Limits(timeout_s=timeout), str(site.config), mark)
    report = json.loads((site.workdir / "report.json").read_text())
    assert report["read config"] == "FileNotFoundError" and report["config"] != "REWROTE"
    assert all(
        report[name] != "RAISED" for name in ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE")
    )
    assert result.timed_out and result.killed_for == "timeout" and not result.ok
    assert not (site.workdir / "woke.txt").exists()
    assert "timeout_s = 2" in site.config.read_text()
    assert_contained(site, before, mark)


SETUID = """
import os, shutil, stat, time
shutil.copy("/bin/sh", "rootshell")
os.chmod("rootshell", 0o6755)  # outside, the file belongs to the orchestrator's uid
print(oct(os.stat("rootshell").st_mode & 0o7777))
"""


def test_setuid_files_written_by_the_run_lose_the_bit(site: Site):
    """Run as root, the orchestrator would otherwise find a setuid-root shell in the work folder."""
    result = run_script(site, SETUID, QUICK)
    assert result.ok and result.stdout_tail.strip() == "0o6755"  # it did set the bits inside
    mode = (site.workdir / "rootshell").stat().st_mode
    assert mode & (stat.S_ISUID | stat.S_ISGID) == 0 and mode & 0o777 == 0o755


DECOYS = """
import os, sys
secret = sys.argv[1]  # a path the run cannot read, but the orchestrator can
for name in ("sandbox.stdout.log", "sandbox.stderr.log", "final_info.json"):
    if os.path.exists(name):
        os.unlink(name)
    os.symlink(secret, name)
os.mkfifo("results.fifo")
os.makedirs("sub")
os.symlink(os.path.dirname(secret), "sub/up")
"""


def test_symlinks_left_by_the_run_do_not_make_the_orchestrator_read_secrets(site: Site):
    """The run cannot read ~/.ssh/id_rsa, but it can leave a symlink to it where the orchestrator
    will read its logs and results. The tails come from our own descriptors, every link and FIFO
    is removed as the run ends, and `files.read_bytes` refuses links, FIFOs and paths that leave
    the work folder."""
    key = site.home / ".ssh" / "id_rsa"
    result = run_script(site, DECOYS, QUICK, str(key))
    assert result.ok, result.error_tail()
    assert CANARY not in result.stdout_tail + result.stderr_tail
    # links and special files are deleted as the run ends, before anything copies the folder
    assert not (site.workdir / "final_info.json").is_symlink()
    assert not (site.workdir / "sub" / "up").is_symlink()
    assert not (site.workdir / "results.fifo").exists()
    assert "removed" in result.cleaned
    (site.workdir / "inside.json").write_text("{}")
    (site.workdir / "final_info.json").symlink_to(site.workdir / "inside.json")  # even an inner link
    os.mkfifo(site.workdir / "results.fifo")
    (site.workdir / "sub" / "up").symlink_to(key.parent)
    for name in (
        "final_info.json",
        "results.fifo",
        "sub/up/id_rsa",
        "../../../../home/.ssh/id_rsa",
    ):
        with pytest.raises(files.UnsafeFile):
            files.read_bytes(site.workdir, name)
    (site.workdir / "ok.json").write_text("{}")
    assert files.read_bytes(site.workdir, "ok.json") == b"{}"
    with pytest.raises(files.UnsafeFile, match="more than"):
        files.read_bytes(site.workdir, "ok.json", limit=1)
