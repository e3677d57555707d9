"""Users' own data: every bad key, file and annotation is named (file and annotation id), or skipped and
counted with data.skip_bad_files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from custom_fixtures import H, W, coco_instances, coco_panoptic, semantic_masks
from custom_fixtures import annotation as _ann
from custom_fixtures import custom_params as _params
from custom_fixtures import edit_json as _edit
from PIL import Image
from pycocotools import mask as mask_utils

from pipeline.data.sources import DataError
from pipeline.stages.download import download
from pipeline.stages.preprocess import preprocess


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
