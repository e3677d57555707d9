"""The report stage on a tiny real pipeline run (generated data, 2 training steps, both evaluations), and
the MLflow run that the stages logged into: one FINISHED run with metrics, curves, artifacts and the model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from maskformer.config import TINY
from pipeline.__main__ import main as cli

STAGES = ("download", "preprocess", "train", "evaluate_semantic", "evaluate_instance", "report")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder after one full pipeline execution of a tiny model, as cwd, with its own store."""
    root = tmp_path_factory.mktemp("project")
    params = {
        "data": {"num_workers": 0, "synthetic": {"num_train": 6, "num_val": 3, "image_size": 64}},
        "model": dict(TINY),
        "train": {"device": "cpu", "max_iters": 2, "batch_size": 2, "num_workers": 0,
                  "checkpoint_period": 2, "log_period": 1},
        "input": {"crop_size": 64},
        "evaluate": {"device": "cpu", "test_size": 64},
        "report": {"num_samples": 2, "dpi": 40},
        "tracking": {"experiment": "report-test"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
        for stage in STAGES:
            assert cli([stage, "--params", "params.yaml"]) == 0
        yield root


def _runs(project: Path) -> list:
    experiment = MlflowClient().get_experiment_by_name("report-test")
    return MlflowClient().search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def test_report_is_self_contained_with_metrics_plots_and_overlays(project):
    page = (project / "reports" / "report.html").read_text()
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(link.startswith(("data:image/png;base64,", "#")) for link in links)
    assert "<link" not in page and "<script" not in page and "url(" not in page
    semantic = json.loads((project / "metrics" / "semantic.json").read_text())["sem_seg"]
    assert "sem_seg/mIoU" in page and f"{semantic['mIoU']:.2f}" in page and "panoptic_seg/PQ" in page
    images = dict(re.findall(r'<img alt="([^"]+)" src="(data:image/png;base64,[^"]+)"', page))
    assert {"training_curves", "per_class_iou", "confusion", "overlays", "class_legend"} <= set(images)
    for section in ("Earlier runs", "Environment", "git commit", "torchvision", "device", "sha256:"):
        assert section in page
    summary = (project / "reports" / "report.md").read_text()
    assert "| sem_seg/mIoU |" in summary and "## Environment" in summary
    plots = sorted(p.name for p in (project / "reports" / "plots").iterdir())
    assert plots == sorted(f"{n}.png" for n in images)


def test_all_stages_logged_into_one_finished_run(project):
    (run,) = _runs(project)
    assert run.info.status == "FINISHED"
    assert run.data.tags["pipeline_stages"] == ",".join(STAGES)
    semantic = json.loads((project / "metrics" / "semantic.json").read_text())["sem_seg"]
    assert all(run.data.metrics[f"sem_seg/{k}"] == pytest.approx(v, nan_ok=True) for k, v in semantic.items())
    assert "panoptic_seg/PQ" in run.data.metrics
    assert [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "loss")] == [1, 2]
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/plots"} <= artifacts
    metrics = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "metrics")}
    assert {"metrics/semantic_per_class.csv", "metrics/panoptic_per_class.csv"} <= metrics
    assert "metrics/train_log.csv" in metrics
    (entry,) = run.inputs.dataset_inputs
    assert entry.dataset.name == "synthetic"
    assert mlflow.pyfunc.load_model(run.data.tags["model_uri"]).metadata.signature is not None


def test_report_alone_backfills_a_run_whose_stages_dvc_skipped(project, capsys, monkeypatch):
    monkeypatch.setenv("PIPELINE_RUN_NAME", "report-only")  # another execution, as a later `dvc repro` is
    assert cli(["report", "--params", "params.yaml"]) == 0  # when only the report changed
    first, second = _runs(project)
    assert second.info.status == "FINISHED" and second.data.tags["pipeline_stages"] == "report"
    mIoU = first.data.metrics["sem_seg/mIoU"]
    assert second.data.metrics["sem_seg/mIoU"] == pytest.approx(mIoU, nan_ok=True)
    assert len(MlflowClient().get_metric_history(second.info.run_id, "loss")) == 2
    assert second.data.tags["model_uri"] != first.data.tags["model_uri"]
    out = capsys.readouterr().out
    assert "report.html" in out and "mlflow ui --backend-store-uri" in out and "127.0.0.1" in out
    summary = (project / "reports" / "report.md").read_text()
    assert first.info.run_name in summary  # the earlier run shows in the comparison
