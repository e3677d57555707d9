"""Stage `preprocess`: convert the downloaded source into the canonical layout (maskformer.data.layout)
in data/processed/<dataset>/, checking every file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from maskformer.data.layout import CanonicalLayout
from pipeline.data.convert import RECORDS, ConvertJob, convert
from pipeline.data.pool import parallel_map
from pipeline.data.sources import SPLITS, DataError, Item, get_source
from pipeline.outputs import processed_dir
from pipeline.params import DataParams, Params
from pipeline.stages.download import source_root
from pipeline.stages.runner import run_stage


def _write_json(path: Path, content: dict) -> str:
    """Write JSON (stable key order) and return the sha256 of the bytes."""
    data = json.dumps(content, sort_keys=True).encode()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _convert_split(params: DataParams, root: Path, out: CanonicalLayout, split: str, categories: list[dict],
                   items: list[Item]) -> dict:
    """Convert one split's items in worker processes; write its JSON files; return its manifest entry."""
    source = get_source(params.dataset)
    if not items:
        raise DataError(f"{root}: no {split} images found for source {source.name}")
    expected = source.expected_images.get(split)
    full = params.check_image_counts and params.max_images_per_split is None
    if full and expected and len(items) != expected:
        raise DataError(f"{root}: {len(items)} {split} images, the full {source.name} has {expected}: a "
                        "partial copy? Complete it, or set data.max_images_per_split (a subset) or "
                        "data.check_image_counts: false")
    items = items[: params.max_images_per_split]
    for folder in (out.image_dir(split), out.semantic_dir(split), out.panoptic_dir(split)):
        folder.mkdir(parents=True, exist_ok=True)
    cats = tuple((c["id"], int(c["isthing"])) for c in categories)
    jobs = [ConvertJob(source.name, it, out, cats, params.skip_bad_files) for it in items]
    results = parallel_map(convert, jobs, params.num_workers, f"preprocess {split}")
    images, panoptic, instances, hashes, skipped = [], [], [], {}, []
    for job, result in zip(jobs, results, strict=True):
        if "skipped" in result:
            skipped.append(result["skipped"])
            continue
        own = job.item.image_id if source.keeps_image_ids else None
        image_id = own if own is not None else len(images) + 1
        images.append({"id": image_id, **result["image"]})
        panoptic.append({"image_id": image_id, **result["panoptic"]})
        for ann in result["instances"]:
            instances.append({"id": len(instances) + 1, "image_id": image_id, **ann})
        hashes.update(result["hashes"])
    things = [c for c in categories if c["isthing"]]
    official = source.official_instances(root, split)
    if official is not None:
        instances, things = _official_instances(official, images, things)
    for path, anns, cats in ((out.panoptic_json(split), panoptic, categories),
                             (out.instances_json(split), instances, things)):
        content = {"images": images, "annotations": anns, "categories": cats}
        hashes[path.relative_to(out.root).as_posix()] = _write_json(path, content)
    digest = hashlib.sha256("".join(f"{k}={hashes[k]}\n" for k in sorted(hashes)).encode()).hexdigest()
    return {"images": len(images), "segments": sum(len(p["segments_info"]) for p in panoptic),
            "instances": len(instances), "skipped": len(skipped), "skipped_files": skipped, "sha256": digest,
            "instances_from": official.name if official is not None else "panoptic segments"}


def _official_instances(path: Path, images: list[dict], things: list[dict]) -> tuple[list[dict], list[dict]]:
    """The annotations of `path` (a COCO instances JSON) on the converted images (same ids), and its
    categories, which must be the source's thing categories."""
    try:
        content = json.loads(path.read_text())
        kept = {image["id"] for image in images}
        annotations = [a for a in content["annotations"] if a["image_id"] in kept]
        categories = content["categories"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: cannot read instance annotations: {exc}") from exc
    unknown = {c["id"] for c in categories} - {c["id"] for c in things}
    if unknown:
        raise DataError(f"{path}: category ids {sorted(unknown)} are not thing categories of the panoptic "
                        "set")
    return annotations, [c for c in things if c["id"] in {c["id"] for c in categories}]


def check_free_space(items: list[Item], target: Path) -> None:
    """Fail early, naming the folder, when `target`'s file system cannot hold the converted set: about
    twice the labels' bytes (semantic + panoptic PNGs), plus the images' unless they can be hard-linked."""
    present = [item.image for item in items if item.image.is_file()]  # a missing one: a bad file, later
    images = sum(path.stat().st_size for path in present)
    labels = sum(item.label.stat().st_size for item in items if item.label.is_file())
    same_device = bool(present) and present[0].stat().st_dev == target.stat().st_dev
    needed = 2 * labels + (0 if same_device else images)
    free = shutil.disk_usage(target).free
    if needed > free:
        raise DataError(f"{target}: {free / 2**30:.1f} GiB free, the converted data set needs about "
                        f"{needed / 2**30:.1f} GiB: free some space or put data/ on a larger disk")


def preprocess(params: DataParams) -> Path:
    """Convert every split of the chosen source into data/processed/<dataset>/ and return that folder.

    Output goes to a scratch folder renamed into place at the end, so a failure leaves the previous
    result (or nothing) rather than a half-written layout. The scratch folder survives a failure or a
    kill with every finished image's result: a rerun with the same data params reuses those it can
    verify (by hash) and converts the rest.
    """
    source = get_source(params.dataset)
    root = source_root(params)
    if not root.exists():
        raise DataError(f"{root}: the {source.name} data is missing; run `python -m pipeline download` first")
    out = processed_dir(params)
    out.parent.mkdir(parents=True, exist_ok=True)
    items = {split: source.items(root, split) for split in SPLITS}  # read once (COCO's JSON is large)
    check_free_space([it for split in SPLITS for it in items[split]], out.parent)
    scratch = CanonicalLayout(out.with_name(out.name + ".tmp"))
    recipe = {"params": params.data_dump(), "root": str(root.resolve())}
    marker = scratch.root / RECORDS / "recipe.json"
    if not (marker.is_file() and json.loads(marker.read_text()) == recipe):  # another run's leftovers
        shutil.rmtree(scratch.root, ignore_errors=True)
    scratch.panoptic_json("train").parent.mkdir(parents=True, exist_ok=True)
    marker.parent.mkdir(exist_ok=True)
    marker.write_text(json.dumps(recipe))
    categories = source.categories(root)
    manifest = {
        "dataset": params.dataset,
        "source": {"name": source.name, "root": str(root),
                   "archives": [dataclasses.asdict(a) for a in source.archives]},
        "num_classes": len(categories),
        "categories": categories,
        "params": params.data_dump(),
        "splits": {s: _convert_split(params, root, scratch, s, categories, items[s]) for s in SPLITS},
    }
    _write_json(scratch.manifest, manifest)
    shutil.rmtree(scratch.root / RECORDS)
    shutil.rmtree(out, ignore_errors=True)
    scratch.root.rename(out)
    return out


def _run(params: Params, run: Any) -> str:
    from pipeline import tracking  # here: importing the stage stays free of MLflow

    start = time.perf_counter()
    layout = CanonicalLayout(preprocess(params.data))
    tracking.log_artifacts([layout.manifest], "data")
    splits = json.loads(layout.manifest.read_text())["splits"]
    counts = ", ".join(f"{s}: {v['images']} images ({v['skipped']} skipped)" for s, v in splits.items())
    return f"{layout.root} in {time.perf_counter() - start:.1f}s; {counts}"


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline preprocess [--params params.yaml]`."""
    return run_stage("preprocess", __doc__, params_path, argv, _run)
