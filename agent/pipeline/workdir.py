"""An idea's work folder: a git repository made from the template, one commit per attempt.

The history is the audit trail of what the brain changed and ran; the archive keeps its
bundle and the code diff against the template.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import git

from agent.template.contract import Template

TEMPLATE_TAG = "template"
# Results and bulky artefacts stay out of the history; the archive copies what it needs.
GITIGNORE = "__pycache__/\n*.pt\n*.pth\n*.ckpt\n*.npy\n*.npz\n*.log\n"
IGNORE_IN_COPY = shutil.ignore_patterns("__pycache__", "run_*", "*.pyc")


def create(template: Template, workdir: Path) -> git.Repo:
    """Copy the template into `workdir` and commit it, or reopen it if it already exists."""
    if (workdir / ".git").is_dir():
        return git.Repo(workdir)
    if workdir.exists():  # a half-made folder from a crash before the first commit
        shutil.rmtree(workdir)
    shutil.copytree(template.path, workdir, ignore=IGNORE_IN_COPY)
    (workdir / ".gitignore").write_text(GITIGNORE)
    repo = git.Repo.init(workdir)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "AI Scientist")
        cw.set_value("user", "email", "ai-scientist@localhost")
        cw.set_value("commit", "gpgsign", "false")
    repo.git.add(A=True)
    repo.index.commit(f"template {template.name}")
    repo.create_tag(TEMPLATE_TAG)
    return repo


def commit(workdir: Path, message: str) -> str | None:
    """Commit everything that changed; return the sha, or None when nothing changed."""
    repo = git.Repo(workdir)
    repo.git.add(A=True)
    if not repo.is_dirty(index=True, working_tree=False, untracked_files=False):
        return None
    return repo.index.commit(message).hexsha


def code_diff(workdir: Path) -> str:
    """The code changes against the template, leaving out run outputs."""
    repo = git.Repo(workdir)
    return repo.git.diff(TEMPLATE_TAG, "HEAD", "--", ".", ":(exclude)run_*", ":(exclude)figures", ":(exclude)paper")


def bundle(workdir: Path, dest: Path) -> Path:
    """A git bundle of the whole history, for the archive."""
    git.Repo(workdir).git.bundle("create", str(dest), "--all")
    return dest


def restore_file(workdir: Path, path: str) -> None:
    """Put one file back as the template had it."""
    git.Repo(workdir).git.checkout(TEMPLATE_TAG, "--", path)
