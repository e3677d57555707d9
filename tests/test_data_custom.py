"""Users' own data (coco_instances, custom_panoptic, semantic_masks): round trips pixel for pixel, the split,
params checks and every bad file named (or skipped and counted)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from custom_fixtures import H, W, coco_instances, coco_panoptic, semantic_masks, write_images
from data_fixtures import data_params
from PIL import Image
from pycocotools import mask as mask_utils

from maskformer.data.layout import rgb_to_id
from pipeline.data.sources import DataError, get_source
from pipeline.data.sources._custom import val_names
from pipeline.data.sources.semantic_masks import parse_classes
from pipeline.stages.download import download
from pipeline.stages.preprocess import preprocess


def _params(tmp_path, dataset, files, **overrides):
    custom = {k: v if v is None or isinstance(v, float | int) else str(v)
              for k, v in {**files, **overrides.pop("custom", {})}.items()}
    return data_params(tmp_path, dataset, custom=custom, **overrides)


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


@pytest.mark.parametrize(("custom", "message"), [
    ({"annotations": None}, r"data.custom.annotations: required for data.dataset: coco_instances"),
    ({"images": "nope"}, r"data.custom.images: .*/nope does not exist"),
    ({"annotations": "export/images"}, r"data.custom.annotations: .*export/images is not a file"),
    ({"classes": "export/instances.json"}, r"data.custom.classes: not used by data.dataset: coco_instances"),
    ({"val_images": "export/images"}, r"data.custom.val_annotations: required"),
    ({"val_stuff_annotations": "x.json"}, r"data.custom.val_images: required"),
])
def test_params_errors_name_the_key_and_the_path(tmp_path, custom, message):
    files = coco_instances(tmp_path / "export")
    with pytest.raises(DataError, match=message):
        download(_params(tmp_path, "coco_instances", files, custom=custom))


def test_semantic_masks_needs_a_class_list_and_local_path_is_refused(tmp_path):
    files = semantic_masks(tmp_path / "mine")
    with pytest.raises(DataError, match="data.custom.classes: required for data.dataset: semantic_masks"):
        download(_params(tmp_path, "semantic_masks", files, custom={"classes": None}))
    local = {"semantic_masks": {"local_path": str(tmp_path)}}
    params = _params(tmp_path, "semantic_masks", files, sources=local)
    with pytest.raises(DataError, match="data.sources.semantic_masks.local_path: not used"):
        download(params)


def _edit(path, change):
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def _ann(content, ann_id):
    return next(a for a in content["annotations"] if a["id"] == ann_id)


def _fails_then_skips(tmp_path, dataset, files, message):
    """Preprocess with the files as both splits: the error must match; then the manifest's splits when
    bad files are skipped."""
    params = _params(tmp_path, dataset, files, custom={"val_images": files["images"],
                                                       "val_annotations": files["annotations"]})
    download(params)
    with pytest.raises(DataError, match=message):
        preprocess(params)
    out = preprocess(params.model_copy(update={"skip_bad_files": True}))
    return json.loads((out / "manifest.json").read_text())["splits"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: _ann(c, 100)["segmentation"][0].__setitem__(0, 40.5),
     r"instances.json: annotation 100 \(image img_0.jpg\): polygon point \(40.5, 3\) outside the 32x24"),
    (lambda c: _ann(c, 102).__setitem__("category_id", 8),
     r"instances.json: annotation 102 \(image img_1.jpg\): category id 8 is not in the categories"),
    (lambda c: _ann(c, 999)["segmentation"].__setitem__("size", [10, 10]),
     r"instances.json: annotation 999 \(image img_0.jpg\): RLE size \[10, 10\] differs from the image's"),
    (lambda c: _ann(c, 999)["segmentation"]["counts"].append(5),
     r"annotation 999 \(image img_0.jpg\): RLE counts sum to 773, the image has 768 pixels"),
    (lambda c: _ann(c, 104).pop("segmentation"), r"annotation 104 \(image img_2.jpg\): no segmentation"),
    (lambda c: c["images"][3].__setitem__("width", 40),
     r"instances.json#image_id=13: label size 40x24 does not match image"),
])
def test_a_bad_annotation_names_the_file_and_annotation_id_or_is_skipped(tmp_path, change, message):
    files = coco_instances(tmp_path / "export")
    _edit(files["annotations"], change)
    train = _fails_then_skips(tmp_path, "coco_instances", files, message)["train"]
    assert train["images"] == 5 and train["skipped"] == 1 and "instances.json" in train["skipped_files"][0]


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p.write_text("{not json"), r"instances.json: cannot read a COCO instances JSON"),
    (lambda p: _edit(p, lambda c: c.pop("categories")), r"instances.json: no 'categories' list"),
    (lambda p: _edit(p, lambda c: c["images"][2].pop("height")), r"instances.json: image #2 lacks 'height'"),
    (lambda p: _edit(p, lambda c: _ann(c, 106).__setitem__("image_id", 77)),
     r"instances.json: annotation 106: image id 77 is not in its 'images'"),
])
def test_a_bad_json_names_the_file(tmp_path, change, message):
    files = coco_instances(tmp_path / "export")
    change(files["annotations"])
    params = _params(tmp_path, "coco_instances", files)
    download(params)
    with pytest.raises(DataError, match=message):
        preprocess(params.model_copy(update={"skip_bad_files": True}))  # the whole file is bad: no skipping


def test_missing_and_corrupt_images_are_named_or_skipped_and_counted(tmp_path):
    files = coco_instances(tmp_path / "export")
    (files["images"] / "img_1.jpg").unlink()
    (files["images"] / "img_4.jpg").write_bytes(b"not a jpeg")
    train = _fails_then_skips(tmp_path, "coco_instances", files, r"img_1.jpg: unreadable image")["train"]
    assert train["images"] == 4 and train["skipped"] == 2


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: (d / "s2.png").unlink(), r"labels/s2.png: missing: no label PNG"),
    (lambda d: Image.fromarray(np.zeros((5, 5), np.uint8)).save(d / "s2.png"), r"s2.png: label size 5x5"),
    (lambda d: Image.fromarray(np.full((H, W), 7, np.uint8)).save(d / "s2.png"),
     r"s2.png: label value 7 is not in the class list"),
    (lambda d: Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(d / "s2.png"), r"s2.png: a RGB label PNG"),
])
def test_a_bad_label_png_is_named_or_skipped(tmp_path, change, message):
    files = semantic_masks(tmp_path / "mine")
    change(files["annotations"])
    assert _fails_then_skips(tmp_path, "semantic_masks", files, message)["val"]["skipped"] == 1


def test_a_panoptic_image_without_annotation_or_png_is_a_bad_file(tmp_path):
    files = coco_panoptic(tmp_path / "p")
    _edit(files["annotations"], lambda c: c["annotations"].pop(1))
    (tmp_path / "p" / "panoptic" / "p3.png").unlink()
    params = _params(tmp_path, "custom_panoptic", files)
    download(params)
    first = r"image 2 \(p1.png\) has no entry in 'annotations'|p3.png: unreadable"  # whichever comes first
    with pytest.raises(DataError, match=first):
        preprocess(params)
    out = preprocess(params.model_copy(update={"skip_bad_files": True}))
    splits = json.loads((out / "manifest.json").read_text())["splits"]
    assert splits["train"]["skipped"] + splits["val"]["skipped"] == 2
    assert splits["train"]["images"] + splits["val"]["images"] == 3


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


def test_polygon_tolerance_is_one_pixel():
    from pipeline.data.sources.coco_instances import rasterise

    assert rasterise([[-1, -0.5, 33, 0, 32, 25]], H, W).any()  # rounding of an exporter: accepted
    with pytest.raises(ValueError, match=r"point \(33.5, 0\) outside the 32x24 image \(tolerance 1 px\)"):
        rasterise([[0, 0, 33.5, 0, 32, 24]], H, W)


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["categories"].append({"id": 42, "name": "dup"}), r"stuff.json: category id 42 is listed"),
    (lambda c: c["images"][0].__setitem__("file_name", "x.jpg"), r"stuff.json: image 10 \(x.jpg\) is not"),
    (lambda c: _ann(c, 500).__setitem__("category_id", 7),
     r"stuff.json: annotation 500 \(image img_0.jpg\): category id 7 is not in the categories"),
])
def test_a_bad_stuff_json_names_the_file(tmp_path, change, message):
    files = coco_instances(tmp_path / "export", with_stuff=True)
    _edit(files["stuff_annotations"], change)
    params = _params(tmp_path, "coco_instances", files)
    download(params)
    with pytest.raises(DataError, match=message):
        preprocess(params)


def test_compressed_rle_counts_are_read_and_checked_before_decoding():
    from pipeline.data.sources.coco_instances import rasterise, rle_counts

    rng = np.random.default_rng(4)
    mask = rng.random((H, W)) > 0.5
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    text = rle["counts"].decode()
    assert sum(rle_counts(text)) == H * W
    np.testing.assert_array_equal(rasterise({"size": [H, W], "counts": text}, H, W), mask)
    wide = mask_utils.encode(np.asfortranarray(np.ones((H, W + 8), np.uint8)))["counts"].decode()
    with pytest.raises(ValueError, match=f"RLE counts sum to {H * (W + 8)}, the image has {H * W} pixels"):
        rasterise({"size": [H, W], "counts": wide}, H, W)  # pycocotools would write past the mask
