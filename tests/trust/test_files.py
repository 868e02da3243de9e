"""agent.sandbox.files and agent.safe_json against what a run can leave: every refusal is a clear
UnsafeFile, never a read through a link, a hang on a FIFO, a crash on bytes or a RecursionError."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from agent import safe_json
from agent.sandbox import files
from agent.sandbox.files import UnsafeFile


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (tmp_path / "secret").write_text("SECRET")
    (work / "sub" / "ok.json").write_text('{"a": [1, 2.5]}')
    return work


@pytest.mark.parametrize("plant, rel", [
    (lambda w: (w / "link").symlink_to(w.parent / "secret"), "link"),
    (lambda w: (w / "dirlink").symlink_to(w.parent), "dirlink/secret"),
    (lambda w: (w / "sub" / "inner").symlink_to(w / "sub" / "ok.json"), "sub/inner"),  # even inside
    (lambda w: os.mkfifo(w / "fifo"), "fifo"),
    (lambda w: None, "../secret"),
    (lambda w: None, "/etc/passwd"),
    (lambda w: None, "sub/../../secret"),
])
def test_reads_never_follow_links_or_open_special_files(tree: Path, plant, rel: str) -> None:
    plant(tree)
    done = threading.Event()

    def read() -> None:
        with pytest.raises(UnsafeFile):
            files.read_bytes(tree, rel)
        done.set()

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(10)
    assert done.is_set(), f"reading {rel} hung or did not refuse"


def test_sizes_bytes_and_json_are_bounded(tree: Path) -> None:
    (tree / "big").write_bytes(b"x" * 2000)
    with pytest.raises(UnsafeFile, match="more than the 1000 allowed"):
        files.read_bytes(tree, "big", limit=1000)
    (tree / "latin").write_bytes(b"caf\xe9 \xff")
    assert files.read_text(tree, "latin") == "caf\ufffd \ufffd"
    (tree / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UnsafeFile, match="nested 100000 levels deep"):
        files.read_json(tree, "deep.json")
    (tree / "nan.json").write_text('{"loss": NaN}')
    with pytest.raises(UnsafeFile, match="NaN is not a JSON number"):
        files.read_json(tree, "nan.json")
    (tree / "bytes.json").write_bytes(b'{"a": "\xff"}')
    with pytest.raises(UnsafeFile, match="not UTF-8"):
        files.read_json(tree, "bytes.json")
    assert files.read_json(tree, "sub/ok.json") == {"a": [1, 2.5]}
    assert safe_json.nesting(b'{"s": "[[[[["}') == 1  # brackets in strings do not count


def test_writes_replace_a_planted_link_instead_of_following_it(tree: Path) -> None:
    (tree / "notes.md").symlink_to(tree.parent / "secret")
    files.write_text(tree, "notes.md", "ours")
    assert (tree.parent / "secret").read_text() == "SECRET"
    assert not (tree / "notes.md").is_symlink() and (tree / "notes.md").read_text() == "ours"
    (tree / "paper").symlink_to(tree.parent)
    with pytest.raises(UnsafeFile):
        files.write_text(tree, "paper/paper.tex", "x")
    with pytest.raises(UnsafeFile):
        files.make_dirs(tree, "paper")
    assert not (tree.parent / "paper.tex").exists()


def test_copies_refuse_links_special_files_and_hard_links(tree: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    assert files.copy_tree(tree, ".", dest, "copy") == 1
    (tree / "sub" / "key").symlink_to(tmp_path / "secret")
    with pytest.raises(UnsafeFile, match="link or special file"):
        files.copy_tree(tree, ".", dest, "again")
    (tree / "sub" / "key").unlink()
    os.link(tree / "sub" / "ok.json", tree / "hard")
    with pytest.raises(UnsafeFile, match="hard-linked"):
        files.copy_file(tree, "hard", dest, "hard")


def test_scan_repairs_links_fifos_setuid_and_fails_on_git_metadata(tree: Path) -> None:
    (tree / "loop_a").symlink_to("loop_b")
    (tree / "loop_b").symlink_to("loop_a")
    os.mkfifo(tree / "sub" / "pipe")
    (tree / "suid").write_bytes(b"#!/bin/sh\n")
    os.chmod(tree / "suid", 0o4755)
    report = files.scan(tree)
    assert sorted(report.removed) == ["loop_a", "loop_b", "sub/pipe"] and report.cleared == ["suid"]
    assert not (tree / "suid").stat().st_mode & stat.S_ISUID
    (tree / "sub" / ".git" / "hooks").mkdir(parents=True)
    (tree / "sub" / ".git" / "hooks" / "post-commit").write_text("#!/bin/sh\ntouch /tmp/x\n")
    with pytest.raises(UnsafeFile, match="git metadata"):
        files.scan(tree)
    assert not (tree / "sub" / ".git").exists(), "removed, so a later command cannot meet it"


@pytest.mark.skipif(os.geteuid() == 0, reason="root lists any folder; the unprivileged pass checks this")
def test_scan_fails_closed_on_a_folder_it_cannot_list(tree: Path) -> None:
    """Unlistable to its owner: a scan that skipped it would miss the link inside."""
    (tree / "hidden").mkdir()
    (tree / "hidden" / "notes.md").symlink_to(tree.parent / "secret")
    os.chmod(tree / "hidden", 0o300)
    with pytest.raises(UnsafeFile, match="unlistable"):
        files.scan(tree)
    assert not (tree / "hidden" / "notes.md").is_symlink(), "made listable again and repaired"
