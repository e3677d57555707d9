"""A flow run's own workspace: a git worktree of HEAD plus the working copy's uncommitted changes (or of a
given commit alone), in
.dvc/tmp/runs/<run name>/, sharing the project's DVC cache. The run's stages execute and its DVC
experiment is saved there, so a run never writes the user's working copy and parallel runs never meet.

While a run lives its process holds `<workspace>.lock`; a workspace whose lock nobody holds belongs to a
run that died (a cancelled flow run's process is killed) and the next run removes it.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from pipeline.locks import exclusive, is_held
from pipeline.orchestration.dvc_cli import DvcError, dvc_command, stage_env
from pipeline.outputs import RUN_WORKSPACES, lock_file

# how a workspace gets the cache's files: a copy-on-write or hard link where the file system allows it
CACHE_LINKS = "reflink,hardlink,copy"


def _run(command: list[str], cwd: Path, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, env=stage_env(), check=False)
    if result.returncode != 0:
        raise DvcError(f"`{' '.join(command)}` failed in {cwd}:\n{result.stderr.decode(errors='replace')}")
    return result.stdout


def head_commit(root: Path = Path("."), revision: str | None = None) -> str:
    """The commit a run starts from (HEAD, or `revision`); a clear error where there is none."""
    try:
        spec = f"{revision or 'HEAD'}^{{commit}}"
        return _run(["git", "rev-parse", "--verify", spec], root).decode().strip()
    except DvcError:
        if revision:
            raise DvcError(f"{root.resolve()}: no git commit {revision!r} to run") from None
        raise DvcError(f"{root.resolve()}: every run is a DVC experiment on a git commit, and there is "
                       "none: `git init` and commit the project first") from None


def uncommitted(root: Path = Path(".")) -> list[str]:
    """Untracked files that git does not ignore (a run takes them along, as `dvc exp run` does)."""
    listed = _run(["git", "ls-files", "-z", "--others", "--exclude-standard"], root).decode()
    return [p for p in listed.split("\0") if p and not p.startswith(f"{RUN_WORKSPACES}/")]


def prune(root: Path = Path(".")) -> list[Path]:
    """Remove the workspaces of runs that died; returns them."""
    removed = []
    for path in sorted((root / RUN_WORKSPACES).glob("*/")):
        if not is_held(lock_file(path)):
            _remove(root, path)
            removed.append(path)
    return removed


def _remove(root: Path, path: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=root, capture_output=True,
                   check=False)
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True, check=False)
    lock_file(path).unlink(missing_ok=True)


def _create(root: Path, path: Path, commit: str, changes: bool) -> list[str]:
    """The worktree at `commit`, with the working copy's changes and untracked files if `changes`; returns
    those files."""
    _run(["git", "worktree", "add", "--detach", str(path), commit], root)
    diff = _run(["git", "diff", "--binary", "HEAD"], root) if changes else b""
    if diff.strip():
        _run(["git", "apply", "--binary", "--whitespace=nowarn"], path, stdin=diff)
    untracked = uncommitted(root) if changes else []
    for rel in untracked:
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, path / rel, follow_symlinks=False)  # a link (to a folder too) stays a link
    local = root / ".dvc" / "config.local"  # remotes' credentials and the like
    if local.exists():
        shutil.copy2(local, path / ".dvc" / "config.local")
    cache = _run(dvc_command("cache", "dir"), root).decode().strip()
    _run(dvc_command("config", "--local", "cache.dir", cache), path)
    _run(dvc_command("config", "--local", "cache.type", CACHE_LINKS), path)
    return untracked


def has_changes(path: Path) -> bool:
    """Whether the worktree at `path` differs from its commit (changed or untracked, not ignored, files)."""
    return bool(_run(["git", "status", "--porcelain", "--untracked-files=all"], path).strip())


@contextlib.contextmanager
def workspace(name: str, root: Path = Path("."), revision: str | None = None
              ) -> Iterator[tuple[Path, list[str]]]:
    """(the run's workspace, the untracked files it took along); removed when the run ends. At HEAD with
    the working copy's changes, or at the commit `revision` exactly (to reproduce an earlier run)."""
    root = root.resolve()
    commit = head_commit(root, revision)
    prune(root)
    path = root / RUN_WORKSPACES / name
    with exclusive(lock_file(path)):
        if path.exists():
            _remove(root, path)
        try:
            untracked = _create(root, path, commit, changes=not revision)
            yield path, untracked
        finally:
            _remove(root, path)
