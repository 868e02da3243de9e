"""What the pipeline needs from the sandbox still works inside it: the venv's Python with torch and
matplotlib under the default limits, pdflatex and latexmk, logs and their tails; and the refusals
when it cannot sandbox."""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent.errors import ConfigError, ToolMissing
from agent.sandbox import bwrap
from agent.sandbox import runner as sandbox
from agent.sandbox.limits import Limits


def py(code: str) -> list[str]:
    return [sandbox.python_executable(), "-c", code]


def test_output_goes_to_log_files_and_tails(tmp_path: Path):
    logs = tmp_path / "logs"
    code = "import sys\nfor i in range(5000): print('line', i)\nraise ValueError('the bug')"
    result = sandbox.run(py(code), tmp_path, log_dir=logs, log_name="run_1")
    assert result.exit_code == 1 and result.killed_for is None and not result.ok
    assert result.stdout_path == str(logs / "run_1.stdout.log")
    assert Path(result.stdout_path).read_text().count("\n") == 5000
    assert result.stdout_tail.endswith("line 4999\n") and len(result.stdout_tail) < 20_000
    tail = result.error_tail(lines=2)
    assert tail.splitlines() == [
        "exit code 1",
        '  File "<string>", line 3, in <module>',
        "ValueError: the bug",
    ]


def test_runs_that_overlap_are_marked_as_having_shared_the_machine(tmp_path: Path):
    long_dir, short_dir = tmp_path / "long", tmp_path / "short"
    long_dir.mkdir(), short_dir.mkdir()
    waits = ("import os, time\nprint('started', flush=True)\nt = time.time()\n"
             "while not os.path.exists('go') and time.time() - t < 20: time.sleep(0.05)")
    with ThreadPoolExecutor(1) as pool:
        long_run = pool.submit(sandbox.run, py(waits), long_dir, log_name="long")
        log = long_dir / "long.stdout.log"
        while "started" not in (log.read_text() if log.exists() else "") and not long_run.done():
            time.sleep(0.05)
        beside = sandbox.run(py("print(1)"), short_dir)
        (long_dir / "go").write_text("")  # only now may the long run end
        first = long_run.result()
    assert first.ok and beside.ok and first.shared and beside.shared
    alone = sandbox.run(py("print(1)"), short_dir)
    assert alone.ok and not alone.shared


def test_missing_bwrap_raises_tool_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match=r"sudo apt-get install bubblewrap.*--unsafe-no-sandbox"):
        sandbox.run(["true"], tmp_path)


def test_unsafe_mode_is_an_explicit_argument(tmp_path: Path, capfd):
    result = sandbox.run(["true"], tmp_path, unsafe_no_sandbox=True)
    assert result.ok and not result.sandboxed
    assert "WITHOUT a sandbox" in capfd.readouterr().err


def test_work_folders_that_would_open_the_machine_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    (tmp_path / "me").mkdir()
    for bad in (tmp_path, Path("/"), Path("/tmp"), Path("/usr/lib")):
        with pytest.raises(ConfigError, match="is or contains a system or home folder"):
            sandbox.run(["true"], bad)
    with pytest.raises(ConfigError, match="not a directory"):
        sandbox.run(["true"], tmp_path / "missing")


def test_extra_read_only_paths_are_visible_but_not_writable(tmp_path: Path):
    data = tmp_path / "dataset"
    data.mkdir()
    (data / "train.txt").write_text("tokens")
    work = tmp_path / "work"
    work.mkdir()
    code = (
        "import sys\nprint(open(sys.argv[1] + '/train.txt').read())\n"
        "try:\n    open(sys.argv[1] + '/new.txt', 'w')\nexcept OSError as e:\n    print(e.strerror)"
    )
    result = sandbox.run([*py(code), str(data)], work, extra_ro=[data])
    assert result.stdout_tail.splitlines() == ["tokens", "Read-only file system"]


def test_a_read_only_folder_inside_the_work_folder_stays_read_only(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.txt").write_text("tokens")
    code = "try:\n    open('data/train.txt', 'w')\nexcept OSError as e:\n    print(e.strerror)\nopen('out.txt', 'w')"
    result = sandbox.run(py(code), tmp_path, extra_ro=[tmp_path / "data"])
    assert result.ok and result.stdout_tail == "Read-only file system\n"
    assert (tmp_path / "data" / "train.txt").read_text() == "tokens" and (tmp_path / "out.txt").exists()


@pytest.mark.slow
def test_torch_trains_under_the_default_limits(tmp_path: Path):
    code = (
        "import torch\n"
        "m = torch.nn.Linear(8, 1); opt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "x = torch.randn(256, 8); y = x.sum(1, keepdim=True)\n"
        "for _ in range(50):\n"
        "    opt.zero_grad(); loss = ((m(x) - y) ** 2).mean(); loss.backward(); opt.step()\n"
        "print(f'{loss.item():.4f}')"
    )
    result = sandbox.run(py(code), tmp_path, Limits(timeout_s=300))
    assert result.ok, result.error_tail()
    assert float(result.stdout_tail) < 1.0


@pytest.mark.slow
def test_matplotlib_writes_a_figure(tmp_path: Path):
    code = (
        "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0]); plt.title('loss'); plt.savefig('fig.png')"
    )
    result = sandbox.run(py(code), tmp_path, Limits(timeout_s=300))
    assert result.ok, result.error_tail()
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"


TEX = r"""\documentclass{article}
\usepackage{amsmath,graphicx,booktabs}
\begin{document}
Hello from the sandbox: $\sum_i x_i^2$.
\end{document}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "cmd",
    [
        ["pdflatex", "-interaction=nonstopmode", "-no-shell-escape", "paper.tex"],
        ["latexmk", "-pdf", "-norc", "-interaction=nonstopmode", "-no-shell-escape", "paper.tex"],
    ],
    ids=["pdflatex", "latexmk"],
)
def test_latex_compiles_inside(tmp_path: Path, cmd: list[str]):
    if shutil.which(cmd[0]) is None:
        pytest.skip(f"{cmd[0]} is not installed")
    (tmp_path / "paper.tex").write_text(TEX)
    result = sandbox.run(cmd, tmp_path, Limits(timeout_s=300, memory_mb=2048))
    assert result.ok, result.error_tail()
    assert (tmp_path / "paper.pdf").read_bytes()[:5] == b"%PDF-"


LIMITS_INSIDE = """
import glob, json, os, resource
print(json.dumps({"devices": sorted(glob.glob(os.environ["GLOB"])),
                  "as": resource.getrlimit(resource.RLIMIT_AS)[0]}))
"""


def test_gpu_devices_pass_through_and_lift_the_address_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A stand-in for /dev/nvidia0: a character device (a copy of /dev/null) at a path of ours."""
    fake = tmp_path / "dev" / "nvidia0"
    fake.parent.mkdir()
    try:
        os.mknod(fake, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    pattern = str(fake.parent / "nvidia*")
    monkeypatch.setattr(bwrap, "GPU_DEVICE_GLOBS", (pattern,))
    work = tmp_path / "work"
    work.mkdir()
    seen = {}
    for gpus in (True, False):
        result = sandbox.run(py(LIMITS_INSIDE), work, Limits(gpus=gpus), env={"GLOB": pattern})
        assert result.ok, result.error_tail()
        seen[gpus] = json.loads(result.stdout_tail)
    assert seen[True] == {"devices": [str(fake)], "as": -1}  # CUDA maps far more than it uses
    assert seen[False] == {"devices": [], "as": 4096 * 2**20}
