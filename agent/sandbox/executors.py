"""Where sandboxed runs execute: on this machine (`LocalExecutor`, the default) or as Ray
tasks on a cluster (`RayExecutor`, `--executor ray [--ray-address ADDR]`).

Either way the caller sees the same thing: `run(cmd, workdir, limits)` returns a
`SandboxResult`, and afterwards `workdir` holds what the run wrote (its `run_N/` folder, its
logs). Graph state, checkpoints and git stay with the orchestrator; only the files travel.

With Ray, one run is one task:

    orchestrator                                   worker (any node)
    tar workdir (no .git) ─ object store ─▶  untar into a temp folder
                                             agent.sandbox.run(cmd) there, under `limits`
    untar into workdir  ◀─ object store ─  tar of the files the run added or changed
                                             (+ the names of the files it deleted)

A lost worker or node (the process killed, the machine gone) makes Ray run the task again
once (`max_retries=1`); if that attempt is lost too, only this run fails, with a result that
says so, and the pipeline goes on. Ray is optional: `pip install 'ai-scientist[ray]'`.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agent.errors import AIScientistError, ConfigError, ToolMissing
from agent.sandbox import runner as sandbox
from agent.sandbox.limits import Limits, SandboxResult

if TYPE_CHECKING:
    import ray as ray_module

log = logging.getLogger(__name__)

RAY_MISSING = "Ray is not installed: pip install 'ai-scientist[ray]'"
SKIP_DIRS = frozenset({".git", "__pycache__"})  # history stays with the orchestrator; runs never need it
MAX_SHIP_BYTES = 512 * 2**20  # a workdir bigger than this, compressed, is almost surely a mistake
RETRIES = 1  # a lost worker's run is tried once more, then fails alone


class Executor(Protocol):
    """Runs one sandboxed command and leaves its outputs in `workdir`."""

    def run(
        self, cmd: list[str], workdir: Path, limits: Limits, *, cpus: int = 1, gpus: int = 0,
        log_name: str = "sandbox",
    ) -> SandboxResult:
        """Run `cmd` in `workdir` under `limits`, asking for `cpus` cores and `gpus` GPUs."""
        ...


class LocalExecutor:
    """This machine's sandbox. `cpus` and `gpus` are not reserved here: runs already take
    their turn through `--parallel`, and the sandbox passes the GPUs through."""

    def __init__(self, unsafe_no_sandbox: bool | None = None):
        self.unsafe_no_sandbox = unsafe_no_sandbox

    def run(
        self, cmd: list[str], workdir: Path, limits: Limits, *, cpus: int = 1, gpus: int = 0,
        log_name: str = "sandbox",
    ) -> SandboxResult:
        return sandbox.run(cmd, workdir, limits, log_name=log_name, unsafe_no_sandbox=self.unsafe_no_sandbox)


# ---------------------------------------------------------------- shipping a workdir


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime in ns) of every file under `root`, outside SKIP_DIRS.
    Folders are listed too, as (-1, 0), so that empty ones travel and never count as changed."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (-1, 0)
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return out


def pack(root: Path, files: Iterable[str]) -> bytes:
    """A gzip'd tar of `files` (paths relative to `root`); symlinks stay links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for rel in sorted(files):
            tar.add(root / rel, arcname=rel, recursive=False)
    return buf.getvalue()


def unpack(data: bytes, root: Path) -> list[str]:
    """Extract a `pack` archive into `root`. Members that would land outside it (absolute
    paths, `..`, links pointing out, devices) are skipped and returned by name."""
    refused: list[str] = []
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        safe = []
        for member in tar.getmembers():
            try:
                safe.append(tarfile.data_filter(member, str(root)))
            except tarfile.FilterError:
                refused.append(member.name)
        for member in safe:
            target = root / member.name
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                target.unlink()  # a changed file replaces the old one, even a link
            tar.extract(member, root, filter="fully_trusted", set_attrs=True)
    return refused


def _remove(root: Path, names: Iterable[str]) -> None:
    """Delete files the run deleted on the worker, never outside `root` or inside .git."""
    base = root.resolve()
    for rel in names:
        target = root / rel
        if SKIP_DIRS & set(Path(rel).parts) or not target.resolve().is_relative_to(base):
            continue
        if target.is_symlink() or target.is_file():
            target.unlink()  # folders stay: one emptied on the worker is harmless here


def _local_python(cmd: list[str]) -> list[str]:
    """The orchestrator's interpreter path may not exist on another node: use the worker's."""
    first = cmd[0]
    if os.path.isabs(first) and not os.path.exists(first) and Path(first).name.startswith("python"):
        return [sys.executable, *cmd[1:]]
    return cmd


Runner = Callable[..., SandboxResult]


def run_shipped(
    payload: bytes, cmd: list[str], limits: Limits, log_name: str, unsafe: bool | None, runner: Runner,
) -> tuple[SandboxResult, bytes, list[str], str]:
    """The worker's side: unpack, run in the sandbox, pack what changed. Returns
    (result, changed files as a `pack` archive, deleted files, the worker's folder)."""
    work = Path(tempfile.mkdtemp(prefix="ai-scientist-ray-"))
    try:
        unpack(payload, work)
        before = snapshot(work)
        result = runner(_local_python(cmd), work, limits, log_name=log_name, unsafe_no_sandbox=unsafe)
        after = snapshot(work)
        changed = [rel for rel, sig in after.items() if before.get(rel) != sig]
        deleted = [rel for rel in before if rel not in after]
        return result, pack(work, changed), deleted, str(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _lost(reason: str) -> SandboxResult:
    """The result of a run that never finished because Ray lost it (not the code's fault)."""
    return SandboxResult(
        exit_code=-1, timed_out=False, wall_s=0.0, peak_memory_mb=0.0, stdout_tail="", stderr_tail=reason,
        stdout_path="", stderr_path="", sandboxed=True, message=f"lost on the Ray cluster: {reason}",
    )


# ---------------------------------------------------------------- Ray


def import_ray() -> ray_module:
    try:
        import ray
    except ImportError:
        raise ToolMissing(RAY_MISSING) from None
    return ray


class RayExecutor:
    """Each run is a Ray task asking for `cpus` CPUs and `gpus` GPUs, on the cluster at
    `address` (None: the one in RAY_ADDRESS, else a new local one). Ray starts on the first
    run, so a run that never reaches the experiments never starts Ray.

    `runner` is what executes the command on the worker (default `agent.sandbox.run`, with
    the same signature). `init_kwargs` go to `ray.init` (e.g. num_cpus for a local cluster).
    `ship_code` sends this `agent` package to the workers (default: when joining a cluster
    by address, whose nodes may not have it installed)."""

    def __init__(
        self, address: str | None = None, *, runner: Runner | None = None, init_kwargs: dict[str, Any] | None = None,
        ship_code: bool | None = None, grace_s: float = 3600.0,
    ):
        self.ray = import_ray()
        self.address = address
        self.runner = runner or sandbox.run
        self.init_kwargs = init_kwargs or {}
        self.ship_code = address is not None if ship_code is None else ship_code
        self.grace_s = grace_s  # queueing and transfer time allowed beyond the run's own timeouts
        self._started_ray = False
        self._lock = threading.Lock()
        self._task: Any = None

    def _connect(self) -> None:
        with self._lock:
            if self._task is not None:
                return
            ray = self.ray
            if not ray.is_initialized():
                kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                              logging_level=logging.WARNING)
                if self.address is None and not os.environ.get("RAY_ADDRESS"):
                    kwargs["_node_ip_address"] = "127.0.0.1"  # a private local cluster stays on loopback
                if self.ship_code:
                    kwargs["runtime_env"] = {"py_modules": [str(Path(__file__).resolve().parents[1])]}
                kwargs.update(self.init_kwargs)
                try:
                    ray.init(address=self.address, **kwargs)
                except ConnectionError as e:
                    raise ConfigError(f"cannot reach the Ray cluster at {self.address}: {e}; "
                                      "check --ray-address (host:port of `ray start --head`)") from None
                self._started_ray = True
            self._task = ray.remote(run_shipped)

    def close(self) -> None:
        """Shut Ray down if this executor started it."""
        if self._started_ray and self.ray.is_initialized():
            self.ray.shutdown()
        self._started_ray, self._task = False, None

    def _check_fits(self, cpus: int, gpus: int) -> None:
        have = self.ray.cluster_resources()
        if cpus > have.get("CPU", 0) or gpus > have.get("GPU", 0):
            raise ConfigError(
                f"the Ray cluster has {have.get('CPU', 0):g} CPUs and {have.get('GPU', 0):g} GPUs, but one run "
                f"asks for {cpus} CPUs and {gpus} GPUs: add nodes, or use a scale that needs less"
            )

    def run(
        self, cmd: list[str], workdir: Path, limits: Limits, *, cpus: int = 1, gpus: int = 0,
        log_name: str = "sandbox",
    ) -> SandboxResult:
        self._connect()
        self._check_fits(cpus, gpus)
        workdir = Path(workdir)
        payload = pack(workdir, snapshot(workdir))
        if len(payload) > MAX_SHIP_BYTES:
            raise ConfigError(f"{workdir} is {len(payload) >> 20} MB compressed, too big to ship to Ray "
                              "workers; keep datasets and checkpoints out of the template folder")
        unsafe = True if sandbox.unsafe_default() else None  # the worker does not share our environment
        ray = self.ray
        ref = self._task.options(num_cpus=cpus, num_gpus=gpus, max_retries=RETRIES, retry_exceptions=False).remote(
            ray.put(payload), cmd, limits, log_name, unsafe, self.runner)
        wait_s = limits.timeout_s * (RETRIES + 1) + self.grace_s
        try:
            result, changed, deleted, remote_dir = ray.get(ref, timeout=wait_s)
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref, force=True)
            return _lost(f"no answer from the cluster within {wait_s:.0f} s")
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, AIScientistError):
                raise e.cause from None  # e.g. no bubblewrap on the worker: the user must fix that
            return _lost(f"the task raised {type(e.cause).__name__}: {e.cause}")
        except ray.exceptions.RayError as e:  # worker crashed, node died, object lost, ...
            log.warning("run %s lost on the Ray cluster after a retry: %s", log_name, type(e).__name__)
            return _lost(f"{type(e).__name__} (tried {RETRIES + 1} times)")
        refused = unpack(changed, workdir)
        if refused:
            log.warning("run %s: refused unsafe paths from the worker: %s", log_name, refused[:5])
        _remove(workdir, deleted)
        return result.model_copy(update={
            "stdout_path": result.stdout_path.replace(remote_dir, str(workdir.resolve()), 1),
            "stderr_path": result.stderr_path.replace(remote_dir, str(workdir.resolve()), 1),
        })


def make_executor(kind: str, ray_address: str | None = None) -> Executor:
    """`local` (default) or `ray`; a bad name or a missing Ray is a one-line UserError."""
    if kind == "local":
        if ray_address:
            raise ConfigError("--ray-address needs --executor ray")
        return LocalExecutor()
    if kind == "ray":
        return RayExecutor(ray_address)
    raise ConfigError(f"unknown executor {kind!r}: use local or ray")
