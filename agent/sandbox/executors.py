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

import contextlib
import io
import logging
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agent.errors import AIScientistError, ConfigError, ToolMissing
from agent.sandbox import files
from agent.sandbox import runner as sandbox
from agent.sandbox.limits import Limits, SandboxResult

if TYPE_CHECKING:
    import ray as ray_module

log = logging.getLogger(__name__)

RAY_MISSING = "Ray is not installed: pip install 'ai-scientist[ray]'"
SKIP_DIRS = frozenset({"__pycache__"})  # caches are rebuilt where they are needed
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

    def __init__(self, unsafe_no_sandbox: bool = False, audit_log: Path | None = None):
        self.unsafe_no_sandbox = unsafe_no_sandbox
        self.audit_log = audit_log

    def run(
        self, cmd: list[str], workdir: Path, limits: Limits, *, cpus: int = 1, gpus: int = 0,
        log_name: str = "sandbox", env: dict[str, str] | None = None, log_dir: Path | None = None,
        extra_ro: Sequence[Path] = (),
    ) -> SandboxResult:
        """Also takes the sandbox's `env`, `log_dir` and `extra_ro`, for tools that only run here
        (LaTeX, chktex)."""
        return sandbox.run(cmd, workdir, limits, env=env, extra_ro=extra_ro, log_dir=log_dir, log_name=log_name,
                           unsafe_no_sandbox=self.unsafe_no_sandbox, audit_log=self.audit_log)


# ---------------------------------------------------------------- shipping a workdir


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime in ns) of every file under `root`, outside SKIP_DIRS.
    Folders are listed too, as (-1, 0), so that empty ones travel and never count as changed.
    A link, a special file or an unlistable folder is an UnsafeFile (see files.walk)."""
    return {rel: (-1, 0) if stat.S_ISDIR(st.st_mode) else (st.st_size, st.st_mtime_ns)
            for rel, st in files.walk(root, SKIP_DIRS)}


def pack(root: Path, names: Iterable[str]) -> bytes:
    """A gzip'd tar of the folders and regular files `names` (relative to `root`), read through
    files, so a link or special file fails the pack instead of travelling."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for rel in sorted(names):
            kind = files.kind(root, rel)
            info = tarfile.TarInfo(rel)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "file":
                data = files.read_bytes(root, rel, limit=MAX_SHIP_BYTES)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
            elif kind is not None:
                raise files.UnsafeFile(rel, "a link or special file; only folders and regular files travel")
    return buf.getvalue()


def unpack(data: bytes, root: Path) -> list[str]:
    """Extract a `pack` archive into `root`, through files (no link in `root` is followed).
    Members that are not plain folders or regular files, or that would land outside `root`
    (`..`), are skipped and returned by name: the caller treats any as the run's failure."""
    refused: list[str] = []
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            try:
                member = tarfile.data_filter(member, str(root))
            except tarfile.FilterError:
                refused.append(member.name)
                continue
            if member.isdir():
                files.make_dirs(root, member.name)
            elif member.isreg() and member.size <= MAX_SHIP_BYTES:
                extracted = tar.extractfile(member)
                files.write_bytes(root, member.name, extracted.read() if extracted else b"")
            else:
                refused.append(member.name)
    return refused


def _remove(root: Path, names: Iterable[str]) -> None:
    """Delete files the run deleted on the worker (never a folder: one emptied there is harmless)."""
    for rel in names:
        with contextlib.suppress(files.UnsafeFile):
            if not SKIP_DIRS & set(Path(rel).parts) and files.kind(root, rel) == "file":
                files.remove(root, rel)


def _local_python(cmd: list[str]) -> list[str]:
    """The orchestrator's interpreter path may not exist on another node: use the worker's."""
    first = cmd[0]
    if os.path.isabs(first) and not os.path.exists(first) and Path(first).name.startswith("python"):
        return [sys.executable, *cmd[1:]]
    return cmd


Runner = Callable[..., SandboxResult]


def run_shipped(
    payload: bytes, cmd: list[str], limits: Limits, log_name: str, unsafe: bool, runner: Runner,
) -> tuple[SandboxResult, bytes, list[str], str]:
    """The worker's side: unpack, run in the sandbox, pack what changed. Returns
    (result, changed files as a `pack` archive, deleted files, the worker's folder)."""
    work = Path(tempfile.mkdtemp(prefix="ai-scientist-ray-"))
    try:
        unpack(payload, work)
        before = snapshot(work)
        result = runner(_local_python(cmd), work, limits, log_name=log_name, unsafe_no_sandbox=unsafe)
        try:
            after = snapshot(work)
            changed = [rel for rel, sig in after.items() if before.get(rel) != sig]
            return result, pack(work, changed), [rel for rel in before if rel not in after], str(work)
        except files.UnsafeFile as e:  # the run's own scan should have repaired this; never ship it
            return result.model_copy(update={"violation": str(e)}), pack(work, []), [], str(work)
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
        ship_code: bool | None = None, grace_s: float = 3600.0, unsafe_no_sandbox: bool = False,
        audit_log: Path | None = None,
    ):
        self.ray = import_ray()
        self.unsafe_no_sandbox, self.audit_log = unsafe_no_sandbox, audit_log
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
        try:
            payload = pack(workdir, snapshot(workdir))
        except files.UnsafeFile as e:
            return _lost(str(e)).model_copy(update={"violation": e.reason, "message": f"not shipped: {e}"})
        if len(payload) > MAX_SHIP_BYTES:
            raise ConfigError(f"{workdir} is {len(payload) >> 20} MB compressed, too big to ship to Ray "
                              "workers; keep datasets and checkpoints out of the template folder")
        ray = self.ray
        ref = self._task.options(num_cpus=cpus, num_gpus=gpus, max_retries=RETRIES, retry_exceptions=False).remote(
            ray.put(payload), cmd, limits, log_name, self.unsafe_no_sandbox, self.runner)
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
        _remove(workdir, deleted)
        if refused:  # a worker that ships links or devices back is not to be trusted with this run
            result = result.model_copy(update={"violation": f"the worker sent back unsafe entries: {refused[:5]}"})
        try:
            files.scan(workdir)  # unpacking must not have left anything a run may not leave
        except files.UnsafeFile as e:
            result = result.model_copy(update={"violation": e.reason})
        if self.audit_log is not None:
            sandbox.audit(self.audit_log, log_name, cmd, result)
        return result.model_copy(update={
            "shared": True,  # other tasks may share the node, and nodes differ: its times are not comparable
            "stdout_path": result.stdout_path.replace(remote_dir, str(workdir.resolve()), 1),
            "stderr_path": result.stderr_path.replace(remote_dir, str(workdir.resolve()), 1),
        })


def make_executor(kind: str, ray_address: str | None = None, *, unsafe_no_sandbox: bool = False,
                  audit_log: Path | None = None) -> Executor:
    """`local` (default) or `ray`; a bad name or a missing Ray is a one-line UserError."""
    if kind == "local":
        if ray_address:
            raise ConfigError("--ray-address needs --executor ray")
        return LocalExecutor(unsafe_no_sandbox, audit_log)
    if kind == "ray":
        return RayExecutor(ray_address, unsafe_no_sandbox=unsafe_no_sandbox, audit_log=audit_log)
    raise ConfigError(f"unknown executor {kind!r}: use local or ray")
