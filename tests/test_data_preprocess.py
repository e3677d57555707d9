"""Preprocess stage: ADE-like and COCO-panoptic-like fixtures to the canonical layout, round-tripped."""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_fixtures import FixtureServer, ade_archive, coco_archives, coco_scene, data_params, md5
from PIL import Image
from pycocotools import mask as mask_utils

from maskformer.data.layout import rgb_to_id
from pipeline.data.sources import DataError
from pipeline.stages.download import download
from pipeline.stages.preprocess import preprocess


def _png(path):
    return np.asarray(Image.open(path))


def _ade_labels():
    rng = np.random.default_rng(1)
    return {f"{split}/ADE_{split}_{i:08d}": rng.integers(0, 151, (12, 16), dtype=np.uint8)
            for split, n in (("train", 3), ("val", 2)) for i in range(n)}


def _serve_ade(server, tmp_path, labels, **overrides):
    data = ade_archive(labels)
    name = "ADEChallengeData2016.zip"
    server.files[f"/{name}"] = data
    sources = {"ade20k": {"urls": {name: server.url(f"/{name}")}, "checksums": {name: md5(data)}}}
    return data_params(tmp_path, "ade20k", sources=sources, **overrides)


def test_ade_round_trip(tmp_path):
    labels = _ade_labels()
    with FixtureServer() as server:
        params = _serve_ade(server, tmp_path, labels)
        download(params)
    out = preprocess(params)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_classes"] == 150 and manifest["splits"]["train"]["images"] == 3
    assert manifest["splits"]["val"]["images"] == 2 and manifest["splits"]["train"]["instances"] == 0
    for key, label in labels.items():
        split, stem = key.split("/")
        assert (out / "images" / split / f"{stem}.jpg").is_file()
        expected = np.where(label == 0, 255, label.astype(np.int64) - 1)
        np.testing.assert_array_equal(_png(out / "semantic" / split / f"{stem}.png"), expected)
        ids = rgb_to_id(_png(out / "annotations" / f"panoptic_{split}" / f"{stem}.png"))
        pan = json.loads((out / "annotations" / f"panoptic_{split}.json").read_text())
        ann = next(a for a in pan["annotations"] if a["file_name"] == f"{stem}.png")
        for seg in ann["segments_info"]:  # ADE category ids are the raw label values
            np.testing.assert_array_equal(ids == seg["id"], label == seg["category_id"])
            assert seg["area"] == int((label == seg["category_id"]).sum())


def test_coco_panoptic_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    scenes = {"train": {f"{i:012d}": coco_scene(rng) for i in range(4)},
              "val": {f"{i:012d}": coco_scene(rng) for i in range(10, 12)}}
    archives = coco_archives(scenes)
    with FixtureServer() as server:
        urls = {}
        for name, data in archives.items():
            server.files[f"/coco/{name}"] = data
            urls[name] = server.url(f"/coco/{name}")
        checksums = {name: md5(data) for name, data in archives.items()}
        sources = {"coco_panoptic": {"urls": urls, "checksums": checksums}}
        params = data_params(tmp_path, "coco_panoptic", sources=sources)
        download(params)
    out = preprocess(params)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["val"]["instances_from"] == "instances_val2017.json"
    assert manifest["splits"]["train"]["instances_from"] == "panoptic segments"
    for split, items in scenes.items():
        pan = json.loads((out / "annotations" / f"panoptic_{split}.json").read_text())
        inst = json.loads((out / "annotations" / f"instances_{split}.json").read_text())
        cats = [c["id"] for c in pan["categories"]]
        assert cats == [1, 3, 149, 184] and [c["id"] for c in inst["categories"]] == [1, 3]
        assert [im["id"] for im in pan["images"]] == [7 + i for i in range(len(items))]  # COCO's own ids
        for image, ann in zip(pan["images"], pan["annotations"], strict=True):
            ids, segments = items[image["file_name"].removesuffix(".jpg")]
            got = rgb_to_id(_png(out / "annotations" / f"panoptic_{split}" / ann["file_name"]))
            np.testing.assert_array_equal(got, ids)  # panoptic ids survive exactly
            sem = _png(out / "semantic" / split / ann["file_name"])
            assert {s["id"]: s["category_id"] for s in ann["segments_info"]} == \
                {s["id"]: s["category_id"] for s in segments}
            for seg in segments:
                assert (sem[ids == seg["id"]] == cats.index(seg["category_id"])).all()
            assert (sem[ids == 0] == 255).all()
            things = [s for s in segments if s["category_id"] in (1, 3)]
            mine = [a for a in inst["annotations"] if a["image_id"] == image["id"]]
            assert len(mine) == len(things)
            if split == "val":  # evaluated against the official instances JSON (boxes here), as published
                official = [a["segmentation"] for a in inst["annotations"] if a["image_id"] == image["id"]]
                assert all(len(p[0]) == 8 for p in official), official
                continue
            for seg, a in zip(things, mine, strict=True):
                decoded = mask_utils.decode(a["segmentation"]).astype(bool)
                np.testing.assert_array_equal(decoded, ids == seg["id"])
                assert a["category_id"] == seg["category_id"] and a["iscrowd"] == seg["iscrowd"]


def test_out_of_range_label_names_the_file(tmp_path):
    labels = _ade_labels()
    labels["train/ADE_train_00000001"][3, 3] = 200
    with FixtureServer() as server:
        params = _serve_ade(server, tmp_path, labels)
        download(params)
    with pytest.raises(DataError, match=r"ADE_train_00000001\.png: label id 200 outside the categories"):
        preprocess(params)
    processed = tmp_path / "data" / "processed"
    assert not (processed / "ade20k").exists()  # no half-written layout; only the resumable scratch
    assert [p.name for p in processed.iterdir()] == ["ade20k.tmp"]


def _corrupt_one_image(params):
    root = download(params)
    bad = root / "images" / "training" / "ADE_train_00000002.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    return bad


def test_corrupt_image_names_the_file_or_is_skipped_and_counted(tmp_path):
    with FixtureServer() as server:
        params = _serve_ade(server, tmp_path, _ade_labels())
        bad = _corrupt_one_image(params)
    with pytest.raises(DataError, match=rf"{bad.name}: unreadable image"):
        preprocess(params)
    out = preprocess(params.model_copy(update={"skip_bad_files": True}))
    train = json.loads((out / "manifest.json").read_text())["splits"]["train"]
    assert train["images"] == 2 and train["skipped"] == 1 and bad.name in train["skipped_files"][0]


def test_size_mismatch_names_the_file(tmp_path):
    with FixtureServer() as server:
        params = _serve_ade(server, tmp_path, _ade_labels())
        root = download(params)
    label = root / "annotations" / "validation" / "ADE_val_00000001.png"
    Image.fromarray(np.ones((5, 5), np.uint8)).save(label)
    with pytest.raises(DataError, match=r"ADE_val_00000001\.png: label size 5x5 does not match"):
        preprocess(params)


def test_cityscapes_local_folder(tmp_path):
    folder = tmp_path / "cityscapes"
    rng = np.random.default_rng(3)
    for split in ("train", "val"):
        (folder / "leftImg8bit" / split / "aachen").mkdir(parents=True)
        (folder / "gtFine" / split / "aachen").mkdir(parents=True)
        inst = np.full((10, 12), 7, np.int32)  # road
        inst[:3] = 23  # sky
        inst[4:7, 2:5] = 26001  # car #1
        inst[4:7, 6:9] = 26002  # car #2
        inst[8, 0] = 26  # car pixels without an instance: crowd
        inst[9, 0] = 4  # a void label id
        stem = f"aachen_000000_00001{split == 'val':d}"
        Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(
            folder / "leftImg8bit" / split / "aachen" / f"{stem}_leftImg8bit.png")
        label = folder / "gtFine" / split / "aachen" / f"{stem}_gtFine_instanceIds.png"
        Image.fromarray(inst.astype(np.uint16)).save(label)
    params = data_params(tmp_path, "cityscapes", sources={"cityscapes": {"local_path": str(folder)}})
    out = preprocess(params)
    inst = json.loads((out / "annotations" / "instances_train.json").read_text())
    assert [(a["category_id"], a["area"], a["iscrowd"]) for a in inst["annotations"]] == \
        [(26, 1, 1), (26, 9, 0), (26, 9, 0)]
    sem = _png(out / "semantic" / "train" / "aachen_000000_000010.png")
    assert sem[0, 0] == 10 and sem[9, 5] == 0 and sem[5, 3] == 13 and sem[9, 0] == 255


def test_palette_labels_are_read_as_indices_not_luminance(tmp_path):
    from pipeline.data.sources._common import read_label

    label = Image.fromarray(np.array([[0, 1], [2, 150]], np.uint8), mode="P")
    label.putpalette([255, 255, 255] * 256)  # every index white: luminance would read 255 everywhere
    label.save(tmp_path / "palette.png")
    assert read_label(tmp_path / "palette.png", "L").tolist() == [[0, 1], [2, 150]]
    assert read_label(tmp_path / "palette.png", "I").tolist() == [[0, 1], [2, 150]]


def test_an_image_over_pils_pixel_limit_is_a_bad_file_not_a_crash(tmp_path, monkeypatch):
    from pipeline.data.sources._common import read_label

    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels > 2x the limit: DecompressionBombError
    with pytest.raises(DataError, match="big.png: unreadable label"):
        read_label(tmp_path / "big.png", "L")


def test_images_are_hard_linked_not_copied_and_disk_space_is_checked_first(tmp_path, monkeypatch):
    import os
    import shutil
    from collections import namedtuple

    from pipeline.data.sources import get_source
    from pipeline.stages.download import source_root

    params = data_params(tmp_path, "synthetic", num_workers=0, synthetic={"num_train": 3, "num_val": 2,
                                                                         "image_size": 64})
    download(params)
    out = preprocess(params)
    item = get_source("synthetic").items(source_root(params), "train")[0]
    processed = out / "images" / "train" / f"{item.name}{item.image.suffix}"
    assert processed.is_file() and os.path.samefile(processed, item.image)  # one inode, no second copy
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(DataError, match=r"processed: 0.0 GiB free, the converted data set needs about"):
        preprocess(params)
    assert (out / "manifest.json").is_file()  # the earlier result is untouched


def test_a_partial_copy_of_a_real_set_is_named_unless_a_subset_is_asked_for(tmp_path):
    with FixtureServer() as server:
        params = _serve_ade(server, tmp_path, _ade_labels(), check_image_counts=True)
        download(params)
    with pytest.raises(DataError, match=r"3 train images, the full ade20k has 20210: a partial copy\?"):
        preprocess(params)
    subset = params.model_copy(update={"max_images_per_split": 2})
    manifest = json.loads((preprocess(subset) / "manifest.json").read_text())
    assert manifest["splits"]["train"]["images"] == 2


def test_a_failed_conversion_resumes_from_the_images_it_finished(tmp_path, monkeypatch):
    import pipeline.data.convert as convert_module

    labels = _ade_labels()
    labels["train/ADE_train_00000002"] = np.full((12, 16), 200, np.uint8)  # class 200: a bad label
    with FixtureServer() as server:
        params = _serve_ade(server, tmp_path, labels)
        download(params)
    with pytest.raises(DataError, match="ADE_train_00000002.png: label id 200"):
        preprocess(params)
    records = sorted(p.name for p in (tmp_path / "data/processed/ade20k.tmp/.records/train").iterdir())
    assert records == ["ADE_train_00000000.json", "ADE_train_00000001.json"]  # kept, with their files
    bad = next((tmp_path / "data/raw/ade20k").rglob("ADE_train_00000002.png"))
    Image.fromarray(np.full((12, 16), 3, np.uint8)).save(bad)  # the user fixes the file
    converted = []
    real = convert_module._convert
    monkeypatch.setattr(convert_module, "_convert", lambda job: converted.append(job.item.name) or real(job))
    out = preprocess(params)
    assert converted == ["ADE_train_00000002", "ADE_val_00000000", "ADE_val_00000001"]  # the rest only
    assert not (out / ".records").exists() and not (tmp_path / "data/processed/ade20k.tmp").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["train"]["images"] == 3


def test_a_detectron2_coco_tree_is_read_in_place_and_never_written(tmp_path):
    import io
    import zipfile

    rng = np.random.default_rng(3)
    scenes = {"train": {f"{i:012d}": coco_scene(rng) for i in range(2)},
              "val": {f"{i:012d}": coco_scene(rng) for i in range(10, 11)}}
    tree = tmp_path / "datasets" / "coco"  # detectron2's DETECTRON2_DATASETS/coco layout
    for data in coco_archives(scenes).values():
        zipfile.ZipFile(io.BytesIO(data)).extractall(tree)
    params = data_params(tmp_path / "project", "coco_panoptic",
                         sources={"coco_panoptic": {"local_path": str(tree.parent)}})
    with pytest.raises(DataError, match=r"panoptic_train2017: missing; extract annotations/panoptic_train"):
        download(params)  # the PNG zips are still packed: said, not unpacked into the user's folder
    for split in ("train2017", "val2017"):
        nested = tree / "annotations" / f"panoptic_{split}.zip"
        zipfile.ZipFile(nested).extractall(tree / "annotations")
        nested.unlink()
    before = sorted((p.relative_to(tree), p.stat().st_mtime_ns) for p in tree.rglob("*"))
    download(params)
    out = preprocess(params)
    assert json.loads((out / "manifest.json").read_text())["splits"]["train"]["images"] == 2
    assert sorted((p.relative_to(tree), p.stat().st_mtime_ns) for p in tree.rglob("*")) == before
