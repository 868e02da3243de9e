"""Hostile scripts that try to exhaust the machine: a fork bomb, memory, disk, time. Each must be
stopped by its limit, leave no process behind and write nothing outside its work folder."""

from __future__ import annotations

from agent.sandbox.limits import Limits
from tests.sandbox.hostile import Site, assert_contained, marker, processes_with, run_script

FORK_BOMB = """
import os, sys, time
log = os.open("forks.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
while True:  # every process forks forever; each successful fork leaves one byte
    try:
        if os.fork() == 0:
            os.write(log, b"x")
    except OSError:
        time.sleep(0.001)
"""


def test_fork_bomb_is_capped_and_killed(site: Site):
    before = site.snapshot()
    mark = marker()
    limits = Limits(timeout_s=60, max_procs=40, memory_mb=1024)
    result = run_script(site, FORK_BOMB, limits, mark)
    assert result.killed_for == "procs" and not result.timed_out and not result.ok
    forks = (site.workdir / "forks.log").stat().st_size
    assert 0 < forks <= limits.max_procs  # the kernel refused the rest
    assert_contained(site, before, mark)


ALLOCATE = """
import sys
blocks = []
for _ in range(int(sys.argv[2])):
    blocks.append(b"x" * 2**26)  # 64 MB, every page touched
open("survived.txt", "w").write("allocated it all")
"""


def test_allocating_past_the_memory_limit_is_stopped(site: Site):
    before = site.snapshot()
    mark = marker()
    result = run_script(site, ALLOCATE, Limits(timeout_s=60, memory_mb=512), mark, "32")  # 2 GB
    assert result.killed_for == "memory" and not result.ok
    assert "MemoryError" in result.error_tail()
    assert not (site.workdir / "survived.txt").exists()
    assert_contained(site, before, mark)


MANY_PROCESSES = """
import os, sys, time
for _ in range(6):  # each child stays under the per-process limit; together they are over it
    if os.fork() == 0:
        block = b"x" * (200 * 2**20)
        time.sleep(60)
        os._exit(0)
time.sleep(60)
open("survived.txt", "w").write("slept it out")
"""


def test_memory_of_all_processes_together_is_limited(site: Site):
    before = site.snapshot()
    mark = marker()
    result = run_script(site, MANY_PROCESSES, Limits(timeout_s=50, memory_mb=512), mark)
    assert result.killed_for == "memory" and not result.timed_out
    assert result.peak_memory_mb > 512
    assert not (site.workdir / "survived.txt").exists()
    assert_contained(site, before, mark)


FILL_DISK = """
import os, sys, time
chunk = os.urandom(2**20)
for i in range(int(sys.argv[2])):  # many 1 MB files, so only the folder quota can stop it
    with open(f"fill_{i:04d}.bin", "wb") as f:
        f.write(chunk)
    time.sleep(0.002)
open("done.txt", "w").write("wrote it all")
"""


def test_filling_the_disk_is_stopped_while_running(site: Site):
    before = site.snapshot()
    mark = marker()
    result = run_script(site, FILL_DISK, Limits(timeout_s=120, disk_mb=20), mark, "1000")
    assert result.killed_for == "disk" and not result.timed_out and not result.ok
    written = sum(p.stat().st_size for p in site.workdir.glob("fill_*.bin"))
    assert written < 1000 * 2**20 and not (site.workdir / "done.txt").exists()
    assert_contained(site, before, mark)


def test_a_burst_past_the_quota_between_two_looks_still_counts(site: Site):
    result = run_script(
        site, FILL_DISK.replace("time.sleep(0.002)", "pass"), Limits(disk_mb=5), "x", "30"
    )
    assert result.killed_for == "disk" and not result.ok


BIG_FILE = """
import sys
report = []
for target in ("big.bin", "/tmp/big.bin", "/dev/shm/big.bin"):
    try:
        with open(target, "wb") as f:
            for _ in range(int(sys.argv[2])):
                f.write(b"x" * 2**20)
        report.append(f"{target}: WROTE")
    except OSError as e:
        report.append(f"{target}: {e.strerror}")
print("\\n".join(report))
"""


def test_one_huge_file_and_the_private_tmp_are_capped(site: Site):
    before = site.snapshot()
    limits = Limits(timeout_s=60, disk_mb=30, file_size_mb=10)
    result = run_script(site, BIG_FILE, limits, marker(), "50")
    lines = result.stdout_tail.splitlines()
    assert lines[0] == "big.bin: File too large"  # RLIMIT_FSIZE
    assert lines[1:] == ["/tmp/big.bin: File too large", "/dev/shm/big.bin: File too large"]
    assert (site.workdir / "big.bin").stat().st_size <= 10 * 2**20
    assert_contained(site, before)


def test_private_tmp_has_a_size(site: Site):
    limits = Limits(timeout_s=60, disk_mb=20, file_size_mb=100)
    result = run_script(site, BIG_FILE.replace('"big.bin", ', ""), limits, marker(), "50")
    assert result.stdout_tail.splitlines() == [
        "/tmp/big.bin: No space left on device",
        "/dev/shm/big.bin: No space left on device",
    ]


SLEEPER = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # polite termination would not work
open("started.txt", "w").write("up")
time.sleep(120)
open("woke.txt", "w").write("outlived the timeout")
"""


def test_sleeping_past_the_timeout_is_killed(site: Site):
    before = site.snapshot()
    mark = marker()
    result = run_script(site, SLEEPER, Limits(timeout_s=1.5), mark)
    assert result.timed_out and result.killed_for == "timeout" and result.exit_code == 137
    assert "timeout of 1.5 s" in result.error_tail()
    assert (site.workdir / "started.txt").exists() and not (site.workdir / "woke.txt").exists()
    assert processes_with(mark) == []
    assert_contained(site, before, mark)


SPIN = """
while True:
    pass
"""


def test_cpu_time_is_limited_per_process(site: Site):
    result = run_script(site, SPIN, Limits(timeout_s=60, cpu_s=1), marker())
    assert result.killed_for == "timeout" and not result.timed_out  # CPU time, not wall clock
    assert result.exit_code == 128 + 24  # SIGXCPU
    assert "CPU time" in result.message
