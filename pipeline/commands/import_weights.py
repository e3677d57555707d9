"""Command `import_weights`: released MaskFormer weights -> a model file like models/model.pt.

    python -m pipeline import_weights model_final_d8dbeb.pkl --out models/imported.pt [--dataset ade20k]
    python -m pipeline import_weights maskformer-swin-tiny-ade/ --out models/imported.pt

SOURCE is an official detectron2 .pkl (config read from the weights, maskformer.convert.infer_config) or
a Hugging Face transformers folder, its config.json or its weights file (maskformer.convert_hf). `--set
field=value` sets config fields. Class names come from the folder's id2label when it names them, else
from `--dataset`'s source (its processed manifest when the data is there); ids and isthing come from that
source when its list has the same length, else ids count from 1 and isthing is 0. The file loads with
pipeline.model_file.read_model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml

from maskformer.convert import build_from_detectron2, load_detectron2_pkl
from maskformer.convert_hf import build_from_hf, hf_files
from pipeline.data.sources import SOURCES

DATASET_OF_CLASSES = {150: "ade20k", 133: "coco_panoptic", 19: "cityscapes"}  # the official models' sets


def dataset_categories(dataset: str | None, num_classes: int) -> list[dict]:
    """The class list of `dataset` (its processed manifest, else the source's own), or [] if it has not
    `num_classes` classes."""
    manifest = Path("data/processed") / (dataset or "") / "manifest.json"
    if dataset and manifest.is_file():
        found = json.loads(manifest.read_text())["categories"]
    else:
        try:
            found = SOURCES[dataset].categories(Path("data/raw") / dataset) if dataset in SOURCES else []
        except (OSError, KeyError, ValueError):  # a source whose classes live in its (absent) annotations
            found = []
    return found if len(found) == num_classes else []


def categories(dataset: str | None, num_classes: int, names: list[str] | None = None) -> list[dict]:
    """Categories named `names` (else by the data set, else numbered); ids and isthing from the data set
    when its list has `num_classes` entries, else ids from 1 and isthing 0."""
    found = dataset_categories(dataset, num_classes)
    if not found:
        print(f"import_weights: no {num_classes}-class list for dataset {dataset!r}: "
              + ("isthing is 0" if names else "classes are numbered"))
        found = [{"id": i + 1, "name": f"class_{i}", "isthing": 0} for i in range(num_classes)]
    return [{**c, "name": n} for c, n in zip(found, names, strict=True)] if names else found


def hf_names(source: Path) -> list[str] | None:
    """The class names of a transformers config.json's id2label, unless they are the LABEL_<i> defaults."""
    labels = json.loads(hf_files(source)[0].read_text()).get("id2label") or {}
    names = [labels[k] for k in sorted(labels, key=int)]
    return None if names == [f"LABEL_{i}" for i in range(len(names))] else names


def is_transformers(source: Path) -> bool:
    """A transformers model folder, its config.json or its .safetensors / .bin (not a detectron2 .pkl)."""
    return source.is_dir() or source.name == "config.json" or source.suffix in (".safetensors", ".bin")


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry; returns the exit status (2 on a bad file, with its name in the message)."""
    parser = argparse.ArgumentParser(prog="python -m pipeline import_weights", description=__doc__)
    parser.add_argument("source", type=Path, help="an official model_final_*.pkl (detectron2 format), or a "
                        "transformers folder (config.json + model.safetensors / .bin) or its file")
    parser.add_argument("--out", type=Path, default=Path("models/imported.pt"))
    parser.add_argument("--dataset", help="the data set it was trained on (default: from the class count)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="MaskFormerConfig fields the weights do not hold, e.g. nheads=8")
    args = parser.parse_args(argv)
    if not args.source.exists():
        print(f"import_weights: {args.source}: no such file")
        return 2
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    transformers = is_transformers(args.source)
    try:
        if transformers:
            model, names = build_from_hf(args.source, **overrides), hf_names(args.source)
        else:
            model, names = build_from_detectron2(load_detectron2_pkl(args.source), **overrides), None
    except ValueError as error:
        print(f"import_weights: {args.source}: {error}")
        return 2
    cfg = model.config
    dataset = args.dataset or DATASET_OF_CLASSES.get(cfg.num_classes)
    task = "panoptic" if dataset == "coco_panoptic" else "semantic"  # what the official model trained on
    record = {"model": model.state_dict(), "config": cfg.to_dict(),
              "categories": categories(dataset, cfg.num_classes, names), "iteration": None,
              "params": {"input": {"task": task}}, "source": str(args.source),
              "format": "transformers" if transformers else "detectron2"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(record, args.out)
    size = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"import_weights: {args.out}: {cfg.architecture} {cfg.backbone}, {cfg.num_classes} classes"
          f" ({dataset or 'unknown data set'}), {size:.2f}M parameters")
    section = {k: v for k, v in cfg.to_dict().items() if k != "num_classes"}  # the data set gives that
    print(f"to evaluate or fine-tune it, params.yaml needs (init: sets the file, model: its architecture):\n"
          f"{yaml.safe_dump({'init': {'model_file': str(args.out), 'train': False}}, sort_keys=False)}"
          f"{yaml.safe_dump({'model': section}, sort_keys=False, default_flow_style=None, width=100)}")
    return 0
