"""Every read, write and copy the orchestrator makes of a file a sandboxed run could have touched.

A folder that sandboxed code ran in (an idea's work tree, its paper folder, the scratch folder of
`template check`, a Ray worker's unpacked copy) is hostile input. The code may have left a
symlink to ~/.ssh where a result should be, a FIFO where a log should be, a 10 GB "figure", a
folder it made unlistable, a `.git` of its own, or a setuid binary. Hence, here:

- A path is walked one component at a time from a directory descriptor, each component opened
  with O_NOFOLLOW: no symlink is followed anywhere in it, and `..`, `.` or an absolute path is
  refused outright (so nothing resolves outside the folder).
- Only regular files are read or copied, opened with O_NONBLOCK (a FIFO never blocks us) and
  checked with fstat; sizes are capped while reading, not only before.
- A write makes a new file and renames it over the name, so a link planted at that name is
  replaced, never written through; a folder at that name is refused.
- Copies take regular files and folders only; a link, a special file or a hard-linked file
  makes the copy fail, in either direction.
- `scan` walks a folder by descriptors after every run and fails closed: a folder it cannot
  list, too deep or too big a tree, or a `.git` anywhere is an error, never a skip. It clears
  setuid/setgid bits and removes links and special files, and says what it removed.

Every refusal raises `UnsafeFile`, which the pipeline turns into that run's failure (fed to the
brain's fix loop), never a crash, a hang or a write outside the folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from agent import safe_json
from agent.errors import AIScientistError

MB = 2**20
TEXT_LIMIT = 4 * MB  # logs, notes, code, LaTeX sources
JSON_LIMIT = 16 * MB  # final_info.json and friends
FILE_LIMIT = 64 * MB  # figures, PDFs
MAX_ENTRIES = 200_000  # a tree with more is a denial of service, not an experiment
MAX_DEPTH = 64
_SETID = stat.S_ISUID | stat.S_ISGID
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class UnsafeFile(AIScientistError):
    """A file or folder that a sandboxed run left breaks the rules: a link, a special file, an
    unlistable folder, a size or depth past its cap. The run that left it fails with this reason."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


def _parts(rel: str | PurePosixPath) -> list[str]:
    parts = PurePosixPath(rel).parts
    if not parts or parts[0] == "/" or any(p in ("..", ".") for p in str(rel).split("/") if p):
        raise UnsafeFile(str(rel), "not a plain relative path inside the folder")
    return [p for p in parts if p != "."]


def _open_root(root: Path) -> int:
    """The folder itself is ours (the orchestrator made it), but it must still be a real folder."""
    try:
        return os.open(root, _DIR)
    except OSError as e:
        raise UnsafeFile(str(root), f"cannot open the folder ({_why(e)})") from None


def _why(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "it is a symlink"
    if e.errno == errno.ENOTDIR:
        return "a path component is a symlink or not a folder"
    if e.errno == errno.ENXIO:
        return "it is a FIFO or socket"
    return e.strerror or str(e)


@contextlib.contextmanager
def _dir_of(root: Path, rel: str | PurePosixPath, *, create: bool = False) -> Iterator[tuple[int, str]]:
    """(descriptor of the folder holding `rel`, the last component), walking without following."""
    parts = _parts(rel)
    fd = _open_root(root)
    try:
        for i, name in enumerate(parts[:-1]):
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=fd)
            try:
                nxt = os.open(name, _DIR, dir_fd=fd)
            except FileNotFoundError:
                raise
            except OSError as e:
                raise UnsafeFile("/".join(parts[: i + 1]), _why(e)) from None
            os.close(fd)
            fd = nxt
        yield fd, parts[-1]
    finally:
        os.close(fd)


@contextlib.contextmanager
def _open_file(root: Path, rel: str | PurePosixPath, limit: int) -> Iterator[tuple[int, os.stat_result]]:
    with _dir_of(root, rel) as (dfd, name):
        try:
            fd = os.open(name, os.O_RDONLY | _FILE, dir_fd=dfd)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise UnsafeFile(str(rel), _why(e)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(str(rel), "not a regular file")
        if st.st_size > limit:
            raise UnsafeFile(str(rel), f"{st.st_size} bytes, more than the {limit} allowed")
        yield fd, st
    finally:
        os.close(fd)


def _read_fd(fd: int, limit: int, rel: str | PurePosixPath) -> bytes:
    chunks, size = [], 0
    while chunk := os.read(fd, min(MB, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise UnsafeFile(str(rel), f"grew past the {limit} bytes allowed while being read")
    return b"".join(chunks)


# ---------------------------------------------------------------- reading


def read_bytes(root: Path, rel: str | PurePosixPath, *, limit: int = FILE_LIMIT) -> bytes:
    """The bytes of a regular file under `root`; FileNotFoundError if there is none."""
    with _open_file(root, rel, limit) as (fd, _):
        return _read_fd(fd, limit, rel)


def read_text(root: Path, rel: str | PurePosixPath, *, limit: int = TEXT_LIMIT) -> str:
    """A text file; bytes that are not UTF-8 become U+FFFD rather than an error."""
    return read_bytes(root, rel, limit=limit).decode("utf-8", errors="replace")


def read_json(root: Path, rel: str | PurePosixPath, *, limit: int = JSON_LIMIT,
              depth: int = safe_json.MAX_DEPTH) -> Any:
    """A JSON file, parsed with bounds (see `agent.safe_json`); UnsafeFile if it is not JSON."""
    data = read_bytes(root, rel, limit=limit)
    try:
        return safe_json.loads(data, max_bytes=limit, max_depth=depth, what=str(rel))
    except ValueError as e:
        raise UnsafeFile(str(rel), str(e).removeprefix(f"{rel}: ")) from None


def kind(root: Path, rel: str | PurePosixPath) -> str | None:
    """'file', 'dir', 'link' or 'other' for what is at `rel` (never following it), None if nothing."""
    try:
        with _dir_of(root, rel) as (dfd, name):
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except (FileNotFoundError, UnsafeFile):
        return None
    if stat.S_ISLNK(st.st_mode):
        return "link"
    return "file" if stat.S_ISREG(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) else "other"


def is_file(root: Path, rel: str | PurePosixPath) -> bool:
    return kind(root, rel) == "file"


def list_files(root: Path, rel: str | PurePosixPath = ".", suffixes: tuple[str, ...] = ()) -> list[str]:
    """Names of the regular files directly in folder `rel` (sorted), optionally by suffix."""
    names = []
    with _open_dir(root, rel) as fd, os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and (not suffixes or entry.name.lower().endswith(suffixes)):
                names.append(entry.name)
    return sorted(names)


def list_dirs(root: Path, rel: str | PurePosixPath = ".") -> list[str]:
    """Names of the folders directly in folder `rel` (sorted); links to folders are not folders."""
    with _open_dir(root, rel) as fd, os.scandir(fd) as entries:
        return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))


@contextlib.contextmanager
def _open_dir(root: Path, rel: str | PurePosixPath) -> Iterator[int]:
    if str(rel) in (".", ""):
        fd = _open_root(root)
    else:
        with _dir_of(root, rel) as (dfd, name):
            try:
                fd = os.open(name, _DIR, dir_fd=dfd)
            except OSError as e:
                raise UnsafeFile(str(rel), _why(e)) from None
    try:
        yield fd
    finally:
        os.close(fd)


# ---------------------------------------------------------------- writing


def write_bytes(root: Path, rel: str | PurePosixPath, data: bytes, *, mode: int = 0o644) -> None:
    """Replace `rel` whole with `data` (a new file renamed over the name; parents are created)."""
    with _dir_of(root, rel, create=True) as (dfd, name):
        tmp = f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE, mode, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb", closefd=False) as f:
                f.write(data)
            os.close(fd)
            fd = -1
            try:
                os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except IsADirectoryError:
                raise UnsafeFile(str(rel), "a folder is in the way") from None
        finally:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dfd)


def write_text(root: Path, rel: str | PurePosixPath, text: str) -> None:
    write_bytes(root, rel, text.encode())


def make_dirs(root: Path, rel: str | PurePosixPath) -> None:
    """Create folder `rel` and its parents; refuse a link or file in the way."""
    with _dir_of(root, PurePosixPath(rel) / "x", create=True):
        pass


def remove(root: Path, rel: str | PurePosixPath) -> None:
    """Delete a file, link or whole folder at `rel` without following anything; no error if absent."""
    try:
        with _dir_of(root, rel) as (dfd, name):
            remove_at(dfd, name, os.stat(name, dir_fd=dfd, follow_symlinks=False))
    except FileNotFoundError:
        return


def _make_listable(dfd: int, name: str) -> None:
    """A run may have left folders without read or search permission: give them back (as the
    owner, or as root) so that they can be removed."""
    with contextlib.suppress(OSError):
        os.chmod(name, 0o700, dir_fd=dfd)
    with contextlib.suppress(OSError):
        fd = os.open(name, _DIR, dir_fd=dfd)
        try:
            with os.scandir(fd) as entries:
                subdirs = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
            for sub in subdirs:
                _make_listable(fd, sub)
        finally:
            os.close(fd)


def walk(root: Path, skip: frozenset[str] = frozenset()) -> list[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every folder and regular file under `root`, parents first,
    leaving out folders named in `skip`. A link, a special file or a folder it cannot list is
    an UnsafeFile: a caller that ships or copies the tree must see all of it, and only that."""
    out: list[tuple[str, os.stat_result]] = []
    with _open_dir(root, ".") as fd:
        _walk(fd, PurePosixPath(), skip, out, 0)
    return out


def _walk(fd: int, rel: PurePosixPath, skip: frozenset[str], out: list, depth: int) -> None:
    if depth > MAX_DEPTH or len(out) > MAX_ENTRIES:
        raise UnsafeFile(str(rel), "too deep or too many entries")
    for name, st in _entries(fd, rel):
        here = rel / name
        if stat.S_ISDIR(st.st_mode):
            if name in skip:
                continue
            out.append((str(here), st))
            try:
                sub = os.open(name, _DIR, dir_fd=fd)
            except OSError as e:
                raise UnsafeFile(str(here), f"cannot open the folder ({_why(e)})") from None
            try:
                _walk(sub, here, skip, out, depth + 1)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            out.append((str(here), st))
        else:
            raise UnsafeFile(str(here), "a link or special file")


# ---------------------------------------------------------------- copying


@dataclass
class _Budget:
    files: int
    bytes: int


def copy_file(src_root: Path, rel: str | PurePosixPath, dst_root: Path, dst_rel: str | PurePosixPath | None = None,
              *, limit: int = FILE_LIMIT) -> None:
    """Copy one regular, singly-linked file from under `src_root` to under `dst_root`."""
    with _open_file(src_root, rel, limit) as (fd, st):
        if st.st_nlink > 1:
            raise UnsafeFile(str(rel), "a hard-linked file")
        data = _read_fd(fd, limit, rel)
    write_bytes(dst_root, dst_rel if dst_rel is not None else rel, data, mode=stat.S_IMODE(st.st_mode) & 0o755)


def copy_tree(src_root: Path, rel: str | PurePosixPath, dst_root: Path, dst_rel: str | PurePosixPath | None = None,
              *, max_files: int = 10_000, max_bytes: int = 1024 * MB) -> int:
    """Copy folder `rel` (regular files and folders only) to `dst_rel` under `dst_root`; return
    the number of files. A link, special file or hard link anywhere fails the whole copy."""
    dst_rel = dst_rel if dst_rel is not None else rel
    dst_root.mkdir(parents=True, exist_ok=True)  # the destination's own path is the caller's
    make_dirs(dst_root, dst_rel)
    budget = _Budget(max_files, max_bytes)
    with _open_dir(src_root, rel) as fd:
        return _copy_dir(fd, PurePosixPath(rel), dst_root, PurePosixPath(dst_rel), budget, 0)


def _copy_dir(fd: int, rel: PurePosixPath, dst_root: Path, dst: PurePosixPath, budget: _Budget, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise UnsafeFile(str(rel), f"nested deeper than {MAX_DEPTH} folders")
    copied = 0
    for entry, st in _entries(fd, rel):
        here = rel / entry
        if stat.S_ISDIR(st.st_mode):
            make_dirs(dst_root, dst / entry)
            sub = os.open(entry, _DIR, dir_fd=fd)
            try:
                copied += _copy_dir(sub, here, dst_root, dst / entry, budget, depth + 1)
            finally:
                os.close(sub)
            continue
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(str(here), "a link or special file; copies take regular files only")
        if st.st_nlink > 1:
            raise UnsafeFile(str(here), "a hard-linked file")
        budget.files -= 1
        budget.bytes -= st.st_size
        if budget.files < 0 or budget.bytes < 0:
            raise UnsafeFile(str(rel), "too many files or bytes to copy")
        ffd = os.open(entry, os.O_RDONLY | _FILE, dir_fd=fd)
        try:
            if not stat.S_ISREG(os.fstat(ffd).st_mode):
                raise UnsafeFile(str(here), "not a regular file")
            data = _read_fd(ffd, st.st_size, here)
        finally:
            os.close(ffd)
        write_bytes(dst_root, dst / entry, data, mode=stat.S_IMODE(st.st_mode) & 0o755)
        copied += 1
    return copied


def _entries(fd: int, rel: PurePosixPath) -> list[tuple[str, os.stat_result]]:
    """(name, lstat) of a folder's entries, sorted; an unlistable folder is an error."""
    try:
        with os.scandir(fd) as it:
            names = sorted(e.name for e in it)
    except OSError as e:
        raise UnsafeFile(str(rel) or ".", f"cannot list the folder ({_why(e)})") from None
    out = []
    for name in names:
        try:
            out.append((name, os.stat(name, dir_fd=fd, follow_symlinks=False)))
        except FileNotFoundError:
            continue
    return out


# ---------------------------------------------------------------- after every run


@dataclass
class ScanReport:
    """What `scan` found and repaired in a folder."""

    files: int = 0
    removed: list[str] = field(default_factory=list)  # links and special files, deleted
    cleared: list[str] = field(default_factory=list)  # files whose setuid/setgid bits were cleared
    problems: list[str] = field(default_factory=list)  # what makes the run a failure

    def summary(self) -> str:
        parts = list(self.problems)
        if self.removed:
            parts.append(f"removed {len(self.removed)} link(s) or special file(s): {', '.join(self.removed[:20])}")
        if self.cleared:
            parts.append(f"cleared setuid/setgid bits on {', '.join(self.cleared[:5])}")
        return "; ".join(parts)


def scan(root: Path, *, owner: tuple[int, int] | None = None) -> ScanReport:
    """Walk all of `root` by descriptors and repair it: remove links and special files, clear
    setuid/setgid bits, make unlistable folders listable again, delete any `.git`, and with
    `owner` (uid, gid) give every entry to that owner. Then raise UnsafeFile if it found what a
    run may not leave (an unlistable folder, git metadata, a tree past its caps)."""
    report = ScanReport()
    fd = _open_root(root)
    try:
        if owner is not None:
            os.chown(fd, *owner)
        _scan_dir(fd, PurePosixPath(), report, owner, 0)
    finally:
        os.close(fd)
    if report.problems:
        raise UnsafeFile(str(root), "; ".join(report.problems[:5]))
    return report


def _scan_dir(fd: int, rel: PurePosixPath, report: ScanReport, owner: tuple[int, int] | None, depth: int) -> None:
    if depth > MAX_DEPTH:
        report.problems.append(f"{rel}: nested deeper than {MAX_DEPTH} folders")
        return
    try:
        entries = _entries(fd, rel)
    except UnsafeFile as e:
        report.problems.append(str(e))
        return
    for name, st in entries:
        here = rel / name
        report.files += 1
        if report.files > MAX_ENTRIES:
            report.problems.append(f"more than {MAX_ENTRIES} files and folders")
            return
        if name == ".git":
            remove_at(fd, name, st)
            report.problems.append(f"{here}: a run may not create git metadata (removed)")
        elif stat.S_ISDIR(st.st_mode):
            try:
                sub = os.open(name, _DIR, dir_fd=fd)
            except PermissionError:
                _make_listable(fd, name)
                report.problems.append(f"{here}: a folder the run made unlistable (made listable again)")
                sub = os.open(name, _DIR, dir_fd=fd)
            try:
                if owner is not None:
                    os.chown(sub, *owner)
                _scan_dir(sub, here, report, owner, depth + 1)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            if st.st_mode & _SETID or owner is not None:
                _fix_file(fd, name, here, report, owner)
        else:
            os.unlink(name, dir_fd=fd)
            report.removed.append(str(here))


def remove_at(fd: int, name: str, st: os.stat_result) -> None:
    """Delete entry `name` of folder `fd`, a whole folder included, without following links."""
    if stat.S_ISDIR(st.st_mode):
        _make_listable(fd, name)
        shutil.rmtree(name, dir_fd=fd)
    else:
        os.unlink(name, dir_fd=fd)


def _fix_file(dfd: int, name: str, rel: PurePosixPath, report: ScanReport, owner: tuple[int, int] | None) -> None:
    """Through a descriptor of the file itself, so a name swapped meanwhile cannot redirect it."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return
        # fchown/fchmod do not take an O_PATH descriptor; its /proc link names the inode itself.
        inode = f"/proc/self/fd/{fd}"
        if owner is not None:
            os.chown(inode, *owner)
        if st.st_mode & _SETID:
            os.chmod(inode, stat.S_IMODE(st.st_mode) & ~_SETID)
            report.cleared.append(str(rel))
    finally:
        os.close(fd)
