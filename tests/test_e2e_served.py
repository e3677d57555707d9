"""End to end, a served deployment in its own temporary repository (so it runs beside test_e2e_pipeline.py
under `pytest -n 2`): a Prefect server, `pipeline serve`, the form's bounds and defaults, a run cancelled
mid-training, a sweep from the API, and the cancelled run resumed by a worker on a process work pool.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from e2e_repo import PY, Repo, mlflow_runs, repo_in, run_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """The repository after a first `dvc repro`, committed: the cache a sweep point can be restored from."""
    for built in repo_in(tmp_path_factory, "served"):
        built.dvc("repro")
        built.git("add", "-A")
        built.git("commit", "-q", "-m", "baseline")
        yield built


def _free_port() -> int:
    """A port nothing listens on now, for the test's Prefect server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` every second until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process has gone
        return b""


def _cwd(proc: Path) -> Path:
    try:
        return (proc / "cwd").resolve(strict=True)
    except OSError:
        return Path("/")


def _healthy(url: str) -> bool:
    """Whether the Prefect server at `url` answers its health check."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process group this test started (the server spawns workers)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


CLIENT = """
import asyncio, json
from prefect.client.orchestration import get_client

async def main():
    async with get_client() as client:
        for _ in range(120):
            try:
                dep = await client.read_deployment_by_name("maskformer-pipeline/maskformer")
                break
            except Exception:
                await asyncio.sleep(1)
        try:  # out of bounds: refused by the server, no run created
            await client.create_flow_run_from_deployment(dep.id, parameters={"settings": {"lr": -1}})
            rejected = False
        except Exception:
            rejected = True
        limit, options = dep.global_concurrency_limit, dep.concurrency_options
        print(json.dumps({"rejected": rejected, "limit": limit.limit if limit else None,
                          "strategy": options.collision_strategy.value if options else None,
                          "schema": dep.parameter_openapi_schema, "defaults": dep.parameters}))

asyncio.run(main())
"""


RUN = """
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

async def main():
    async with get_client() as client:
        for _ in range(120):  # a worker's or a server's deployment may take a moment to appear
            try:
                dep = await client.read_deployment_by_name(sys.argv[1])
                break
            except Exception:
                await asyncio.sleep(1)
        run = await run_deployment(dep.id, parameters=json.loads(sys.argv[2]), timeout=600, poll_interval=2)
        arts = await client.read_artifacts()
    print(json.dumps({"state": run.state.type.value, "name": run.name,
                      "artifacts": sorted({a.key for a in arts if a.flow_run_id == run.id and a.key})}))

asyncio.run(main())
"""


def _run_deployment(repo: Repo, env: dict[str, str], name: str, parameters: dict) -> dict:
    """Start a run of deployment `name` through the API, wait for it; {state, name, artifacts}."""
    result = repo.run(PY, "-c", RUN, name, json.dumps(parameters), env=env, timeout=800)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _experiments(repo: Repo) -> set[str]:
    shown = json.loads(repo.dvc("exp", "show", "--json").stdout)
    return {exp["name"] for base in shown for exp in (base.get("experiments") or [])}


def _resume_on_a_work_pool(repo: Repo, env: dict[str, str], settings: dict) -> None:
    """prefect.yaml's deployments on a process work pool; a worker started in another directory runs the
    cancelled run's params in its clone: a new workspace, resumed from the kept checkpoint, the dead run's
    workspace pruned, an MLflow run with the whole loss curve, a DVC experiment under the flow run's name,
    the run named after its data and backbone, its artifacts, and the working copy left as it was."""
    prefect = str(Path(PY).parent / "prefect")
    repo.run(prefect, "work-pool", "create", "maskformer", "--type", "process", env=env)
    repo.run(prefect, "--no-prompt", "deploy", "--all", env=env)
    worker_log = repo.path.parent / "worker.log"
    worker = subprocess.Popen([prefect, "worker", "start", "--pool", "maskformer", "--limit", "1"],
                              cwd=repo.path.parent, env=env | {"MASKFORMER_CLONE": str(repo.path)},
                              stdout=worker_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        info = _run_deployment(repo, env, "maskformer-pipeline/pool", {"settings": settings})
    finally:
        _stop(worker)
    assert info["state"] == "COMPLETED", worker_log.read_text()[-4000:]
    assert "resuming from iteration" in worker_log.read_text()
    held = yaml.safe_load((repo.path / "params.yaml").read_text())
    assert info["name"].startswith(f"synthetic-{held['model']['backbone']}-")
    assert {"headline-metrics", "report", "mlflow-run"} <= set(info["artifacts"]), info["artifacts"]
    assert "Data and pipelines are up to date" in repo.dvc("status").stdout
    assert info["name"] in _experiments(repo)
    assert not list((repo.path / ".dvc/tmp/runs").iterdir())  # the cancelled run's workspace was pruned
    from mlflow.tracking import MlflowClient

    run = {r.info.run_name: r for r in mlflow_runs(repo)}[info["name"]]
    client = MlflowClient(tracking_uri=f"sqlite:///{repo.path / 'mlflow.db'}")
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss"))
    assert steps == list(range(1, settings["max_iters"] + 1))  # the whole curve, not only after the resume
    assert run.info.status == "FINISHED"


CANCEL = """
import asyncio, glob, json, sys, time
from prefect.client.orchestration import get_client
from prefect.states import Cancelling

async def main():
    async with get_client() as client:
        dep = await client.read_deployment_by_name("maskformer-pipeline/maskformer")
        settings = json.loads(sys.argv[1])
        run = await client.create_flow_run_from_deployment(dep.id, parameters={"settings": settings})
        deadline = time.monotonic() + 300
        while not glob.glob(sys.argv[2]) and time.monotonic() < deadline:  # training has checkpointed
            await asyncio.sleep(0.5)
        await client.set_flow_run_state(run.id, Cancelling(), force=True)
        while not (run := await client.read_flow_run(run.id)).state.is_final():
            await asyncio.sleep(1)
        print(json.dumps({"state": run.state.type.value, "name": run.name}))  # named when it started

asyncio.run(main())
"""


def _cancel(repo: Repo, env: dict[str, str]) -> dict:
    """Cancel a served run mid-training: the stage tree stops, the MLflow run is KILLED, the checkpoint
    stays; returns the run's settings."""
    checkpoints = repo.path / "models" / "checkpoints"
    settings = {"max_iters": 200, "lr": 0.0004}
    result = repo.run(PY, "-c", CANCEL, json.dumps(settings), str(checkpoints / "*" / "model_*.pth"), env=env,
                      timeout=600)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["state"] == "CANCELLED", info
    def stopped() -> bool:  # no `pipeline train` left running in this repository's workspaces
        root = repo.path.resolve()
        return not any(b"pipeline\0train" in _read(proc / "cmdline") and _cwd(proc).is_relative_to(root)
                       for proc in Path("/proc").glob("[0-9]*"))

    _wait(stopped, 30, "the train stage to stop")
    kept = sorted(checkpoints.glob("*/model_*.pth"))
    assert kept, "the cancelled run's checkpoint is gone"
    runs = {r.info.run_name: r for r in mlflow_runs(repo)}
    assert runs[info["name"]].info.status == "KILLED", (runs[info["name"]].info,
                                                         (repo.path.parent / "serve.log").read_text()[-4000:])
    return settings


def test_served_deployment_runs_from_the_api(repo: Repo) -> None:
    url = f"http://127.0.0.1:{_free_port()}/api"
    server_env = run_env(repo.path.parent / "server-home")
    server = subprocess.Popen([str(Path(PY).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
                               "--port", url.split(":")[2].split("/")[0]], env=server_env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    env = repo.env | {"PREFECT_API_URL": url}
    serve = None
    try:
        _wait(lambda: _healthy(url), 180, "prefect server")
        log = (repo.path.parent / "serve.log").open("w")
        serve = subprocess.Popen([PY, "-m", "pipeline", "serve"], cwd=repo.path, env=env, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        info = json.loads(repo.run(PY, "-c", CLIENT, env=env, timeout=300).stdout.strip().splitlines()[-1])
        assert info["limit"] == 1 and info["strategy"] == "ENQUEUE" and info["rejected"]
        settings = info["schema"]["definitions"]["RunSettings"]["properties"]
        assert settings["lr"]["anyOf"][0]["exclusiveMinimum"] == 0 and settings["lr"]["description"]
        defaults = info["defaults"]["settings"]  # the form shows what params.yaml holds
        held = yaml.safe_load((repo.path / "params.yaml").read_text())
        assert (defaults["max_iters"], defaults["backbone"], defaults["dataset"]) == (
            4, held["model"]["backbone"], "synthetic")
        cancelled = _cancel(repo, env)  # a served run, stopped mid-training
        grid = {"model.architecture": ["maskformer"], "train.max_iters": [4]}  # restored: the baseline
        sweep = {"settings": {"grid": grid, "jobs": 1, "name": "ui-sweep"}}
        info = _run_deployment(repo, env, "maskformer-sweep/maskformer", sweep)
        assert info["state"] == "COMPLETED", (repo.path.parent / "serve.log").read_text()[-4000:]
        assert "ui-sweep-0" in _experiments(repo)
        _stop(serve)
        _resume_on_a_work_pool(repo, env, cancelled)
    finally:
        for proc in (serve, server):
            if proc is not None:
                _stop(proc)


