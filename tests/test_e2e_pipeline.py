"""End to end, in a temporary copy of the repository (own git + DVC) with a tiny config: `dvc repro`,
skipping, experiments, the Prefect flow in ephemeral mode, sweeps, push/pull, presets and imported weights
(the served deployment: test_e2e_served.py).

The tests share one repository and run in file order: each step starts from the state the last left.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e_repo import PY, Repo, mlflow_runs, ran, repo_in

pytestmark = pytest.mark.slow

OUTS = ["data/raw/synthetic", "data/processed/synthetic", "models/model.pt", "metrics/semantic.json"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    yield from repo_in(tmp_path_factory, "e2e")


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
