"""git, run hardened: an idea's history (one commit per attempt, out of the sandbox's reach), and
the archive's bundles of it.

The work tree is the idea's folder, which sandboxed code writes. The git dir is elsewhere (in
the idea's state folder, which no sandbox binds), so code under test can plant neither a hook
nor a config line, and no `.git` of its own is ever used: every command names the git dir and
the work tree explicitly, and the post-run scan deletes any `.git` a run leaves.

Every command also runs hardened, as defence in depth: no system or global config; hooks
pointed at /dev/null; no fsmonitor, external diff, textconv, pager, credential helper or
transport; submodules ignored; `.gitignore` files of the tree bypassed (`add --force` with our
own exclusions), so a run cannot hide files from the history either.
"""

from __future__ import annotations

from pathlib import Path

import git

from agent.sandbox import files

TEMPLATE_TAG = "template"
# Bulky artefacts stay out of the history; the archive copies what it needs.
EXCLUDE = ("__pycache__", "*.pyc", "*.pt", "*.pth", "*.ckpt", "*.npy", "*.npz", "*.log")
_HARDENING = {
    "core.hooksPath": "/dev/null",
    "core.fsmonitor": "false",
    "core.untrackedCache": "false",
    "core.pager": "cat",
    "core.attributesFile": "/dev/null",
    "core.excludesFile": "/dev/null",
    "core.sshCommand": "false",
    "core.askPass": "",
    "core.symlinks": "true",
    "credential.helper": "",
    "protocol.allow": "never",
    "diff.external": "",
    "diff.ignoreSubmodules": "all",
    "submodule.recurse": "false",
    "status.submoduleSummary": "false",
    "commit.gpgSign": "false",
    "tag.gpgSign": "false",
    "gc.auto": "0",
    "maintenance.auto": "false",
    "safe.directory": "*",  # the tree may belong to the sandbox's uid
    "user.name": "AI Scientist",
    "user.email": "ai-scientist@localhost",
    "init.defaultBranch": "main",
}
_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_SYSTEM": "/dev/null",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_COUNT": "0",
    "GIT_CONFIG_PARAMETERS": "",
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "GIT_OPTIONAL_LOCKS": "0",
}
_DIFF = ("--no-ext-diff", "--no-textconv", "--no-color")


class IdeaRepo:
    """git for one idea: `git_dir` ours alone, `work_tree` the folder the sandbox writes."""

    def __init__(self, git_dir: Path, work_tree: Path):
        self.git_dir, self.work_tree = Path(git_dir).resolve(), Path(work_tree).resolve()
        self._git = git.Git(self.work_tree)

    def _execute(self, args: tuple[str, ...], binary: bool, allow: dict[str, str] | None = None,
                 work_tree: Path | None = None, index: Path | None = None) -> tuple[int, str | bytes, str]:
        tree = Path(work_tree).resolve() if work_tree else self.work_tree
        argv = ["git"]
        for key, value in {**_HARDENING, **(allow or {})}.items():
            argv += ["-c", f"{key}={value}"]
        argv += [f"--git-dir={self.git_dir}", f"--work-tree={tree}", *args]
        env = {**_ENV, "GIT_DIR": str(self.git_dir), "GIT_WORK_TREE": str(tree)}
        if index is not None:
            env["GIT_INDEX_FILE"] = str(index)
        runner = self._git if work_tree is None else git.Git(tree)
        status, out, err = runner.execute(argv, env=env, with_extended_output=True, with_exceptions=False,
                                          stdout_as_string=not binary, strip_newline_in_stdout=False)
        return status, out, str(err)

    def run(self, *args: str, binary: bool = False, work_tree: Path | None = None,
            index: Path | None = None) -> str | bytes:
        """One hardened git command (in another work tree, through another index, if given); its
        stdout, or GitCommandError."""
        status, out, err = self._execute(args, binary, work_tree=work_tree, index=index)
        if status != 0:
            raise git.GitCommandError(["git", *args], status, err)
        return out

    def succeeds(self, *args: str) -> bool:
        """Whether a hardened git command exits 0 (for the commands that answer by exit status)."""
        return self._execute(args, False)[0] == 0

    @property
    def exists(self) -> bool:
        return (self.git_dir / "HEAD").is_file()

    def init(self, message: str) -> str:
        """A new repository holding the work tree as it is now, tagged `template`."""
        self.git_dir.parent.mkdir(parents=True, exist_ok=True)
        self.run("init", "--quiet", "--template=")
        sha = self.commit(message)
        self.run("tag", TEMPLATE_TAG)
        return sha or ""

    def commit(self, message: str, *, always: bool = False) -> str | None:
        """Commit everything that changed; the sha, or None when nothing did. `always` records a
        step that changed no file (a review, whose record is kept outside the tree)."""
        excluded = [f":(exclude,glob)**/{pattern}" for pattern in EXCLUDE]
        self.run("add", "--all", "--force", "--", ".", *excluded)
        has_head = self.succeeds("rev-parse", "--verify", "--quiet", "HEAD")
        if has_head and not always and self.succeeds("diff", "--cached", "--quiet", *_DIFF, "HEAD"):
            return None
        self.run("commit", "--quiet", "--no-verify", "--allow-empty", "--allow-empty-message", "-m", message)
        return self.head()

    def code_diff(self) -> str:
        """The code changes against the template, leaving out run outputs."""
        return str(self.run("diff", *_DIFF, TEMPLATE_TAG, "HEAD", "--", ".", ":(exclude)run_*",
                            ":(exclude)figures", ":(exclude)paper"))

    def show(self, rev: str, path: str) -> bytes:
        """A file as it is at `rev`."""
        return bytes(self.run("show", f"{rev}:{path}", binary=True))

    def clone_bundle(self, bundle: Path) -> None:
        """A new repository holding an archived bundle's history, its final state checked out
        into the (empty) work tree and the template tag where the template was."""
        self.git_dir.parent.mkdir(parents=True, exist_ok=True)
        self.run("init", "--quiet", "--template=")
        self.fetch_bundle(bundle, "+HEAD:refs/continued/head")
        self.fetch_bundle(bundle, f"+refs/tags/{TEMPLATE_TAG}:refs/tags/{TEMPLATE_TAG}")
        self.run("reset", "--quiet", "--hard", "refs/continued/head")

    def fetch_bundle(self, bundle: Path, refspec: str) -> None:
        """Fetch from a bundle the archive made (a file, so the file transport is let through for
        this command alone; no other transport ever is)."""
        status, _, err = self._execute(("fetch", "--quiet", "--no-tags", str(bundle), refspec), False,
                                       {"protocol.file.allow": "always"})
        if status != 0:
            raise git.GitCommandError(["git", "fetch", str(bundle)], status, err)

    def bundle(self, dest: Path) -> Path:
        """A git bundle of the whole history, for the archive."""
        self.run("bundle", "create", "--quiet", str(dest), "--all")
        return dest

    def head(self) -> str:
        return str(self.run("rev-parse", "HEAD")).strip()

    # ------------------------------------------------------------ search nodes
    # Each node of an idea's search tree has a folder of its own (see agent.pipeline.search).
    # Its code is committed as a child of its parent's commit, through an index of its own, and
    # kept reachable by `refs/nodes/<name>`: the idea's HEAD and main index are never touched,
    # and the bundle in the archive holds every node.

    def commit_node(self, work_tree: Path, parent: str, name: str, message: str) -> str:
        """Commit the files of `work_tree` as a child of `parent`; returns the sha."""
        index = self.git_dir / "node-index" / name
        index.parent.mkdir(exist_ok=True)
        index.unlink(missing_ok=True)
        excluded = [f":(exclude,glob)**/{pattern}" for pattern in EXCLUDE]
        self.run("add", "--all", "--force", "--", ".", *excluded, work_tree=work_tree, index=index)
        tree = str(self.run("write-tree", work_tree=work_tree, index=index)).strip()
        index.unlink(missing_ok=True)
        sha = str(self.run("commit-tree", tree, "-p", parent, "-m", message)).strip()
        self.run("update-ref", f"refs/nodes/{name}", sha)
        return sha

    def checkout_files(self, rev: str, dest: Path) -> list[str]:
        """Write the regular files of commit `rev` into the folder `dest` through
        agent.sandbox.files (links and submodules are skipped); returns their paths."""
        written = []
        for entry in str(self.run("ls-tree", "-r", "-z", "--full-tree", rev)).split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            mode, kind, sha = meta.split()
            if kind != "blob" or mode not in ("100644", "100755"):
                continue
            data = bytes(self.run("cat-file", "blob", sha, binary=True))
            files.write_bytes(dest, path, data, mode=0o755 if mode == "100755" else 0o644)
            written.append(path)
        return written

    def diff(self, old: str, new: str) -> str:
        """The unified diff between two commits (a search node against its parent)."""
        return str(self.run("diff", *_DIFF, old, new, "--"))
