"""MLflow tracking against a real sqlite store: one run shared by stage processes, FAILED/KILLED endings,
flattened params, metric names as in the metrics JSON, data set input, tags, and the comparison table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.commands.compare import main as compare_main
from pipeline.outputs import processed_dir
from pipeline.params import Params, load_params
from pipeline.report.runs import runs_table
from pipeline.tracking import identity

REPO = Path(__file__).resolve().parents[1]
STAGE_SCRIPT = """
import sys, time
from pipeline import tracking
from pipeline.params import load_params
params = load_params(sys.argv[1])
with tracking.stage_run(sys.argv[2], params):
    tracking.log_step_metrics(int(sys.argv[3]), {"loss": 1.0 / int(sys.argv[3])})
    if sys.argv[4:] == ["wait"]:
        print("ready", flush=True)
        time.sleep(120)
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One sqlite store for the module (creating its tables takes seconds); each test its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture
def project(tmp_path, monkeypatch, store):
    """A project folder as cwd with params.yaml naming the test's experiment; no execution env vars."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)  # the client's global beats the env var
    for var in tracking.ENV_TAGS.values():
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_raw(tmp_path)))
    (tmp_path / "stage.py").write_text(STAGE_SCRIPT)
    return tmp_path


def _raw(project: Path, **sections: dict) -> dict:
    return {"tracking": {"experiment": project.name}, **sections}


def _params(project: Path) -> Params:
    return load_params(project / "params.yaml")


def _stage(project: Path, stage: str, step: int, wait: bool = False) -> subprocess.Popen:
    """A stage in its own process, as `dvc repro` runs them."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "stage.py", "params.yaml", stage, str(step), *(["wait"] if wait else [])]
    pipe = subprocess.PIPE
    return subprocess.Popen(argv, cwd=project, env=env, text=True, stdout=pipe, stderr=pipe)


def _runs() -> list:
    experiment = MlflowClient().get_experiment_by_name(Path.cwd().name)
    return MlflowClient().search_runs([experiment.experiment_id]) if experiment else []


def test_uri_is_an_absolute_sqlite_file_in_the_project(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = Params()
    assert tracking.tracking_uri(params) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    relative = Params.model_validate({"tracking": {"uri": "sqlite:///runs/m.db"}})
    assert tracking.tracking_uri(relative) == f"sqlite:///{tmp_path.resolve()}/runs/m.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri(params) == "http://127.0.0.1:5000"


def test_stages_of_one_execution_share_a_run_that_each_closes(project, monkeypatch):
    monkeypatch.setenv("PIPELINE_RUN_NAME", "flow-run-1")  # what the flow gives every stage it runs
    ids = set()
    for stage, step in (("train", 1), ("evaluate_semantic", 2)):
        proc = _stage(project, stage, step)
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        (run,) = _runs()
        assert run.info.status == "FINISHED"  # closed between stages: whatever ran last, the run is ended
        ids.add(run.info.run_id)
    with tracking.stage_run("report", _params(project)) as active:
        ids.add(active.info.run_id)
    (run,) = _runs()
    assert len(ids) == 1 and run.info.status == "FINISHED"
    history = MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5)]
    assert run.data.tags["pipeline_stages"] == "train,evaluate_semantic,report"


def test_each_dvc_process_is_one_execution(project):
    """Stages under one `dvc repro` share a run; the next `dvc repro` starts its own (a stand-in named
    dvc runs two stages, as DVC does, each a child process)."""
    stage = f"{sys.executable} stage.py params.yaml"
    (project / "dvc").write_text(f"#!/bin/sh\nset -e\n{stage} train 1\n{stage} evaluate_semantic 2\n")
    (project / "dvc").chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for _ in range(2):
        subprocess.run([str(project / "dvc")], cwd=project, env=env, check=True, timeout=300)
    runs = _runs()
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["pipeline_stages"] for r in runs} == {"train,evaluate_semantic"}


def test_params_flattened_metrics_named_as_the_json_and_tags(project, monkeypatch):
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
                    "-m", "x"], cwd=project, check=True)
    env = {"PIPELINE_RUN_NAME": "flow-run-7", "PREFECT_FLOW_RUN_ID": "abc-123", "DVC_EXP_NAME": "exp-1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    metrics = project / "instance.json"
    metrics.write_text(json.dumps({"segm": None, "panoptic_seg": {"PQ": 41.5, "SQ": 80.0}, "note": "why"}))
    (project / "semantic.json").write_text(json.dumps({"sem_seg": {"mIoU": 55.5, "pACC": 90.0}}))
    with tracking.stage_run("evaluate_instance", _params(project)):
        assert tracking.log_metrics_file(metrics) == {"panoptic_seg/PQ": 41.5, "panoptic_seg/SQ": 80.0}
        tracking.log_metrics_file(project / "semantic.json")
    (run,) = _runs()
    assert run.info.status == "FINISHED"  # every stage closes the run it ran in
    assert set(run.data.metrics) == {"panoptic_seg/PQ", "panoptic_seg/SQ", "sem_seg/mIoU", "sem_seg/pACC"}
    params = run.data.params
    expected = _params(project)
    assert params["train.lr"] == str(expected.train.lr)
    assert params["model.backbone"] == expected.model.backbone and params["evaluate.scales"] == "[1.0]"
    assert params["data.synthetic.num_train"] == str(expected.data.synthetic.num_train)
    assert params["tracking.experiment"] == project.name
    assert len(params) == len(identity.param_dict(expected))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True)
    tags = run.data.tags
    assert tags["git_commit"] == head.stdout.strip() and tags["mlflow.runName"] == "flow-run-7"
    assert (tags["prefect_flow_run_id"], tags["dvc_experiment"]) == ("abc-123", "exp-1")
    assert tags["instance/note"] == "why"
    uri = f"runs:/{run.info.run_id}/params.yaml"
    logged = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(project)))
    assert yaml.safe_load(logged.read_text()) == expected.model_dump(mode="json")


def test_a_failed_stage_fails_the_run_and_a_retry_stays_in_it(project, monkeypatch):
    monkeypatch.setenv("PIPELINE_RUN_NAME", "flow-run-2")
    with pytest.raises(RuntimeError, match="boom"), tracking.stage_run("train", _params(project)):
        raise RuntimeError("boom")
    (failed,) = _runs()
    assert failed.info.status == "FAILED"
    with tracking.stage_run("train", _params(project)) as retried:  # Prefect retries the task
        assert retried.info.run_id == failed.info.run_id
    (run,) = _runs()
    assert run.info.status == "FINISHED" and run.data.tags["pipeline_stages"] == "train,train"
    monkeypatch.setenv("PIPELINE_RUN_NAME", "flow-run-3")  # the next execution starts anew
    with tracking.stage_run("train", _params(project)) as active:
        assert active.info.run_id != failed.info.run_id


def test_sigterm_ends_the_run_killed(project):
    proc = _stage(project, "train", 1, wait=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    (run,) = _runs()
    assert run.info.status == "KILLED"
    assert "ended KILLED" in proc.stderr.read()


def test_a_sigkilled_run_is_ended_killed_by_the_next_execution(project):
    proc = _stage(project, "download", 1, wait=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    proc.kill()
    proc.wait(timeout=60)
    (stale,) = _runs()
    assert stale.info.status == "RUNNING"  # nobody can catch SIGKILL
    with tracking.stage_run("download", _params(project)):  # this process: another execution
        pass
    statuses = {r.info.run_id: r.info.status for r in _runs()}
    assert len(statuses) == 2 and statuses[stale.info.run_id] == "KILLED"


def test_dataset_input_carries_the_dvc_hash(project):
    params = _params(project)
    folder = processed_dir(params.data)
    folder.mkdir(parents=True)
    splits = {s: {"images": n, "instances": n, "skipped": 0, "skipped_files": [], "sha256": s * 8}
              for s, n in (("train", 6), ("val", 2))}
    (folder / "manifest.json").write_text(json.dumps({"num_classes": 5, "splits": splits}))
    assert identity.data_hash(params).startswith("sha256:")  # no dvc.lock yet: from the manifest
    md5 = "0123456789abcdef0123456789abcdef.dir"
    (project / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"preprocess": {
        "cmd": "x", "outs": [{"path": str(folder), "hash": "md5", "md5": md5}]}}}))
    with tracking.stage_run("train", params):
        pass
    (run,) = _runs()
    (entry,) = run.inputs.dataset_inputs
    assert (entry.dataset.name, entry.dataset.digest) == ("synthetic", md5)
    assert {t.key: t.value for t in entry.tags}["data_hash"] == f"md5:{md5}"
    assert run.data.tags["data_hash"] == f"md5:{md5}"


def test_comparison_table_lists_every_run(project, capsys):
    for lr in (0.1, 0.2):
        params = Params.model_validate(_raw(project, train={"lr": lr}))
        with tracking.stage_run("report", params):
            tracking.log_metrics_file(_write(project / "semantic.json", {"sem_seg": {"mIoU": 100 * lr}}))
    table = runs_table(_params(project))
    assert list(table["train.lr"]) == ["0.2", "0.1"]  # newest first; only differing params besides key ones
    assert list(table["sem_seg/mIoU"]) == [20.0, 10.0] and set(table["status"]) == {"FINISHED"}
    assert "model.backbone" in table and "train.seed" not in table
    assert compare_main(str(project / "params.yaml"), []) == 0
    out = capsys.readouterr().out
    assert "train.lr" in out and "20.00" in out
    assert compare_main(str(project / "params.yaml"), ["--experiment", "nothing"]) == 0
    assert "no runs" in capsys.readouterr().out


def _write(path: Path, content: dict) -> Path:
    path.write_text(json.dumps(content))
    return path


def test_the_train_stage_logs_system_metrics(project, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    with tracking.stage_run("train", _params(project)):
        time.sleep(2.5)  # a few samples of this process's machine
    (run,) = _runs()
    expected = {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"}
    assert expected <= set(run.data.metrics), sorted(run.data.metrics)


def test_a_dvc_experiment_names_its_run(project, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "bold-lark")  # what `dvc exp run` gives its stages
    with tracking.stage_run("train", _params(project)):
        pass
    (run,) = _runs()
    assert run.info.run_name == "bold-lark" and run.data.tags["dvc_experiment"] == "bold-lark"
