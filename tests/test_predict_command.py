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
from pipeline.predictions import Segmenter
from pipeline.report.plots import draw_instances, draw_labels, instance_labels


def model_file(path):
    """A tiny MaskFormer for the synthetic classes, saved as the train stage saves models/model.pt."""
    torch.manual_seed(0)
    model = build_model(tiny_config(num_classes=6, object_mask_threshold=0.0))
    record = {"model": model.state_dict(), "config": model.config.to_dict(), "categories": categories(),
              "iteration": 0, "params": {"input": {"task": "panoptic"}}}
    torch.save(record, path)
    return model.eval()


def scenes(folder, sizes):
    """Synthetic scenes of the given sizes saved as PNGs; their paths."""
    folder.mkdir()
    paths = []
    for i, size in enumerate(sizes):
        spec = SceneSpec(image_size=size, max_object_size=size // 2)
        rgb, _, _ = draw_scene(np.random.default_rng(i), spec)
        Image.fromarray(rgb).save(folder / f"scene{i}.png")
        paths.append(folder / f"scene{i}.png")
    return paths


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
        zoom = -(-384 // size)  # small images' overlays are enlarged by a whole factor
        assert Image.open(out / f"scene{i}_overlay.jpg").size == (size * zoom, size * zoom)
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


def test_batches_give_the_answers_of_one_image_at_a_time(tmp_path):
    model_file(tmp_path / "model.pt")
    paths = scenes(tmp_path / "im", (64, 96, 64, 64, 96))
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    evaluate = load_params("params.yaml").evaluate
    one = Segmenter(tmp_path / "model.pt", evaluate, batch_size=1)
    batched = Segmenter(tmp_path / "model.pt", evaluate, batch_size=8)
    for a, b in zip(one(images), batched(images), strict=True):
        assert np.array_equal(a.semantic, b.semantic) and np.array_equal(a.panoptic, b.panoptic)
        assert a.segments_info == b.segments_info
        assert [r["segmentation"] for r in a.instances] == [r["segmentation"] for r in b.instances]
        assert np.allclose([r["score"] for r in a.instances], [r["score"] for r in b.instances], atol=1e-5)


def test_task_keeps_one_output_and_the_overlay_is_labelled(tmp_path):
    model_file(tmp_path / "model.pt")
    (image,) = scenes(tmp_path / "im", (96,))
    out = tmp_path / "out"
    assert cli(["predict", str(image), "--model", str(tmp_path / "model.pt"), "--out", str(out),
                "--task", "semantic"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["scene0_overlay.jpg", "scene0_semantic.png",
                                                     "scene0_semantic_color.png"]
    semantic = np.asarray(Image.open(out / "scene0_semantic.png"))
    rgb = np.asarray(Image.open(image).convert("RGB"))
    names = [c["name"] for c in categories()]
    ids = semantic.astype(np.int32) + 1
    drawn = [(int(v), int(v) - 1, False) for v in np.unique(ids)]
    labels = instance_labels(ids, drawn, names, stuff=True)
    assert [label.text for label in labels] == [names[v - 1] for v in np.unique(ids)]
    picture = draw_labels(draw_instances(rgb, ids, drawn, names), labels)
    for label in labels:  # each label sits on a box of its class colour
        box = picture[label.y - 6:label.y + 7, label.x - 12:label.x + 13].reshape(-1, 3)
        assert (box == label.color).all(1).sum() > 20


def test_a_model_file_whose_classes_disagree_is_named(tmp_path, capsys):
    model_file(tmp_path / "model.pt")
    record = torch.load(tmp_path / "model.pt", weights_only=True)
    record["categories"] = record["categories"][:4]
    torch.save(record, tmp_path / "four.pt")
    (image,) = scenes(tmp_path / "im", (64,))
    out = str(tmp_path / "o")
    assert cli(["predict", str(image), "--model", str(tmp_path / "four.pt"), "--out", out]) == 2
    said = capsys.readouterr().out
    assert "four.pt: not a model file of this project (ValueError" in said
    assert "4 categories but a model of 6 classes" in said
