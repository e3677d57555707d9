"""A short CPU training run on the default synthetic data learns: loss falls, every headline metric rises."""

import csv
import math
from pathlib import Path

import pytest
import yaml

from maskformer import build_model
from maskformer.engine import seed_everything
from maskformer.evaluation.predict import Predictor
from pipeline.outputs import TRAIN_LOG
from pipeline.params import Params
from pipeline.stages.download import download
from pipeline.stages.evaluate_instance import mask_metrics
from pipeline.stages.evaluate_semantic import semantic_metrics
from pipeline.stages.preprocess import preprocess
from pipeline.stages.train import load_trained, train_model


def headline(params: Params, predictor: Predictor, record: dict) -> dict[str, float]:
    """Semantic, instance and panoptic headline metrics of one model, in one flat dict."""
    semantic = semantic_metrics(params, predictor).headline
    masks = mask_metrics(params, predictor, record).content
    return {
        **{f"sem_seg/{k}": v for k, v in semantic.items()},
        **{f"segm/{k}": v for k, v in masks["segm"].items()},
        **{f"panoptic_seg/{k}": masks["panoptic_seg"][k] for k in ("PQ", "SQ", "RQ")},
    }


@pytest.mark.slow
def test_training_beats_the_untrained_model_on_every_headline_metric(tmp_path, monkeypatch):
    raw = yaml.safe_load(Path("params.yaml").read_text())  # the default data set and model
    monkeypatch.chdir(tmp_path)
    raw["train"].update(max_iters=250, device="cpu")  # a shorter schedule than the default
    raw["data"]["synthetic"].update(num_train=300, num_val=30)  # and fewer scenes (generated in the test)
    raw["evaluate"]["device"] = "cpu"
    params = Params.model_validate(raw)
    download(params.data)
    preprocess(params.data)

    seed_everything(0)
    untrained = build_model(params.model.replace(num_classes=6))
    record = {"config": untrained.config.to_dict(), "params": params.model_dump()}
    before = headline(params, Predictor(untrained, params.evaluate), record)

    train_model(params)
    with open(TRAIN_LOG) as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert sum(losses[-3:]) / 3 < 0.6 * sum(losses[:3]) / 3, losses
    model, record = load_trained()
    after = headline(params, Predictor(model, params.evaluate), record)
    compared = {k: (before[k], after[k]) for k in before if not math.isnan(after[k])}
    assert len(compared) >= 12, compared
    worse = {k: v for k, v in compared.items() if not v[1] > v[0]}
    assert not worse, f"not better after training: {worse}; all: {compared}"
