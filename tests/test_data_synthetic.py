"""The generated data set: deterministic per seed, overlapping same-class instances, fast to preprocess."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
from data_fixtures import data_params
from PIL import Image
from scipy import ndimage

from maskformer.data.layout import rgb_to_id
from pipeline.data.sources.synthetic import SyntheticParams
from pipeline.stages.download import download
from pipeline.stages.preprocess import preprocess

SMALL = {"num_train": 6, "num_val": 3, "image_size": 64}


def _tree_hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_is_byte_identical_other_seed_differs(tmp_path):
    a = download(data_params(tmp_path / "a", "synthetic", synthetic=SMALL, seed=3)).resolve()
    b = download(data_params(tmp_path / "b", "synthetic", synthetic=SMALL, seed=3, num_workers=2)).resolve()
    c = download(data_params(tmp_path / "c", "synthetic", synthetic=SMALL, seed=4)).resolve()
    ha, hb, hc = _tree_hashes(a), _tree_hashes(b), _tree_hashes(c)
    assert len(ha) == 2 * (6 + 3) + 2 + 1  # images, panoptic PNGs, two JSON files, the recipe marker
    assert ha == hb  # the worker count does not change a byte
    assert ha.keys() == hc.keys()
    assert all(ha[k] != hc[k] for k in ha)


def _same_class_touching_pairs(ids, segments, thing_ids):
    """Pairs of same-class instances whose visible parts touch: one occludes or overlaps the other."""
    things = [s for s in segments if s["category_id"] in thing_ids]
    pairs = 0
    for i, s in enumerate(things):
        grown = ndimage.binary_dilation(ids == s["id"])
        pairs += sum(bool((grown & (ids == t["id"])).any())
                     for t in things[i + 1:] if t["category_id"] == s["category_id"])
    return pairs


def test_default_set_preprocesses_fast_and_has_same_class_overlaps(tmp_path):
    params = data_params(tmp_path, "synthetic", num_workers=2)  # the default size and classes
    download(params)
    start = time.perf_counter()
    out = preprocess(params)
    elapsed = time.perf_counter() - start
    assert elapsed < 60, f"preprocessing the default synthetic set took {elapsed:.1f}s"
    manifest = json.loads((out / "manifest.json").read_text())
    defaults = SyntheticParams()
    assert manifest["splits"]["train"]["images"] == defaults.num_train
    assert manifest["splits"]["val"]["images"] == defaults.num_val
    cats = manifest["categories"]
    assert sum(c["isthing"] for c in cats) >= 4 and sum(not c["isthing"] for c in cats) >= 2
    pan = json.loads((out / "annotations" / "panoptic_val.json").read_text())
    thing_ids = {c["id"] for c in cats if c["isthing"]}
    with_overlap, instances = 0, []
    for ann in pan["annotations"]:
        ids = rgb_to_id(np.asarray(Image.open(out / "annotations" / "panoptic_val" / ann["file_name"])))
        with_overlap += _same_class_touching_pairs(ids, ann["segments_info"], thing_ids) > 0
        instances.append(sum(s["category_id"] in thing_ids for s in ann["segments_info"]))
    assert with_overlap >= 0.7 * len(pan["annotations"])
    assert np.mean(instances) >= 4  # many instances per image


def test_colour_is_no_class_cue(tmp_path):
    out = download(data_params(tmp_path, "synthetic", synthetic={**SMALL, "num_train": 20}))
    pan = json.loads((out / "annotations" / "panoptic_train.json").read_text())
    colours: dict[int, list] = {}
    for ann in pan["annotations"]:
        image = np.asarray(Image.open(out / "train" / ann["file_name"])).astype(float)
        ids = rgb_to_id(np.asarray(Image.open(out / "annotations" / "panoptic_train" / ann["file_name"])))
        for s in ann["segments_info"]:
            colours.setdefault(s["category_id"], []).append(image[ids == s["id"]].mean(0))
    spread = [np.std(np.array(v), axis=0).mean() for v in colours.values() if len(v) > 3]
    assert spread and min(spread) > 30  # every class appears in widely varying colours
