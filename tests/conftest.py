"""Shared test settings: offline, a small thread pool on 2 cores, an MLflow store outside the repository,
slow tests first."""

import os

import pytest
import torch

from pipeline.offline import go_offline

go_offline()  # before any test module imports Prefect, MLflow or DVC
# 2 cores: two threads, or one per worker under `pytest -n 2` (four would oversubscribe them)
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first (a stable sort keeps each module's order): under `pytest -n 2 --dist loadfile`
    the two end-to-end modules, the longest, start at once, one per worker, and the rest fill in."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _keep_cwd():
    """Each test ends in the cwd it started in (data_params chdirs into the test's folder)."""
    cwd = os.getcwd()
    yield
    os.chdir(cwd)


@pytest.fixture(autouse=True, scope="session")
def _mlflow_store(tmp_path_factory):
    """Stages called by tests log to a throwaway sqlite store, never to the project's mlflow.db."""
    if "MLFLOW_TRACKING_URI" not in os.environ:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
