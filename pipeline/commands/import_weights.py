"""Command `import_weights`: an official detectron2 MaskFormer .pkl -> a model file like models/model.pt.

    python -m pipeline import_weights model_final_d8dbeb.pkl --out models/imported.pt [--dataset ade20k]

The config is read from the weights (maskformer.convert.infer_config); `--set field=value` sets what the
weights do not hold (nheads, thresholds). Class names come from `--dataset`'s source (its processed
manifest when the data is there). The file loads with pipeline.model_file.read_model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml

from maskformer.convert import build_from_detectron2, load_detectron2_pkl
from pipeline.data.sources import SOURCES

DATASET_OF_CLASSES = {150: "ade20k", 133: "coco_panoptic", 19: "cityscapes"}  # the official models' sets


def categories(dataset: str | None, num_classes: int) -> list[dict]:
    """The class list of `dataset` (its processed manifest, else the source's own), or numbered classes."""
    manifest = Path("data/processed") / (dataset or "") / "manifest.json"
    if dataset and manifest.is_file():
        found = json.loads(manifest.read_text())["categories"]
    else:
        try:
            found = SOURCES[dataset].categories(Path("data/raw") / dataset) if dataset in SOURCES else []
        except (OSError, KeyError, ValueError):  # a source whose classes live in its (absent) annotations
            found = []
    if len(found) != num_classes:
        print(f"import_weights: no {num_classes}-class list for dataset {dataset!r}: classes are numbered")
        return [{"id": i + 1, "name": f"class_{i}", "isthing": 0} for i in range(num_classes)]
    return found


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry; returns the exit status (2 on a bad file, with its name in the message)."""
    parser = argparse.ArgumentParser(prog="python -m pipeline import_weights", description=__doc__)
    parser.add_argument("source", type=Path, help="an official model_final_*.pkl (detectron2 format)")
    parser.add_argument("--out", type=Path, default=Path("models/imported.pt"))
    parser.add_argument("--dataset", help="the data set it was trained on (default: from the class count)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="MaskFormerConfig fields the weights do not hold, e.g. nheads=8")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"import_weights: {args.source}: no such file")
        return 2
    overrides = dict(item.split("=", 1) for item in args.set)
    try:
        state = load_detectron2_pkl(args.source)
        model = build_from_detectron2(state, **{k: yaml.safe_load(v) for k, v in overrides.items()})
    except ValueError as error:
        print(f"import_weights: {args.source}: {error}")
        return 2
    cfg = model.config
    dataset = args.dataset or DATASET_OF_CLASSES.get(cfg.num_classes)
    task = "panoptic" if dataset == "coco_panoptic" else "semantic"  # what the official model trained on
    record = {"model": model.state_dict(), "config": cfg.to_dict(),
              "categories": categories(dataset, cfg.num_classes), "iteration": None,
              "params": {"input": {"task": task}}, "source": str(args.source)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(record, args.out)
    size = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"import_weights: {args.out}: {cfg.architecture} {cfg.backbone}, {cfg.num_classes} classes"
          f" ({dataset or 'unknown data set'}), {size:.2f}M parameters")
    return 0
