"""The Prefect flow's building blocks: stage order from `dvc dag`, --set overrides checked before any work,
params.yaml edited like `dvc exp run -S`, the deployment's typed parameters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.orchestration.deployment import RunSettings
from pipeline.orchestration.dvc_cli import DvcError, parse_dot, stage_env, stage_order, topological_order
from pipeline.orchestration.flow import headline_metrics
from pipeline.orchestration.overrides import parse_overrides, validate_overrides, write_overrides
from pipeline.outputs import INSTANCE_METRICS, SEMANTIC_METRICS, resume_log
from pipeline.params import ParamsError, load_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DVC project (no git) with the repository's dvc.yaml and params.yaml, as the cwd."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, env=stage_env(),
                   check=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_flow_order_is_dvc_order(workspace: Path) -> None:
    order = stage_order(workspace)
    dry = subprocess.run([sys.executable, "-m", "dvc", "repro", "--dry", "--force"], cwd=workspace,
                         env=stage_env(), capture_output=True, text=True, check=True).stdout
    assert order == [line.split("'")[1] for line in dry.splitlines() if line.startswith("Running stage '")]
    dot = subprocess.run([sys.executable, "-m", "dvc", "dag", "--dot"], cwd=workspace, env=stage_env(),
                         capture_output=True, text=True, check=True).stdout
    nodes, edges = parse_dot(dot)
    assert sorted(order) == sorted(nodes) and order[0] == "download" and order[-1] == "report"
    assert all(order.index(a) < order.index(b) for a, b in edges)


def test_topological_order_keeps_listed_order_and_finds_cycles() -> None:
    assert topological_order(["a", "c", "b"], [("a", "b"), ("a", "c")]) == ["a", "c", "b"]
    assert topological_order(["b", "a"], [("a", "b")]) == ["a", "b"]
    with pytest.raises(DvcError, match="cycle"):
        topological_order(["a", "b"], [("a", "b"), ("b", "a")])


def test_overrides_are_yaml_values() -> None:
    assert parse_overrides(["train.lr=1e-3", "model.backbone=resnet50", "data.max_images_per_split=null",
                            "evaluate.scales=[1.0, 1.5]", "train.amp=false"]) == {
        "train.lr": 0.001, "model.backbone": "resnet50", "data.max_images_per_split": None,
        "evaluate.scales": [1.0, 1.5], "train.amp": False}
    for bad in ("train.lr", "=1", "train..lr=1"):
        with pytest.raises(ParamsError, match="expected a dotted key"):
            parse_overrides([bad])


@pytest.mark.parametrize(("item", "key"), [
    ("train.lrr=1", "train.lrr"), ("train.max_iters=abc", "train.max_iters"),
    ("data.dataset=imagenet", "data.dataset"), ("nope.x=1", "nope"), ("train.lr.x=1", "train.lr.x")])
def test_bad_override_names_its_key(workspace: Path, item: str, key: str) -> None:
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        validate_overrides("params.yaml", parse_overrides([item]))


def test_run_command_rejects_bad_params_before_any_work(workspace: Path) -> None:
    before = (workspace / "params.yaml").read_text()
    env = {**stage_env(), "PYTHONPATH": str(ROOT), "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # unreachable
    result = subprocess.run([sys.executable, "-m", "pipeline", "run", "--set", "train.lrr=0.1"],
                            cwd=workspace, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "train.lrr" in result.stderr, result.stderr
    assert (workspace / "params.yaml").read_text() == before
    assert not (workspace / "data").exists() and not (workspace / "dvc.lock").exists()


def test_flow_validates_before_anything_else(workspace: Path) -> None:
    from pipeline.orchestration.flow import pipeline_flow

    with pytest.raises(ParamsError, match="model.backbone: 'vgg16'"):
        pipeline_flow.fn(RunSettings(extra={"model.backbone": "vgg16"}))  # no Prefect run context needed


def test_write_overrides_keeps_comments_and_validates(workspace: Path) -> None:
    write_overrides("params.yaml", {"train.lr": 0.001, "model.backbone": "resnet34",
                                    "data.sources.ade20k.urls": {"a.zip": "/tmp/a.zip"}})
    text = (workspace / "params.yaml").read_text()
    assert "# Pipeline parameters" in text and "lr: 0.001" in text
    params = load_params("params.yaml")
    assert params.train.lr == 0.001 and params.model.backbone == "resnet34"
    assert params.data.sources["ade20k"].urls == {"a.zip": "/tmp/a.zip"}


def test_run_settings_map_to_params_and_carry_bounds() -> None:
    settings = RunSettings(backbone="resnet50", lr=0.01, device="cpu", extra={"model.hidden_dim": 128})
    assert settings.overrides() == {"model.backbone": "resnet50", "train.lr": 0.01, "train.device": "cpu",
                                    "evaluate.device": "cpu", "model.hidden_dim": 128}
    assert RunSettings().overrides() == {}
    for bad in ({"lr": 0}, {"batch_size": 0}, {"backbone": "vgg"}, {"dataset": "imagenet"}, {"typo": 1}):
        with pytest.raises(ValidationError):
            RunSettings(**bad)


def test_deployment_form_has_descriptions_and_bounds() -> None:
    from pipeline.orchestration.flow import pipeline_flow

    schema = pipeline_flow.parameters.model_dump()
    fields = schema["definitions"]["RunSettings"]["properties"]
    assert {"dataset", "backbone", "max_iters", "batch_size", "lr", "device", "extra"} <= set(fields)
    assert all(field.get("description") for field in fields.values())
    assert fields["lr"]["anyOf"][0]["exclusiveMinimum"] == 0
    assert fields["batch_size"]["anyOf"][0]["minimum"] == 1
    assert "resnet50" in fields["backbone"]["anyOf"][0]["enum"]
    assert "anyOf" not in schema["properties"]["settings"]  # the form itself, never "None"


def test_form_starts_from_the_values_params_yaml_holds() -> None:
    params = load_params(ROOT / "params.yaml")
    settings = RunSettings.from_params(params)
    assert (settings.dataset, settings.backbone, settings.lr) == ("synthetic", params.model.backbone,
                                                                  params.train.lr)
    assert (settings.max_iters, settings.device, settings.preset) == (params.train.max_iters, "auto", None)
    assert validate_overrides(ROOT / "params.yaml", settings.overrides()) == params  # changes nothing


def test_train_progress_reads_the_resume_log(workspace: Path) -> None:
    from pipeline.orchestration.flow import _train_progress

    assert _train_progress(workspace) is None
    log = workspace / resume_log(load_params("params.yaml"))
    log.parent.mkdir(parents=True)
    max_iters = load_params("params.yaml").train.max_iters
    log.write_text(f"step,loss\n1,2.0\n{max_iters // 2},1.0\n")
    assert _train_progress(workspace) == pytest.approx((max_iters // 2) / max_iters)


def test_stage_env_puts_this_python_first() -> None:
    path = stage_env({"PIPELINE_RUN_NAME": "x"})
    assert path["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert path["PIPELINE_RUN_NAME"] == "x" and path["PYTHONUNBUFFERED"] == "1"


def test_sweep_grid_is_every_combination_and_checked_before_anything_runs(tmp_path, monkeypatch, capsys):
    from pipeline.__main__ import main as cli
    from pipeline.commands.sweep import parse_grid
    from pipeline.orchestration.sweep import combinations

    grid = parse_grid(["model.num_queries=10,20", "train.lr=1e-3,3e-4"])
    assert grid == {"model.num_queries": [10, 20], "train.lr": [0.001, 0.0003]}
    expected = [{"model.num_queries": q, "train.lr": lr} for q in (10, 20) for lr in (1e-3, 3e-4)]
    assert combinations(grid) == expected
    with pytest.raises(ParamsError, match="--grid 'train.lr='"):
        parse_grid(["train.lr="])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("train:\n  lr: 0.001\n")
    assert cli(["sweep", "--grid", "train.lr=0.001,fast"]) == 2  # nothing queued: no DVC repo is needed
    assert "train.lr" in capsys.readouterr().err


def test_sweep_plot_has_a_panel_per_swept_key(tmp_path):
    import pandas as pd

    from pipeline.orchestration.sweep import sweep_plot

    table = pd.DataFrame({"run": ["s-1", "s-0"], "train.lr": ["0.003", "0.001"], "input.task": ["a", "b"],
                          "sem_seg/mIoU": [40.0, 30.0]})
    path = sweep_plot(table, ["train.lr", "input.task"], tmp_path / "s.png")
    assert path is not None and path.read_bytes()[:4] == b"\x89PNG"
    assert sweep_plot(table.drop(columns="sem_seg/mIoU"), ["train.lr"], tmp_path / "t.png") is None


def test_headline_metrics_are_named_as_mlflow_names_them(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    (tmp_path / SEMANTIC_METRICS).write_text(json.dumps({"sem_seg": {"mIoU": 55.55555, "pACC": 90}}))
    (tmp_path / INSTANCE_METRICS).write_text(json.dumps({"segm": None, "panoptic_seg": {"PQ": 41.5},
                                                          "note": "no thing class"}))
    assert headline_metrics(tmp_path) == [{"metric": "sem_seg/mIoU", "value": 55.556},
                                          {"metric": "sem_seg/pACC", "value": 90},
                                          {"metric": "panoptic_seg/PQ", "value": 41.5}]
    (tmp_path / SEMANTIC_METRICS).unlink()  # a stage that has not run adds no rows
    assert headline_metrics(tmp_path) == [{"metric": "panoptic_seg/PQ", "value": 41.5}]
