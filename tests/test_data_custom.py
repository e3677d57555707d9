"""Users' own data (coco_instances, custom_panoptic, semantic_masks): round trips pixel for pixel, the split,
the class list (bad files and keys: test_data_custom_errors.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from custom_fixtures import H, W, coco_instances, coco_panoptic, semantic_masks, write_images
from custom_fixtures import custom_params as _params
from data_fixtures import data_params
from PIL import Image
from pycocotools import mask as mask_utils

from maskformer.data.layout import rgb_to_id
from pipeline.data.sources import DataError, get_source
from pipeline.data.sources._custom import val_names
from pipeline.data.sources.semantic_masks import parse_classes
from pipeline.stages.download import download
from pipeline.stages.preprocess import preprocess


def _png(path):
    return np.asarray(Image.open(path))


def _original(ann):
    """The mask of an original annotation, rasterised by pycocotools itself."""
    seg = ann["segmentation"]
    if isinstance(seg, dict) and isinstance(seg["counts"], str):
        return mask_utils.decode(seg).astype(bool)
    rle = mask_utils.frPyObjects(seg, H, W)
    return mask_utils.decode(mask_utils.merge(rle) if isinstance(rle, list) else rle).astype(bool)


def _outputs(out, split):
    pan = json.loads((out / "annotations" / f"panoptic_{split}.json").read_text())
    inst = json.loads((out / "annotations" / f"instances_{split}.json").read_text())
    return pan, inst


def test_coco_instances_with_stuff_round_trip(tmp_path):
    files = coco_instances(tmp_path / "export", with_stuff=True)
    params = _params(tmp_path, "coco_instances", files)
    download(params)
    out = preprocess(params)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(c["id"], c["name"], c["isthing"]) for c in manifest["categories"]] == \
        [(7, "cat", 1), (42, "dog", 1), (100, "grass", 0), (3, "sky", 0)]
    assert manifest["splits"]["train"]["images"] == 5 and manifest["splits"]["val"]["images"] == 1
    things = json.loads(files["annotations"].read_text())
    stuff = json.loads(files["stuff_annotations"].read_text())
    names = {img["id"]: img["file_name"] for img in things["images"]}
    index = {7: 0, 42: 1, 100: 2, 3: 3}
    seen = []
    for split in ("train", "val"):
        pan, inst = _outputs(out, split)
        for image, ann in zip(pan["images"], pan["annotations"], strict=True):
            seen.append(image["file_name"])
            mine = [a for a in things["annotations"] if names[a["image_id"]] == image["file_name"]]
            ids = rgb_to_id(_png(out / "annotations" / f"panoptic_{split}" / ann["file_name"]))
            sem = _png(out / "semantic" / split / ann["file_name"])
            expected_sem = np.full((H, W), 255)
            thing_pixels = np.zeros((H, W), bool)
            segs = [s for s in ann["segments_info"] if s["category_id"] in (7, 42)]
            assert len(segs) == len(mine)  # no overlaps among these things: one segment each, in order
            for seg, a in zip(segs, sorted(mine, key=lambda a: a["iscrowd"]), strict=True):
                np.testing.assert_array_equal(ids == seg["id"], _original(a))
                assert (seg["category_id"], seg["iscrowd"]) == (a["category_id"], a["iscrowd"])
                expected_sem[_original(a)] = index[a["category_id"]]
                thing_pixels |= _original(a)
            for cat in (100, 3):  # one stuff segment per class, thing pixels win
                region = np.zeros((H, W), bool)
                for a in stuff["annotations"]:
                    if names[a["image_id"]] == image["file_name"] and a["category_id"] == cat:
                        region |= _original(a)
                region &= ~thing_pixels
                got = [s for s in ann["segments_info"] if s["category_id"] == cat]
                assert len(got) == int(region.any())
                if got:
                    np.testing.assert_array_equal(ids == got[0]["id"], region)
                expected_sem[region] = index[cat]
            np.testing.assert_array_equal(sem, expected_sem)
            rles = [a for a in inst["annotations"] if a["image_id"] == image["id"]]
            for a, orig in zip(rles, sorted(mine, key=lambda a: a["iscrowd"]), strict=True):
                decoded = mask_utils.decode(a["segmentation"]).astype(bool)
                np.testing.assert_array_equal(decoded, _original(orig))
                assert a["iscrowd"] == orig["iscrowd"] and a["category_id"] == orig["category_id"]
    assert sorted(seen) == sorted(names.values())  # the image without annotations is kept (stuff only)
    crowd = [a for split in ("train", "val") for a in _outputs(out, split)[1]["annotations"] if a["iscrowd"]]
    assert len(crowd) == 1 and crowd[0]["category_id"] == 42


def _overlapping(folder):
    write_images(folder / "images", ["a.png", "b.png"])
    anns = [{"id": 1, "image_id": 1, "category_id": 7, "segmentation": [[0, 0, 20, 0, 20, 20, 0, 20]]},
            {"id": 2, "image_id": 1, "category_id": 42, "segmentation": [[10, 10, 30, 10, 30, 24, 10, 24]]},
            {"id": 3, "image_id": 1, "category_id": 42, "iscrowd": 1,
             "segmentation": mask_utils.frPyObjects([[5, 5, 25, 5, 25, 22, 5, 22]], H, W)[0]}]
    anns[2]["segmentation"]["counts"] = anns[2]["segmentation"]["counts"].decode()  # compressed RLE
    images = [{"id": i, "file_name": n, "width": W, "height": H} for i, n in ((1, "a.png"), (2, "b.png"))]
    content = {"images": images, "annotations": anns, "categories": [{"id": 7, "name": "x"},
                                                                       {"id": 42, "name": "y"}]}
    (folder / "instances.json").write_text(json.dumps(content))
    return {"images": folder / "images", "annotations": folder / "instances.json"}, anns


def test_overlaps_an_earlier_segment_keeps_its_pixels_crowd_last_and_empty_images_are_void(tmp_path):
    files, anns = _overlapping(tmp_path / "export")
    params = _params(tmp_path, "coco_instances", files,
                     custom={"val_images": files["images"], "val_annotations": files["annotations"]})
    download(params)
    out = preprocess(params)
    pan, _ = _outputs(out, "train")
    first, second, crowd = (_original(a) for a in anns)
    ids = rgb_to_id(_png(out / "annotations" / "panoptic_train" / "a.png"))
    s1, s2, s3 = pan["annotations"][0]["segments_info"]
    np.testing.assert_array_equal(ids == s1["id"], first)
    np.testing.assert_array_equal(ids == s2["id"], second & ~first)
    np.testing.assert_array_equal(ids == s3["id"], crowd & ~first & ~second)
    assert s3["iscrowd"] == 1
    assert (_png(out / "semantic" / "train" / "b.png") == 255).all()  # kept without annotations: all void
    assert pan["annotations"][1]["segments_info"] == []


def test_custom_panoptic_with_a_val_split(tmp_path):
    train, val = coco_panoptic(tmp_path / "train"), coco_panoptic(tmp_path / "val", n=2)
    params = _params(tmp_path, "custom_panoptic", train,
                     custom={"val_images": val["images"], "val_annotations": val["annotations"]})
    download(params)
    out = preprocess(params)
    manifest = json.loads((out / "manifest.json").read_text())
    cats = [(c["id"], c["name"], c["isthing"]) for c in manifest["categories"]]
    assert cats == [(5, "robot", 1), (77, "floor", 0)]
    for split, folder, n in (("train", tmp_path / "train", 5), ("val", tmp_path / "val", 2)):
        pan, inst = _outputs(out, split)
        assert len(pan["images"]) == n and len(inst["annotations"]) == n
        for ann in pan["annotations"]:
            original = rgb_to_id(_png(folder / "panoptic" / ann["file_name"]))
            got = rgb_to_id(_png(out / "annotations" / f"panoptic_{split}" / ann["file_name"]))
            np.testing.assert_array_equal(got, original)
            expected = np.select([original >= 70000, original >= 1000], [0, 1], 255)
            np.testing.assert_array_equal(_png(out / "semantic" / split / ann["file_name"]), expected)
        for a in inst["annotations"]:
            image = next(i for i in pan["images"] if i["id"] == a["image_id"])
            original = rgb_to_id(_png(folder / "panoptic" / image["file_name"]))
            decoded = mask_utils.decode(a["segmentation"]).astype(bool)
            np.testing.assert_array_equal(decoded, original >= 70000)


def test_semantic_masks_round_trip_with_relative_paths(tmp_path):
    files = semantic_masks(tmp_path / "mine")
    relative = {k: str(v.relative_to(tmp_path)) for k, v in files.items()}  # from the project root
    params = data_params(tmp_path, "semantic_masks", custom=relative)
    download(params)
    out = preprocess(params)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["categories"] == [{"id": 0, "name": "background", "isthing": 0},
                                      {"id": 3, "name": "road", "isthing": 0, "color": [128, 64, 128]},
                                      {"id": 9, "name": "traffic sign", "isthing": 0, "color": [220, 220, 0]}]
    assert manifest["splits"]["val"]["images"] == 1 and manifest["splits"]["train"]["instances"] == 0
    lut = np.full(256, 255)
    lut[[0, 3, 9]] = [0, 1, 2]
    for split in ("train", "val"):
        pan, _ = _outputs(out, split)
        for ann in pan["annotations"]:
            label = _png(files["annotations"] / ann["file_name"]).astype(np.int64)
            np.testing.assert_array_equal(_png(out / "semantic" / split / ann["file_name"]), lut[label])
            ids = rgb_to_id(_png(out / "annotations" / f"panoptic_{split}" / ann["file_name"]))
            for seg in ann["segments_info"]:
                np.testing.assert_array_equal(ids == seg["id"], label == seg["category_id"])


def test_val_fraction_split_is_deterministic_disjoint_and_complete(tmp_path):
    names = [f"n{i}" for i in range(10)]
    assert val_names(names, 0, 0.2) == val_names(list(reversed(names)), 0, 0.2)  # same params, same split
    assert len(val_names(names, 0, 0.2)) == 2 and len(val_names(names, 0, 0.01)) == 1
    assert len(val_names(names, 0, 0.99)) == 9  # at least one image is left for train
    assert len({frozenset(val_names(names, seed, 0.3)) for seed in range(5)}) > 1  # data.seed picks them
    with pytest.raises(DataError, match="data.custom.val_fraction: 1 image"):
        val_names(["only"], 0, 0.5)
    files = semantic_masks(tmp_path / "mine", n=6)
    params = _params(tmp_path, "semantic_masks", files, custom={"val_fraction": 0.5})
    root = download(params)
    source = get_source("semantic_masks")
    train, val = ({it.name for it in source.items(root, s)} for s in ("train", "val"))
    assert len(val) == 3 and not train & val and train | val == {f"s{i}" for i in range(6)}
    assert val == {it.name for it in source.items(download(params), "val")}


def test_class_list_parser(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("# comment\n\n  12 big tree 0 128 0   # sparse value, spaces in the name\n"
                    "4 car\n200 lane 1 2\n")
    assert parse_classes(path, 255) == [
        {"id": 12, "name": "big tree", "isthing": 0, "color": [0, 128, 0]},
        {"id": 4, "name": "car", "isthing": 0}, {"id": 200, "name": "lane 1 2", "isthing": 0}]
    for text, message in [("1 a\nx road\n", r"classes.txt:2: expected '<value> <name>'"),
                          ("1 a\n\n7\n", r"classes.txt:3: expected"),
                          ("1 a\n1 b\n", r"classes.txt:2: class id 1 listed twice"),
                          ("1 a\n2 a\n", r"classes.txt:2: class name 'a' listed twice"),
                          ("255 void\n", r"classes.txt:1: value 255 is data.custom.ignore_value"),
                          ("1 a 0 0 300\n", r"classes.txt:1: colour \[0, 0, 300\] outside 0-255"),
                          ("# nothing\n", r"classes.txt: no classes")]:
        path.write_text(text)
        with pytest.raises(DataError, match=message):
            parse_classes(path, 255)


def test_custom_params_reject_unknown_keys_and_bad_fractions(tmp_path):
    from pydantic import ValidationError

    for custom in ({"image": "x"}, {"val_fraction": 1.0}, {"ignore_value": -1}):
        with pytest.raises(ValidationError):
            data_params(tmp_path, "coco_instances", custom=custom)
