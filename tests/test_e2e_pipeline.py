"""End to end, in a temporary copy of the repository (own git + DVC) with a tiny config: `dvc repro`,
skipping, experiments, the Prefect flow in ephemeral mode, push/pull, and a served deployment.

The tests share one repository and run in file order: each step starts from the state the last left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from pipeline.offline import OFFLINE_ENV

pytestmark = pytest.mark.slow

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
OUTS = ["data/raw/synthetic", "data/processed/synthetic", "models/model.pt", "metrics/semantic.json"]


def _merge(base: dict, update: dict) -> dict:
    """Deep-update params (the tiny config over the repository's params.yaml)."""
    for key, value in update.items():
        base[key] = _merge(base.get(key) or {}, value) if isinstance(value, dict) else value
    return base


def _env(home: Path) -> dict[str, str]:
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


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    base = tmp_path_factory.mktemp("e2e")
    (base / "repo").mkdir()
    yield build_repo(base / "repo", _env(base / "prefect-home"))
    shutil.rmtree(base, ignore_errors=True)  # resume checkpoints, caches and the remote: ~1 GB


def ran(output: str) -> list[str]:
    """Stages `dvc repro` ran, in order."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def mlflow_runs(repo: Repo) -> list:
    """Every MLflow run in the copy's store (the tracking default: sqlite mlflow.db in the project)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo.path / 'mlflow.db'}")  # leaves the global URI alone
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_repro_runs_every_stage(repo: Repo) -> None:
    out = repo.dvc("repro").stdout
    order = ran(out)
    dry = repo.dvc("repro", "--dry", "--force").stdout
    assert order == ran(dry) and {"download", "preprocess", "train", "report"} <= set(order), out
    assert (repo.path / "dvc.lock").exists()
    assert "mIoU" in repo.json("metrics/semantic.json")["sem_seg"]
    assert "panoptic_seg" in repo.json("metrics/instance.json")
    assert (repo.path / "reports/report.html").exists() and (repo.path / "reports/report.md").exists()
    (run,) = mlflow_runs(repo)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.max_iters"] == "4" and "sem_seg/mIoU" in run.data.metrics
    metrics = json.loads(repo.dvc("metrics", "show", "--json").stdout)
    assert any("metrics/semantic.json" in json.dumps(v) for v in metrics.values())
    plots = json.loads(repo.dvc("plots", "show", "--json").stdout)
    assert not plots.get("errors") and {"loss", "per_class_iou", "per_class_pq"} <= set(plots["data"]), plots
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "baseline")


def test_second_repro_runs_nothing(repo: Repo) -> None:
    out = repo.dvc("repro").stdout
    assert ran(out) == [], out
    assert "Data and pipelines are up to date" in repo.dvc("status").stdout


def test_each_key_invalidates_only_the_stages_that_read_it(repo: Repo) -> None:
    path = repo.path / "params.yaml"
    original = path.read_text()
    cases = [  # (dotted key, new value, the stages `dvc status` then reports changed)
        ("data.download.retries", 1, set()), ("data.num_workers", 1, set()),
        ("data.seed", 7, {"download"}),
        ("data.max_images_per_split", 5, {"preprocess"}), ("train.log_period", 3, {"train"}),
        ("evaluate.flip", True, {"evaluate_semantic", "evaluate_instance"}), ("report.dpi", 31, {"report"}),
    ]
    for key, value, expected in cases:
        params = yaml.safe_load(original)
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        path.write_text(yaml.safe_dump(params))
        status = json.loads(repo.dvc("status", "--json").stdout or "{}")
        path.write_text(original)
        assert {name.rpartition(":")[2] for name in status} == expected, (key, status)
    assert "Data and pipelines are up to date" in repo.dvc("status").stdout


def test_train_param_reruns_train_and_downstream_only(repo: Repo) -> None:
    overrides = ("-S", "train.lr=0.001", "-S", "model.backbone=resnet34")
    out = repo.dvc("exp", "run", "-n", "lr-backbone", *overrides).stdout
    assert ran(out)[0] == "train" and "download" not in ran(out) and "preprocess" not in ran(out), out
    assert {"evaluate_semantic", "evaluate_instance", "report"} <= set(ran(out))
    assert yaml.safe_load((repo.path / "params.yaml").read_text())["model"]["backbone"] == "resnet34"


def _first_line(out: str) -> tuple[str, str]:
    """(run name, stages) from `python -m pipeline run`'s summary line."""
    line = next(s for s in out.splitlines() if s.startswith("run "))
    name, stages = line.removeprefix("run ").split(": ", 1)
    return name, stages


def test_flow_runs_in_ephemeral_mode_two_at_once(repo: Repo) -> None:
    """Two runs of the same overrides started together in one clone: separate workspaces, the trainings
    take turns on the shared resume folder, both succeed and leave the working copy as it was."""
    before = repo.git("status", "--porcelain").stdout
    command = [PY, "-m", "pipeline", "run", "--set", "train.lr=0.002", "--set", "model.backbone=resnet18"]
    procs = [subprocess.Popen(command, cwd=repo.path, env=repo.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [proc.communicate(timeout=900)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    (name, stages), (twin, _) = map(_first_line, outs)
    repo.name, repo.twin = name, twin
    order = [s.split()[0] for s in stages.split(", ")]
    assert order == ran(repo.dvc("repro", "--dry", "--force").stdout)  # one task per stage, DVC's order
    assert "download skipped" in stages and "train ran" in stages, outs[0]
    assert repo.git("status", "--porcelain").stdout == before  # ran in their own workspaces: nothing edited
    assert yaml.safe_load((repo.path / "params.yaml").read_text())["train"]["lr"] == 0.001
    assert not list((repo.path / ".dvc/tmp/runs").iterdir())  # the workspaces are gone with their runs
    again = repo.run(PY, "-m", "pipeline", "run", timeout=900).stdout  # nothing changed: nothing is new
    assert "MLflow: no new run (every stage was up to date)" in again, again


def test_experiments_and_mlflow_list_the_same_runs(repo: Repo) -> None:
    shown = json.loads(repo.dvc("exp", "show", "--json").stdout)
    experiments = {exp["name"]: exp for base in shown for exp in (base.get("experiments") or [])}
    for exp_name in ("lr-backbone", repo.name, repo.twin):
        (rev,) = experiments[exp_name]["revs"]
        data = rev["data"]
        assert data["params"]["params.yaml"]["data"]["train"]["lr"] in (0.001, 0.002)
        assert "mIoU" in json.dumps(data["metrics"]["metrics/semantic.json"]), data["metrics"]
    runs = {r.info.run_name: r for r in mlflow_runs(repo)}
    assert len(runs) == 4 and "lr-backbone" in runs, sorted(runs)  # named as `dvc exp show` lists them
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    flow_run = runs[repo.name]
    assert flow_run.data.tags["dvc_experiment"] == repo.name and flow_run.data.params["train.lr"] == "0.002"
    assert all("sem_seg/mIoU" in r.data.metrics for r in runs.values())


def test_the_architecture_comparison_sweeps_both_two_at_a_time_in_their_own_workspaces(repo: Repo) -> None:
    """`compare_architectures` is a sweep over model.architecture (DVC's queue, 2 at once), then a page
    with both experiments' metrics and the same images segmented by both."""
    before = {name: (repo.path / name).read_text() for name in ("params.yaml", "dvc.lock")}
    out = repo.run(PY, "-m", "pipeline", "compare_architectures", "--set", "train.max_iters=3", "--jobs", "2",
                   "--name", "arch", "--images", "2", timeout=900).stdout
    assert "arch-0 Success, arch-1 Success" in out, out
    assert {name: (repo.path / name).read_text() for name in before} == before  # the workspace untouched
    shown = json.loads(repo.dvc("exp", "show", "--json").stdout)
    experiments = {exp["name"]: exp["revs"][0]["data"] for base in shown for exp in (base.get("experiments")
                                                                                   or [])}
    runs = {r.info.run_name: r for r in mlflow_runs(repo)}
    assert {runs[n].info.status for n in ("arch-0", "arch-1")} == {"FINISHED"}
    assert [runs[n].data.params["model.architecture"] for n in ("arch-0", "arch-1")] == [
        "maskformer", "per_pixel_baseline"]
    assert (repo.path / "sweeps" / "arch.png").stat().st_size > 0
    summary = (repo.path / "comparisons" / "arch.md").read_text()
    for name, arch in (("arch-0", "maskformer"), ("arch-1", "per_pixel_baseline")):
        metrics = experiments[name]["metrics"]
        miou = metrics["metrics/semantic.json"]["data"]["sem_seg"]["mIoU"]
        pq_th = metrics["metrics/instance.json"]["data"]["panoptic_seg"]["PQ_th"]
        assert f"| {arch} ({name}) | {miou:.2f} |" in summary and f"{pq_th:.2f}" in summary, summary
    assert 'alt="segmented by both"' in (repo.path / "comparisons" / "arch.html").read_text()


def test_push_then_pull_into_a_fresh_clone(repo: Repo) -> None:
    remote, clone = repo.path.parent / "remote", repo.path.parent / "clone"
    repo.dvc("remote", "add", "-d", "local", str(remote))
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "flow run")
    repo.dvc("push")
    repo.git("clone", "-q", str(repo.path), str(clone), cwd=repo.path.parent)
    repo.dvc("pull", cwd=clone)
    assert "Data and pipelines are up to date" in repo.dvc("status", cwd=clone).stdout  # nothing to retrain
    made = repo.run(PY, "-m", "pipeline", "run", "--apply", cwd=clone, timeout=900).stdout  # `make run`
    line = next(s for s in made.splitlines() if s.startswith("run "))
    assert "ran" not in line.split(": ", 1)[1], line  # every stage restored from the pulled cache
    for rel in OUTS:
        a, b = repo.path / rel, clone / rel
        files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file()) if a.is_dir() else [Path()]
        assert files and all((b / f).read_bytes() == (a / f).read_bytes() for f in files), rel


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
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

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
        run = await run_deployment(dep.id, parameters={"settings": json.loads(sys.argv[1])}, timeout=600,
                                   poll_interval=2)
        arts = await client.read_artifacts()
        limit, options = dep.global_concurrency_limit, dep.concurrency_options
        print(json.dumps({"state": run.state.type.value, "name": run.name, "rejected": rejected,
                          "limit": limit.limit if limit else None,
                          "strategy": options.collision_strategy.value if options else None,
                          "schema": dep.parameter_openapi_schema, "defaults": dep.parameters,
                          "artifacts": sorted({a.key for a in arts if a.flow_run_id == run.id and a.key})}))

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
    print(json.dumps({"state": run.state.type.value, "name": run.name}))

asyncio.run(main())
"""


def _run_deployment(repo: Repo, env: dict[str, str], name: str, parameters: dict) -> dict:
    """Start a run of deployment `name` through the API, wait for it; {state, name}."""
    result = repo.run(PY, "-c", RUN, name, json.dumps(parameters), env=env, timeout=800)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _experiments(repo: Repo) -> set[str]:
    shown = json.loads(repo.dvc("exp", "show", "--json").stdout)
    return {exp["name"] for base in shown for exp in (base.get("experiments") or [])}


def _resume_on_a_work_pool(repo: Repo, env: dict[str, str], settings: dict) -> None:
    """prefect.yaml's deployments on a process work pool; a worker started in another directory runs the
    cancelled run's params in its clone: a new workspace, resumed from the kept checkpoint, the dead run's
    workspace pruned, an MLflow run with the whole loss curve, a DVC experiment under the flow run's name."""
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
    assert runs[info["name"]].info.status == "KILLED", runs[info["name"]].info
    return settings


def test_served_deployment_runs_from_the_api(repo: Repo) -> None:
    url = f"http://127.0.0.1:{_free_port()}/api"
    server_env = _env(repo.path.parent / "server-home")
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
        result = repo.run(PY, "-c", CLIENT, json.dumps({"max_iters": 3, "lr": 0.0005}), env=env, timeout=800)
        info = json.loads(result.stdout.strip().splitlines()[-1])
        assert info["state"] == "COMPLETED", (repo.path.parent / "serve.log").read_text()[-4000:]
        held = yaml.safe_load((repo.path / "params.yaml").read_text())  # as the earlier steps left it
        assert info["name"].startswith(f"synthetic-{held['model']['backbone']}-")
        assert info["limit"] == 1 and info["strategy"] == "ENQUEUE" and info["rejected"]
        settings = info["schema"]["definitions"]["RunSettings"]["properties"]
        assert settings["lr"]["anyOf"][0]["exclusiveMinimum"] == 0 and settings["lr"]["description"]
        defaults = info["defaults"]["settings"]  # the form shows what params.yaml holds
        assert (defaults["max_iters"], defaults["backbone"], defaults["dataset"]) == (
            4, held["model"]["backbone"], "synthetic")
        assert {"headline-metrics", "report", "mlflow-run"} <= set(info["artifacts"]), info["artifacts"]
        assert "Data and pipelines are up to date" in repo.dvc("status").stdout
        cancelled = _cancel(repo, env)
        grid = {"model.architecture": ["maskformer"], "train.max_iters": [3]}  # arch-0: restored from cache
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


def test_a_preset_that_moves_the_data_agrees_with_dvc(repo: Repo) -> None:
    """`dvc exp run -S preset=...` switching the data set: DVC finds every path the stages write."""
    import numpy as np
    from data_fixtures import FixtureServer, ade_archive, md5

    name = "ADEChallengeData2016.zip"
    archive = ade_archive({"train/a": np.ones((16, 16), np.uint8), "val/b": np.full((16, 16), 2, np.uint8)})
    path = repo.path / "params.yaml"
    with FixtureServer() as server:
        server.files[f"/{name}"] = archive
        params = yaml.safe_load(path.read_text())
        source = {"urls": {name: server.url(f"/{name}")}, "checksums": {name: md5(archive)}}
        params["presets"]["fixture_ade"] = {"data": {"dataset": "ade20k", "sources": {"ade20k": source},
                                                     "check_image_counts": False}}
        path.write_text(yaml.safe_dump(params))
        out = repo.dvc("exp", "run", "-n", "preset-ade", "-S", "preset=fixture_ade", "preprocess").stdout
    assert ran(out) == ["download", "preprocess"], out
    manifest = repo.json("data/processed/ade20k/manifest.json")
    assert manifest["dataset"] == "ade20k" and manifest["splits"]["val"]["images"] == 1
    assert not (repo.path / "data/processed/synthetic").exists()  # one out: the previous set is gone
    assert "up to date" in repo.dvc("status", "download", "preprocess").stdout


def _transformers_checkpoint(folder: Path, num_classes: int):
    """transformers' MaskFormer (a tiny ResNet-18-shaped backbone, random weights), saved as releases are."""
    import torch
    from transformers import MaskFormerConfig, MaskFormerForInstanceSegmentation, ResNetConfig

    backbone = ResNetConfig(depths=[2, 2, 2, 2], hidden_sizes=[16, 32, 64, 128], embedding_size=16,
                            layer_type="basic", out_features=["stage1", "stage2", "stage3", "stage4"])
    decoder = {"model_type": "detr", "d_model": 32, "decoder_layers": 2, "decoder_ffn_dim": 64,
               "decoder_attention_heads": 4, "num_queries": 8}
    config = MaskFormerConfig(backbone_config=backbone, num_labels=num_classes, fpn_feature_size=32,
                              mask_feature_size=32, decoder_config=decoder)
    torch.manual_seed(0)
    model = MaskFormerForInstanceSegmentation(config).eval()
    model.save_pretrained(folder)
    return model


def test_a_transformers_checkpoint_is_evaluated_through_dvc_repro_without_training(repo: Repo) -> None:
    import torch

    from pipeline.model_file import read_model

    repo.git("checkout", "--", "params.yaml")  # the synthetic set again (the last test switched to ADE)
    hf = _transformers_checkpoint(repo.path / "hf_model", num_classes=6)
    said = repo.run(PY, "-m", "pipeline", "import_weights", "hf_model", "--out", "models/imported.pt",
                    "--dataset", "synthetic").stdout
    path = repo.path / "params.yaml"
    params = yaml.safe_load(path.read_text())
    printed = said.split("params.yaml needs (init: sets the file, model: its architecture):\n")[1]
    params |= yaml.safe_load(printed)  # what import_weights tells a user to paste
    params["report"]["paper"] = {"sem_seg/mIoU": 44.5}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    out = repo.dvc("repro").stdout
    assert {"train", "evaluate_semantic", "evaluate_instance", "report"} <= set(ran(out)), out
    assert (repo.path / "metrics/train_log.csv").read_text() == "step\n"  # not one iteration
    model, record = read_model(repo.path / "models/model.pt")
    assert record["init"]["format"] == "transformers" and record["iteration"] == 0
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = model(x), hf(pixel_values=x)
    assert (ours["pred_logits"] - theirs.class_queries_logits).abs().max() < 1e-4
    assert (ours["pred_masks"] - theirs.masks_queries_logits).abs().max() < 1e-4
    page = (repo.path / "reports/report.html").read_text()
    assert "evaluated as imported: not trained here" in page
    summary = (repo.path / "reports/report.md").read_text()  # the paper's number beside the run's
    assert "| metric | value | paper |" in summary and "| 44.50 |" in summary
    run = max(mlflow_runs(repo), key=lambda r: r.info.start_time)
    assert run.data.tags["init/format"] == "transformers" and run.data.tags["init/trained"] == "false"
    assert "sem_seg/mIoU" in run.data.metrics
