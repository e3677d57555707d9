"""Stage `preprocess`: convert the downloaded source into the canonical COCO-style layout.

data/processed/<dataset>/: images/<split>/, semantic/<split>/*.png, annotations/instances_<split>.json,
annotations/panoptic_<split>.json, annotations/panoptic_<split>/*.png and manifest.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path

from pipeline.data_convert import ConvertJob, convert
from pipeline.data_parallel import parallel_map
from pipeline.params import DataParams, load_params
from pipeline.sources import SPLITS, DataError, get_source
from pipeline.stages.download import source_root


def _write_json(path: Path, content: dict) -> str:
    """Write JSON (stable key order) and return the sha256 of the bytes."""
    data = json.dumps(content, sort_keys=True).encode()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _convert_split(params: DataParams, root: Path, out: Path, split: str, categories: list[dict]) -> dict:
    """Convert one split in worker processes; write its JSON files; return its manifest entry."""
    source = get_source(params.dataset)
    items = source.items(root, split)
    if not items:
        raise DataError(f"{root}: no {split} images found for source {source.name}")
    items = items[: params.max_images_per_split]
    for sub in (f"images/{split}", f"semantic/{split}", f"annotations/panoptic_{split}"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    cats = tuple((c["id"], int(c["isthing"])) for c in categories)
    jobs = [ConvertJob(source.name, it, out, cats, params.skip_bad_files) for it in items]
    results = parallel_map(convert, jobs, params.num_workers, f"preprocess {split}")
    images, panoptic, instances, hashes, skipped = [], [], [], {}, []
    for result in results:
        if "skipped" in result:
            skipped.append(result["skipped"])
            continue
        image_id = len(images) + 1
        images.append({"id": image_id, **result["image"]})
        panoptic.append({"image_id": image_id, **result["panoptic"]})
        for ann in result["instances"]:
            instances.append({"id": len(instances) + 1, "image_id": image_id, **ann})
        hashes.update(result["hashes"])
    things = [c for c in categories if c["isthing"]]
    for kind, anns, cats in (("panoptic", panoptic, categories), ("instances", instances, things)):
        rel = f"annotations/{kind}_{split}.json"
        hashes[rel] = _write_json(out / rel, {"images": images, "annotations": anns, "categories": cats})
    digest = hashlib.sha256("".join(f"{k}={hashes[k]}\n" for k in sorted(hashes)).encode()).hexdigest()
    return {"images": len(images), "segments": sum(len(p["segments_info"]) for p in panoptic),
            "instances": len(instances), "skipped": len(skipped), "skipped_files": skipped, "sha256": digest}


def preprocess(params: DataParams) -> Path:
    """Convert every split of the chosen source into data/processed/<dataset>/ and return that folder.

    Output goes to a scratch folder renamed into place at the end, so a failure leaves the previous
    result (or nothing) rather than a half-written layout.
    """
    source = get_source(params.dataset)
    root = source_root(params)
    if not root.exists():
        raise DataError(f"{root}: the {source.name} data is missing; run `python -m pipeline download` first")
    out = params.processed_path()
    scratch = out.with_name(out.name + ".tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "annotations").mkdir(parents=True)
    try:
        categories = source.categories(root)
        manifest = {
            "dataset": params.dataset,
            "source": {"name": source.name, "root": str(root),
                       "archives": [dataclasses.asdict(a) for a in source.archives]},
            "num_classes": len(categories),
            "categories": categories,
            "params": params.model_dump(),
            "splits": {s: _convert_split(params, root, scratch, s, categories) for s in SPLITS},
        }
        _write_json(scratch / "manifest.json", manifest)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    scratch.rename(out)
    return out


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline preprocess [--params params.yaml]`."""
    from pipeline import tracking  # here, not at the top: the stage function stays free of MLflow
    argparse.ArgumentParser(prog="python -m pipeline preprocess", description=__doc__).parse_args(argv)
    params = load_params(params_path)
    start = time.perf_counter()
    with tracking.stage_run("preprocess", params):
        out = preprocess(params.data)
        tracking.log_artifacts([out / "manifest.json"], "data")
    splits = json.loads((out / "manifest.json").read_text())["splits"]
    counts = ", ".join(f"{s}: {v['images']} images ({v['skipped']} skipped)" for s, v in splits.items())
    print(f"preprocess: {out} in {time.perf_counter() - start:.1f}s; {counts}")
    return 0
