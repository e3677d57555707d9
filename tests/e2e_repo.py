"""The end-to-end tests' repository: a temporary copy of this one (own git + DVC) with a tiny config, and
helpers to run commands in it and read what they left."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipeline.offline import OFFLINE_ENV

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
TINY = {
    "data": {"num_workers": 0, "synthetic": {"num_train": 16, "num_val": 8, "image_size": 64,
                                             "min_object_size": 12, "max_object_size": 28}},
    "model": {"conv_dim": 32, "mask_dim": 32, "hidden_dim": 32, "num_queries": 8, "nheads": 4,
              "dim_feedforward": 64, "dec_layers": 2},
    "input": {"crop_size": 64},
    "train": {"max_iters": 4, "batch_size": 2, "num_workers": 0, "checkpoint_period": 4,
              "keep_last": 1, "log_period": 1, "device": "cpu"},
    "evaluate": {"device": "cpu", "test_size": 64},
    "report": {"num_samples": 2, "dpi": 30},
}


def _merge(base: dict, update: dict) -> dict:
    """Deep-update params (the tiny config over the repository's params.yaml)."""
    for key, value in update.items():
        base[key] = _merge(base.get(key) or {}, value) if isinstance(value, dict) else value
    return base


def run_env(home: Path) -> dict[str, str]:
    """Offline, single-threaded, own Prefect home and no Prefect server unless a test sets one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "DVC_"))}
    return env | OFFLINE_ENV | {"OMP_NUM_THREADS": "1", "PREFECT_HOME": str(home),
                                "PATH": f"{Path(PY).parent}{os.pathsep}{env.get('PATH', '')}"}


class Repo:
    """A temporary copy of the repository and helpers to run commands in it."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path, self.env = path, env

    def run(self, *cmd: str, cwd: Path | None = None, **kw) -> subprocess.CompletedProcess:
        """Run a command in the repository; a failure shows its output."""
        result = subprocess.run(cmd, cwd=cwd or self.path, env=kw.pop("env", self.env), capture_output=True,
                                text=True, **kw)
        if result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def dvc(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run(PY, "-m", "dvc", *args, **kw)

    def git(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run("git", *args, **kw)

    def json(self, rel: str) -> dict:
        return json.loads((self.path / rel).read_text())


def build_repo(dst: Path, env: dict[str, str]) -> Repo:
    """Copy the working tree's files (tracked and new, not ignored), tiny params, git + DVC init."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    params = _merge(yaml.safe_load((dst / "params.yaml").read_text()), TINY)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    repo = Repo(dst, env)
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.name", "e2e")
    repo.git("config", "user.email", "e2e@example.com")
    if not (dst / ".dvc" / "config").exists():
        repo.dvc("init", "-q")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "tiny config")
    return repo


def repo_in(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Repo]:
    """A module's repository (fixture body): built in a fresh temporary folder, removed after the module."""
    base = tmp_path_factory.mktemp(name)
    (base / "repo").mkdir()
    yield build_repo(base / "repo", run_env(base / "prefect-home"))
    shutil.rmtree(base, ignore_errors=True)  # resume checkpoints, caches and the remote: ~1 GB


def ran(output: str) -> list[str]:
    """Stages `dvc repro` ran, in order."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def mlflow_runs(repo: Repo) -> list:
    """Every MLflow run in the copy's store (the tracking default: sqlite mlflow.db in the project)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo.path / 'mlflow.db'}")  # leaves the global URI alone
    return client.search_runs([e.experiment_id for e in client.search_experiments()])
