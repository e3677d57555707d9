"""A flow run's workspace: HEAD plus the working copy's changes, the project's DVC cache, gone after the run;
a dead run's workspace is removed by the next run; a project without a commit is refused, named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.orchestration.dvc_cli import DvcError, stage_env
from pipeline.orchestration.workspace import has_changes, prune, workspace
from pipeline.outputs import RUN_WORKSPACES, lock_file, project_root


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, env=stage_env(), check=True)
    (tmp_path / "params.yaml").write_text("train:\n  lr: 0.001\n")
    (tmp_path / "gone.txt").write_text("deleted in the working copy\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "init")
    return tmp_path


def test_a_workspace_holds_head_and_uncommitted_changes_and_leaves_the_copy_alone(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "params.yaml").write_text("train:\n  lr: 0.002\n")  # edited, not committed
    (project / "gone.txt").unlink()
    (project / "new.py").write_text("x = 1\n")  # untracked
    before = _git(project, "status", "--porcelain")
    with workspace("run-1", project) as (root, untracked):
        assert root == project.resolve() / RUN_WORKSPACES / "run-1"
        assert (root / "params.yaml").read_text() == "train:\n  lr: 0.002\n"
        assert not (root / "gone.txt").exists() and (root / "new.py").read_text() == "x = 1\n"
        assert untracked == ["new.py"] and has_changes(root)
        cache = subprocess.run([sys.executable, "-m", "dvc", "cache", "dir"], cwd=root, env=stage_env(),
                               capture_output=True, text=True, check=True).stdout.strip()
        assert Path(cache) == project.resolve() / ".dvc" / "cache"  # one cache for every run
        (root / "params.yaml").write_text("train:\n  lr: 0.5\n")  # what a run's overrides do
        with monkeypatch.context() as m:  # shared folders resolve to the project from inside a workspace
            m.chdir(root)
            assert project_root() == project.resolve()
    assert not root.exists() and not lock_file(root).exists()
    assert _git(project, "status", "--porcelain") == before
    assert (project / "params.yaml").read_text() == "train:\n  lr: 0.002\n"
    assert "run-1" not in _git(project, "worktree", "list")


def test_an_untracked_link_is_taken_along_as_a_link(project: Path, tmp_path_factory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "big.bin").write_bytes(b"not copied")
    (project / "shared").symlink_to(elsewhere, target_is_directory=True)  # e.g. a data folder kept elsewhere
    with workspace("run-1", project) as (root, untracked):
        assert untracked == ["shared"]
        assert (root / "shared").is_symlink() and (root / "shared").readlink() == elsewhere
        assert (root / "shared" / "big.bin").read_bytes() == b"not copied"


def test_a_dead_runs_workspace_is_pruned_a_live_one_kept(project: Path) -> None:
    dead = project / RUN_WORKSPACES / "dead"
    _git(project, "worktree", "add", "-q", "--detach", str(dead), "HEAD")  # its run died: no lock held
    assert dead.exists()
    with workspace("live", project) as (live, _):  # starting a run prunes the dead one
        assert not dead.exists()
        assert prune(project) == [] and live.exists()  # a live run's workspace (its lock held) stays
    assert str(RUN_WORKSPACES / "dead") not in _git(project, "worktree", "list")


def test_no_commit_is_refused_by_name(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    with pytest.raises(DvcError, match="commit the project first"), workspace("run", tmp_path):
        pass


def test_a_revision_runs_that_commit_as_committed(project: Path) -> None:
    first = _git(project, "rev-parse", "HEAD").strip()
    (project / "params.yaml").write_text("train:\n  lr: 0.003\n")
    _git(project, "commit", "-q", "-am", "lr 0.003")
    (project / "params.yaml").write_text("train:\n  lr: 0.004\n")  # uncommitted: not part of a revision
    (project / "new.py").write_text("x = 1\n")
    with workspace("again", project, revision=first[:8]) as (root, untracked):
        assert _git(root, "rev-parse", "HEAD").strip() == first
        assert (root / "params.yaml").read_text() == "train:\n  lr: 0.001\n"
        assert untracked == [] and not (root / "new.py").exists() and not has_changes(root)
    with pytest.raises(DvcError, match="no git commit 'nope'"), workspace("bad", project, revision="nope"):
        pass
