"""Executors: the local sandbox, and a real local Ray cluster that runs sandboxed commands as
tasks, ships the workdir both ways, and retries a run whose worker died."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from agent.errors import ConfigError, ToolMissing
from agent.sandbox import runner as sandbox
from agent.sandbox.executors import (
    RAY_MISSING,
    LocalExecutor,
    RayExecutor,
    make_executor,
    pack,
    snapshot,
    unpack,
)
from agent.sandbox.files import UnsafeFile
from agent.sandbox.limits import Limits, SandboxResult

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
LIMITS = Limits(timeout_s=60, memory_mb=1024, disk_mb=64, max_procs=64)

# A tiny "experiment": reads its config, checks what it can see, writes run_1/ and deletes a file.
EXPERIMENT = """
import json, os, socket, sys
cfg = json.load(open("config.json"))
os.makedirs("run_1", exist_ok=True)
info = {"toy": {"means": {"loss": cfg["lr"] * 2}, "stderrs": {"loss": 0.0}, "per_seed": {"loss": [cfg["lr"] * 2]}}}
json.dump(info, open("run_1/final_info.json", "w"))
json.dump({"host": socket.gethostname(), "git_visible": os.path.exists(".git"),
           "assets": sorted(os.listdir("assets"))}, open("run_1/seen.json", "w"))
os.remove("stale.txt")
print("trained for", cfg["lr"])
"""


def make_workdir(root: Path) -> Path:
    work = root / "idea"
    (work / "assets").mkdir(parents=True)  # an empty folder must travel too
    (work / "experiment.py").write_text(EXPERIMENT)
    (work / "config.json").write_text(json.dumps({"lr": 0.25}))
    (work / "stale.txt").write_text("left by an earlier attempt")
    return work


def cmd() -> list[str]:
    return [sandbox.python_executable(), "experiment.py"]


def check_outputs(work: Path) -> None:
    info = json.loads((work / "run_1" / "final_info.json").read_text())
    assert info["toy"]["means"]["loss"] == 0.5
    seen = json.loads((work / "run_1" / "seen.json").read_text())
    assert seen == {"host": "sandbox", "git_visible": False, "assets": []}
    assert not (work / "stale.txt").exists()  # deleted by the run, so deleted here too
    assert "trained for 0.25" in (work / "run_1.stdout.log").read_text()


# ---------------------------------------------------------------- shipping, without Ray


def test_pack_and_unpack_round_trip(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    (work / "__pycache__").mkdir()
    (work / "__pycache__" / "x.pyc").write_bytes(b"cache")
    files = snapshot(work)
    assert "__pycache__" not in files and files["assets"] == (-1, 0)

    dest = tmp_path / "copy"
    assert unpack(pack(work, files), dest) == []
    assert snapshot(dest).keys() == files.keys()
    assert (dest / "config.json").read_text() == (work / "config.json").read_text()


def test_unpack_refuses_paths_that_escape(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, link in (("../evil.txt", None), ("/abs.txt", None), ("out", "/etc/passwd"), ("ok.txt", None)):
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = 2
                tar.addfile(info, io.BytesIO(b"hi"))
    dest = tmp_path / "dest"
    refused = unpack(buf.getvalue(), dest)

    assert set(refused) == {"../evil.txt", "out"}  # a leading "/" is stripped, not refused
    assert sorted(p.name for p in dest.iterdir()) == ["abs.txt", "ok.txt"]
    assert not (tmp_path / "evil.txt").exists()


def test_links_and_special_files_never_travel(tmp_path: Path) -> None:
    """Packing refuses what unpacking would refuse: a link (to a secret, or a chain that only
    escapes once completed) or a FIFO fails the pack instead of travelling."""
    work = make_workdir(tmp_path)
    (work / "chain").symlink_to("assets")  # points inside today; a later run could re-aim it
    with pytest.raises(UnsafeFile, match="link or special file"):
        snapshot(work)
    (work / "chain").unlink()
    os.mkfifo(work / "pipe")
    with pytest.raises(UnsafeFile, match="link or special file"):
        pack(work, ["pipe"])


def test_make_executor_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_executor("local", None), LocalExecutor)
    with pytest.raises(ConfigError, match="unknown executor 'slurm'"):
        make_executor("slurm", None)
    with pytest.raises(ConfigError, match="needs --executor ray"):
        make_executor("local", "127.0.0.1:6379")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ToolMissing) as err:
        make_executor("ray", None)
    assert str(err.value) == RAY_MISSING


@needs_bwrap
def test_local_executor_runs_in_the_sandbox(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    result = LocalExecutor().run(cmd(), work, LIMITS, log_name="run_1")

    assert result.ok and result.sandboxed, result.error_tail()
    assert json.loads((work / "run_1" / "final_info.json").read_text())["toy"]["means"]["loss"] == 0.5


# ---------------------------------------------------------------- a real Ray cluster


@pytest.fixture(scope="module")
def ray_cluster():
    pytest.importorskip("ray")
    executor = RayExecutor(None, init_kwargs=dict(num_cpus=2, object_store_memory=100 * 2**20))
    executor._connect()  # start the local cluster once for the module
    yield executor
    executor.close()


def crash_first_attempt(marker: Path):
    """A runner whose worker process dies on the first attempt only (a lost worker)."""

    def run(command: list[str], workdir: Path, limits: Limits, **kw: object) -> SandboxResult:
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        return sandbox.run(command, workdir, limits, **kw)

    return run


def crash_always(attempts: Path):
    def run(command: list[str], workdir: Path, limits: Limits, **kw: object) -> SandboxResult:
        (attempts / str(os.getpid())).touch()
        os._exit(1)

    return run


@pytest.mark.slow
@needs_bwrap
def test_ray_runs_a_sandboxed_experiment_and_brings_results_back(ray_cluster: RayExecutor, tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    result = ray_cluster.run(cmd(), work, LIMITS, cpus=1, log_name="run_1")

    assert result.ok and result.sandboxed, result.error_tail()
    check_outputs(work)
    assert result.stdout_path == str(work.resolve() / "run_1.stdout.log")  # paths point here, not at the worker


@pytest.mark.slow
@needs_bwrap
def test_ray_retries_a_run_whose_worker_died(ray_cluster: RayExecutor, tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    executor = RayExecutor(None, runner=crash_first_attempt(marker))  # joins the running cluster
    work = make_workdir(tmp_path)
    result = executor.run(cmd(), work, LIMITS, log_name="run_1")

    assert marker.exists()  # the first attempt's worker really died
    assert result.ok, result.error_tail()
    check_outputs(work)


@pytest.mark.slow
@needs_bwrap
def test_ray_lost_twice_fails_only_that_run(ray_cluster: RayExecutor, tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    doomed = RayExecutor(None, runner=crash_always(attempts))
    work = make_workdir(tmp_path)
    result = doomed.run(cmd(), work, LIMITS, log_name="run_1")

    assert not result.ok and "lost on the Ray cluster" in result.error_tail()
    assert len(list(attempts.iterdir())) == 2  # the first try and one retry
    assert not (work / "run_1").exists() and (work / "stale.txt").exists()  # workdir untouched
    # The cluster and the next run are fine.
    result = ray_cluster.run(cmd(), work, LIMITS, log_name="run_1")
    assert result.ok, result.error_tail()
    check_outputs(work)


@pytest.mark.slow
def test_ray_refuses_resources_the_cluster_lacks(ray_cluster: RayExecutor, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="asks for 1 CPUs and 1 GPUs"):
        ray_cluster.run(cmd(), make_workdir(tmp_path), LIMITS, gpus=1)


DRIVER = """
import json, sys
from pathlib import Path
from agent.sandbox import runner as sandbox
from agent.sandbox.limits import Limits
from agent.sandbox.executors import RayExecutor
executor = RayExecutor(sys.argv[1])  # joins by address, shipping this agent package to the workers
result = executor.run([sandbox.python_executable(), "experiment.py"], Path(sys.argv[2]),
                      Limits(timeout_s=60, memory_mb=1024, disk_mb=64, max_procs=64), log_name="run_1")
print(json.dumps({"ok": result.ok, "tail": result.error_tail(), "shipped": executor.ship_code}))
"""


@pytest.mark.slow
@needs_bwrap
def test_a_second_driver_joins_the_cluster_by_address(ray_cluster: RayExecutor, tmp_path: Path) -> None:
    import subprocess

    address = ray_cluster.ray.get_runtime_context().gcs_address
    work = make_workdir(tmp_path)
    done = subprocess.run([sys.executable, "-c", DRIVER, address, str(work)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["shipped"], report["tail"]
    check_outputs(work)
