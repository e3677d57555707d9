"""The train and evaluate stages on a tiny synthetic set: files in the standard formats, resume, params."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.outputs import checkpoint_dir, run_key
from pipeline.params import Params, ParamsError, load_params
from pipeline.stages.download import download
from pipeline.stages.evaluate_instance import evaluate_instance, mask_metrics
from pipeline.stages.evaluate_semantic import evaluate_semantic, semantic_metrics
from pipeline.stages.preprocess import preprocess
from pipeline.stages.train import load_trained, train_model

TINY_MODEL = {
    "backbone": "resnet18",
    "backbone_norm": "bn",
    "num_queries": 8,
    "hidden_dim": 32,
    "nheads": 4,
    "dim_feedforward": 64,
    "dec_layers": 2,
    "conv_dim": 32,
    "mask_dim": 32,
    "dropout": 0.0,
}
TINY = {
    "data": {
        "num_workers": 0,
        "synthetic": {
            "num_train": 8,
            "num_val": 4,
            "image_size": 64,
            "min_object_size": 8,
            "max_object_size": 24,
        },
    },
    "model": TINY_MODEL,
    "input": {"crop_size": 64},
    "train": {
        "max_iters": 3,
        "batch_size": 2,
        "num_workers": 0,
        "checkpoint_period": 2,
        "log_period": 1,
        "device": "cpu",
    },
    "evaluate": {"test_size": 64, "device": "cpu"},
}


def tiny_params(**sections) -> Params:
    raw = {k: {**v, **sections.get(k, {})} for k, v in TINY.items()}
    return Params.model_validate(raw)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with the tiny synthetic set processed and a 3-iteration model trained."""
    root = tmp_path_factory.mktemp("stages")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        params = tiny_params()
        download(params.data)
        preprocess(params.data)
        train_model(params)
        yield root, params


def test_train_writes_a_weights_only_model_and_a_curve(workspace, monkeypatch):
    root, params = workspace
    monkeypatch.chdir(root)
    record = torch.load("models/model.pt", weights_only=True)
    assert record["iteration"] == 3 and record["config"]["num_classes"] == 6
    assert [c["name"] for c in record["categories"]][-2:] == ["sky", "ground"]
    model, _ = load_trained()
    torch.testing.assert_close(
        model.state_dict()["predictor.class_embed.weight"], record["model"]["predictor.class_embed.weight"]
    )
    steps = [line.split(",")[0] for line in (root / "metrics/train_log.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3"]
    assert not (root / checkpoint_dir(params)).exists()  # resume state of a finished run


def test_same_params_resume_and_changed_params_start_a_new_run(workspace, monkeypatch):
    root, params = workspace
    monkeypatch.chdir(root)
    before = torch.load("models/model.pt", weights_only=True)["model"]
    train_model(params)  # retrains the finished run: CPU training is deterministic
    after = torch.load("models/model.pt", weights_only=True)["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    changed = tiny_params(train={"lr": 5e-4})
    assert run_key(changed) != run_key(params)


def test_evaluate_semantic_writes_metrics_and_class_maps(workspace, monkeypatch):
    root, params = workspace
    monkeypatch.chdir(root)
    metrics = evaluate_semantic(params)
    assert set(metrics) == {"mIoU", "fwIoU", "mACC", "pACC"}
    content = json.loads((root / "metrics/semantic.json").read_text())
    assert content["sem_seg"]["pACC"] == pytest.approx(metrics["pACC"])
    val = sorted((root / "data/processed/synthetic/semantic/val").iterdir())
    preds = sorted((root / "predictions/semantic").iterdir())
    assert [p.name for p in preds] == [p.name for p in val]
    for p, g in zip(preds, val, strict=True):
        pred, gt = np.asarray(Image.open(p)), np.asarray(Image.open(g))
        assert pred.shape == gt.shape and pred.max() < 6
    assert (root / "metrics/semantic_per_class.csv").read_text().startswith("class,IoU,ACC")
    rows = (root / "metrics/semantic_confusion.csv").read_text().splitlines()
    assert len(rows) == 1 + 7  # header + 6 classes + void


def test_evaluate_instance_writes_coco_and_panoptic_predictions(workspace, monkeypatch):
    root, params = workspace
    monkeypatch.chdir(root)
    content = evaluate_instance(params)
    assert set(content["segm"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert {"PQ", "SQ", "RQ", "PQ_th", "PQ_st"} <= set(content["panoptic_seg"])
    results = json.loads((root / "predictions/instances_val_results.json").read_text())
    gt = json.loads((root / "data/processed/synthetic/annotations/instances_val.json").read_text())
    assert {r["image_id"] for r in results} <= {i["id"] for i in gt["images"]}
    assert {r["category_id"] for r in results} <= {c["id"] for c in gt["categories"]}
    panoptic = json.loads((root / "predictions/panoptic_val.json").read_text())
    for ann in panoptic["annotations"]:
        rgb = np.asarray(Image.open(root / "predictions/panoptic" / ann["file_name"])).astype(np.int64)
        ids = set(np.unique(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]).tolist()) - {0}
        assert ids == {s["id"] for s in ann["segments_info"]}


def test_the_per_pixel_baselines_instances_are_connected_regions_of_its_class_map(workspace, monkeypatch):
    root, params = workspace
    monkeypatch.chdir(root)
    from pycocotools import mask as mask_utils
    from scipy import ndimage

    from maskformer import build_model
    from maskformer.evaluation.predict import Predictor

    cfg = params.model.replace(architecture="per_pixel_baseline", num_classes=6)
    torch.manual_seed(0)
    predictor = Predictor(build_model(cfg), params.evaluate)
    record = {"config": cfg.to_dict(), "params": params.model_dump()}
    result = mask_metrics(params, predictor, record)
    assert set(result.content["segm"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert {"PQ", "PQ_th", "PQ_st"} <= set(result.content["panoptic_seg"])
    things = {c["id"] for c in result.categories if c["isthing"]}
    assert result.results, "an untrained model still predicts some thing regions"
    for r in result.results:  # each instance: one 4-connected region of a thing class, big enough
        mask = mask_utils.decode(r["segmentation"]).astype(bool)
        assert r["category_id"] in things and ndimage.label(mask)[1] == 1
        assert mask.sum() >= params.evaluate.component_min_area
    assert set(semantic_metrics(params, predictor).headline) == {"mIoU", "fwIoU", "mACC", "pACC"}


@pytest.mark.parametrize(
    "text,key",
    [
        ("train:\n  lrr: 1\n", "train.lrr"),
        ("model:\n  num_classes: 3\n", "model.num_classes"),
        ("model:\n  backbone: vgg\n", "backbone"),
        ("train:\n  max_iters: -1\n", "max_iters"),
        ("evaluate:\n  test_size: abc\n", "evaluate.test_size"),
        ("evaluate:\n  test_size: 16\n", "evaluate.test_size: 16: must be >= 32"),
        ("train:\n  checkpoint_dir: x\n", "train.checkpoint_dir is fixed by the pipeline"),
        ("input:\n  crop_size: 8\n", "input.crop_size"),
        ("input:\n  min_scale: 1.5\n  max_scale: 1.0\n", "input.min_scale=1.5 must be <= input.max_scale"),
        ("model:\n  transformer_in_feature: res1\n", "transformer_in_feature"),
        ("data:\n  synthetic:\n    image_size: 16\n", "data.synthetic.image_size: 16: must be >= 32"),
    ],
)
def test_bad_params_name_the_key(tmp_path, text, key):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=key):
        load_params(path)


def test_stage_cli_turns_expected_errors_into_one_line(tmp_path, monkeypatch, capsys):
    from pipeline.__main__ import main as cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("train:\n  lr: fast\n")
    assert cli(["train"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train: error: params.yaml: train.lr: "), err
    with pytest.raises(ParamsError, match="train.lr"):  # the traceback on request
        cli(["train", "--verbose"])
    (tmp_path / "params.yaml").write_text("train:\n  device: cpu\n")  # valid, but nothing preprocessed
    assert cli(["train"]) == 1
    err = capsys.readouterr().err  # above the error: MLflow's own log lines as it creates the store
    expected = "data/processed/synthetic/manifest.json not found: run `python -m pipeline preprocess` first"
    assert "Traceback" not in err and err.strip().splitlines()[-1] == f"train: error: {expected}"
    monkeypatch.setenv("PIPELINE_DEBUG", "1")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        cli(["train"])


def test_paper_preset_is_the_official_ade20k_r50_recipe(tmp_path):
    from pathlib import Path

    text = (Path(__file__).parents[1] / "params.yaml").read_text()
    text = text.replace("preset: null", "preset: paper_ade20k_r50")
    (tmp_path / "params.yaml").write_text(text)
    params = load_params(tmp_path / "params.yaml")
    assert (params.data.dataset, params.model.backbone, params.model.weights) == (
        "ade20k",
        "resnet50",
        "imagenet_v1",  # IMAGENET1K_V1: what the paper's R-50.pkl corresponds to
    )
    assert (params.model.hidden_dim, params.model.num_queries, params.model.dec_layers) == (256, 100, 6)
    assert (params.input.crop_size, params.train.max_iters, params.train.batch_size) == (
        512,
        160000,
        16,
    )
    assert (params.train.lr, params.train.backbone_multiplier) == (1e-4, 0.1)
    (tmp_path / "params.yaml").write_text(text.replace("preset: paper_ade20k_r50", "preset: nope"))
    with pytest.raises(ParamsError, match="preset: unknown preset 'nope'"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize(("preset", "expected"), [
    ("paper_ade20k_r101", {"model.backbone": "resnet101", "train.lr": 1e-4, "train.max_iters": 160000}),
    ("paper_ade20k_per_pixel_r50", {"model.architecture": "per_pixel_baseline",
                                    "model.backbone": "resnet50"}),
    ("paper_ade20k_swin_t", {"model.backbone": "swin_t", "train.lr": 6e-5, "train.weight_decay": 0.01,
                             "train.backbone_multiplier": 1.0, "train.warmup_iters": 1500,
                             "train.warmup_factor": 1e-6, "input.crop_size": 512}),
    ("paper_ade20k_swin_s", {"model.backbone": "swin_s", "train.lr": 6e-5, "train.warmup_iters": 1500}),
    ("paper_cityscapes_r101", {"data.dataset": "cityscapes", "input.crop_size": (512, 1024),
                               "model.backbone": "resnet101", "train.max_iters": 90000,
                               "evaluate.test_size": 1024, "model.hidden_dim": 256}),
])
def test_model_zoo_presets_extend_their_base(tmp_path, preset, expected):
    """Each official model-zoo row: its own values over its base chain, ending at the ADE20K R50 recipe."""
    from pathlib import Path

    text = (Path(__file__).parents[1] / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text.replace("preset: null", f"preset: {preset}"))
    params = load_params(tmp_path / "params.yaml")
    for dotted, value in expected.items():
        section, key = dotted.split(".")
        assert getattr(getattr(params, section), key) == value, dotted
    assert (params.input.min_scale, params.input.max_scale, params.evaluate.amp) == (0.5, 2.0, False)


def test_preset_base_errors_name_the_preset(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("preset: a\npresets:\n  a: {base: b}\n  b: {base: a}\n")
    with pytest.raises(ParamsError, match="presets: base cycle a -> b -> a"):
        load_params(path)
    path.write_text("preset: a\npresets:\n  a: {base: zz}\n")
    with pytest.raises(ParamsError, match="presets.a.base: unknown preset 'zz'"):
        load_params(path)
