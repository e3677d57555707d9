"""`python -m pipeline predict`: the standard output formats on new images, and clear errors."""

import json
import os
import pickle

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torchvision import tv_tensors

from maskformer import build_model, tiny_config
from maskformer.data import build_eval_transforms, rgb_to_id
from maskformer.evaluation.predict import Predictor
from pipeline.__main__ import main as cli
from pipeline.data.sources._shapes import SceneSpec, draw_scene
from pipeline.data.sources.synthetic import categories
from pipeline.params import load_params


def model_file(path):
    """A tiny MaskFormer for the synthetic classes, saved as the train stage saves models/model.pt."""
    torch.manual_seed(0)
    model = build_model(tiny_config(num_classes=6, object_mask_threshold=0.0))
    record = {"model": model.state_dict(), "config": model.config.to_dict(), "categories": categories(),
              "iteration": 0, "params": {"input": {"task": "panoptic"}}}
    torch.save(record, path)
    return model.eval()


def test_predict_writes_every_format_consistently(tmp_path, capsys):
    model = model_file(tmp_path / "model.pt")
    images = tmp_path / "images"
    images.mkdir()
    for i, size in enumerate((64, 96)):
        spec = SceneSpec(image_size=size, max_object_size=size // 2)
        rgb, _, _ = draw_scene(np.random.default_rng(i), spec)
        Image.fromarray(rgb).save(images / f"scene{i}.png")
    (images / "notes.txt").write_text("not an image: folders give their images only")
    out = tmp_path / "out"
    assert cli(["predict", str(images), "--model", str(tmp_path / "model.pt"), "--out", str(out)]) == 0
    assert "2 images" in capsys.readouterr().out
    panoptic = json.loads((out / "panoptic.json").read_text())
    results = json.loads((out / "instances.json").read_text())
    for i, size in enumerate((64, 96)):
        semantic = np.asarray(Image.open(out / f"scene{i}_semantic.png"))
        rgb = np.asarray(Image.open(images / f"scene{i}.png").convert("RGB"))
        predictor = Predictor(model, load_params("params.yaml").evaluate)
        image = build_eval_transforms()(tv_tensors.Image(torch.from_numpy(rgb.copy()).permute(2, 0, 1)))
        assert np.array_equal(semantic, predictor.semantic(image).argmax(0).numpy())  # the model's own answer
        ids = rgb_to_id(np.asarray(Image.open(out / f"scene{i}_panoptic.png").convert("RGB")))
        listed = {s["id"] for s in panoptic["annotations"][i]["segments_info"]}
        assert ids.shape == (size, size) and set(np.unique(ids)) - {0} == listed
        assert Image.open(out / f"scene{i}_overlay.jpg").size == (size, size)
        assert Image.open(out / f"scene{i}_semantic_color.png").size == (size, size)
        mine = [r for r in results if r["image_id"] == i + 1]
        assert mine and all(mask_utils.decode(r["segmentation"]).shape == (size, size) for r in mine)
        assert {r["category_id"] for r in mine} <= {c["id"] for c in categories() if c["isthing"]}


def test_bad_inputs_are_named_and_a_foreign_model_file_runs_no_code(tmp_path, capsys):
    model_file(tmp_path / "model.pt")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert cli(["predict", str(tmp_path / "broken.png"), "--model", str(tmp_path / "model.pt"),
                "--out", str(tmp_path / "out")]) == 2
    assert "broken.png: not a readable image" in capsys.readouterr().out
    assert cli(["predict", str(tmp_path / "nothing*.png"), "--out", str(tmp_path / "out")]) == 2
    assert "nothing*.png: no such image, folder or glob match" in capsys.readouterr().out
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Payload()))
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "ok.png")
    assert cli(["predict", str(tmp_path / "ok.png"), "--model", str(tmp_path / "evil.pt"),
                "--out", str(tmp_path / "out")]) == 2
    assert "evil.pt: not a model file of this project" in capsys.readouterr().out
    assert not marker.exists()
