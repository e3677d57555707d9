"""Starting from a model file (init:): weights copied by name, another class head re-initialised and named,
evaluation of the file as it is, and errors naming the key and the file."""

import pytest
import torch
from test_stages import TINY, TINY_MODEL, workspace  # noqa: F401 (the module-scoped fixture)

from maskformer import MaskFormerConfig, build_model
from maskformer.finetune import load_pretrained
from pipeline.params import Params, ParamsError, load_params
from pipeline.stages.train import train_model

CONFIG = MaskFormerConfig(**TINY_MODEL, num_classes=6)


def tiny_params(**sections) -> Params:
    """The stage tests' tiny params with some sections' keys changed or added."""
    return Params.model_validate({k: {**TINY.get(k, {}), **sections.get(k, {})} for k in {*TINY, *sections}})


def _model_file(path, num_classes=6, seed=1):
    torch.manual_seed(seed)
    model = build_model(CONFIG.replace(num_classes=num_classes))
    torch.save({"model": model.state_dict(), "config": model.config.to_dict(), "iteration": None,
                "categories": [{"id": i, "name": f"c{i}", "isthing": 0} for i in range(num_classes)],
                "source": "model_final_test.pkl", "format": "detectron2"}, path)
    return model


def test_another_class_count_keeps_everything_but_the_class_head():
    torch.manual_seed(1)
    released = build_model(CONFIG.replace(num_classes=150))
    torch.manual_seed(2)
    fresh = build_model(CONFIG)
    head = fresh.predictor.class_embed.weight.clone()
    assert load_pretrained(fresh, released.state_dict()) == [
        "predictor.class_embed.weight", "predictor.class_embed.bias", "criterion.empty_weight"]
    assert torch.equal(fresh.backbone.stem[0].weight, released.backbone.stem[0].weight)
    assert torch.equal(fresh.predictor.query_embed.weight, released.predictor.query_embed.weight)
    assert torch.equal(fresh.predictor.class_embed.weight, head)  # left as initialised


def test_another_architecture_is_named():
    other = build_model(CONFIG.replace(hidden_dim=64))
    shapes = r"shapes differ for \[.predictor.transformer_decoder.layers.0.self_attn.in_proj_weight"
    with pytest.raises(ValueError, match=shapes):
        load_pretrained(build_model(CONFIG), other.state_dict())
    deeper = build_model(CONFIG.replace(dec_layers=3))
    with pytest.raises(ValueError, match=r"unexpected \['predictor.transformer_decoder.layers.2"):
        load_pretrained(build_model(CONFIG), deeper.state_dict())


def test_evaluating_a_model_file_writes_its_weights_untrained(workspace, monkeypatch, tmp_path):  # noqa: F811
    root, _ = workspace
    monkeypatch.chdir(root)
    released = _model_file(tmp_path / "released.pt")
    train_model(tiny_params(init={"model_file": str(tmp_path / "released.pt"), "train": False}))
    record = torch.load("models/model.pt", weights_only=True)
    assert record["iteration"] == 0 and record["init"]["format"] == "detectron2"
    assert record["init"]["source"] == "model_final_test.pkl" and record["init"]["reinitialised"] == []
    for name, tensor in released.state_dict().items():
        assert torch.equal(record["model"][name], tensor), name
    assert (root / "metrics/train_log.csv").read_text() == "step\n"


def test_fine_tuning_starts_from_the_file(workspace, monkeypatch, tmp_path):  # noqa: F811
    root, _ = workspace
    monkeypatch.chdir(root)
    released = _model_file(tmp_path / "released.pt", num_classes=150)
    params = tiny_params(init={"model_file": str(tmp_path / "released.pt")}, train={"lr": 0.0})
    train_model(params)  # lr 0: the weights stay where they started
    record = torch.load("models/model.pt", weights_only=True)
    assert record["iteration"] == 3 and record["init"]["reinitialised"][0] == "predictor.class_embed.weight"
    assert record["model"]["predictor.class_embed.weight"].shape[0] == 7
    for name, tensor in released.named_parameters():
        if not name.startswith("predictor.class_embed"):
            assert torch.equal(record["model"][name], tensor), name


def test_bad_init_is_named(workspace, monkeypatch, tmp_path):  # noqa: F811
    root, _ = workspace
    monkeypatch.chdir(root)
    with pytest.raises(FileNotFoundError, match="init.model_file: .*nothing.pt: no such model file"):
        train_model(tiny_params(init={"model_file": str(tmp_path / "nothing.pt")}))
    _model_file(tmp_path / "wide.pt", num_classes=150)
    with pytest.raises(ValueError, match=r"init.train: false: .*wide.pt has another class count than the"):
        train_model(tiny_params(init={"model_file": str(tmp_path / "wide.pt"), "train": False}))
    (tmp_path / "params.yaml").write_text("init:\n  train: false\n")
    with pytest.raises(ParamsError, match="init: .*init.train: false needs init.model_file"):
        load_params(tmp_path / "params.yaml")
