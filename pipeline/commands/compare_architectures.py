"""Command `compare_architectures`: the paper's comparison on this project's data. Trains MaskFormer and the
per-pixel baseline at the same budget as two DVC experiments (a sweep over model.architecture: each in its
own workspace, both in MLflow), then writes comparisons/<name>.html (+ .md): their headline metrics side
by side and the validation images with the most touching same-class objects segmented by both.

    python -m pipeline compare_architectures [--set key=value ...] [--jobs 2] [--name PREFIX] [--images 4]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import uuid
from typing import Any

from pipeline.commands.run import checked

ARCHITECTURES = ("maskformer", "per_pixel_baseline")  # the experiments' order: PREFIX-0, PREFIX-1


def experiment_commit(name: str) -> str:
    """The git commit of the DVC experiment `name` (its ref is refs/exps/<baseline>/<name>)."""
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps"],
                          capture_output=True, text=True, check=True).stdout.split("\n")
    found = [line.split()[1] for line in refs if line.split() and line.split()[0].endswith(f"/{name}")]
    if not found:
        raise LookupError(f"no DVC experiment named {name!r} (dvc exp show)")
    return found[0]


def _read(path: str, rev: str, mode: str = "r") -> Any:
    """A file of an experiment's outputs, through DVC (from the cache or the remote)."""
    import dvc.api

    with dvc.api.open(path, rev=rev, mode=mode) as handle:
        return handle.read()


def _model(rev: str) -> tuple[Any, dict]:
    """An experiment's trained model (eval mode) and its checkpoint record."""
    from pipeline.model_file import read_model
    from pipeline.outputs import MODEL

    return read_model(io.BytesIO(_read(str(MODEL), rev, "rb")))


def _metrics(rev: str) -> dict[str, float | None]:
    """The headline metrics of an experiment, from its metrics files (`section/key`)."""
    from pipeline.outputs import METRICS_FILES, metric_values

    files = (json.loads(_read(str(path), rev)) for path in METRICS_FILES)
    return {k: v for content in files for k, v in metric_values(content).items()}


def _segment(predictor: Any, record: dict, image: Any, params: Any, thing_ids: set[int]) -> Any:
    """One model's panoptic segmentation of one image, as the evaluation computes it."""
    from maskformer.evaluation.runner import segment
    from pipeline.report import plots

    cfg = record["config"]
    per_pixel = cfg["architecture"] != "maskformer"
    ids, segments, _ = segment(predictor, image, thing_ids, cfg["object_mask_threshold"],
                               cfg["overlap_threshold"],
                               component_min_area=params.evaluate.component_min_area if per_pixel else None)
    return plots.Panoptic(ids.cpu().numpy(), [(s["id"], s["category_id"], s["isthing"]) for s in segments])


def compare(params: Any, names: dict[str, str], images: int, title: str) -> tuple[str, str]:
    """(HTML page, Markdown) comparing the experiments `names` (architecture -> experiment name)."""
    from pathlib import Path

    from maskformer.data import CanonicalDataset, CanonicalLayout, build_eval_transforms
    from pipeline.outputs import processed_dir
    from pipeline.report import architectures
    from pipeline.report.content import Validation

    revs = {arch: experiment_commit(name) for arch, name in names.items()}
    table = architectures.metrics_table({f"{a} ({names[a]})": _metrics(rev) for a, rev in revs.items()})
    layout = CanonicalLayout(processed_dir(params.data))
    if not layout.manifest.exists():  # the experiments ran in their own workspaces: bring the data here
        import subprocess

        from pipeline.orchestration.dvc_cli import dvc_command, stage_env

        print(f"compare: {layout.manifest} is missing here: dvc repro preprocess")
        subprocess.run(dvc_command("repro", "preprocess"), env=stage_env(), check=True)
    categories = json.loads(layout.manifest.read_text())["categories"]
    picked = {s.name: s for s in Validation(params, categories).crowded(images)[0]}
    dataset = CanonicalDataset(layout.root, "val", task="panoptic", transforms=build_eval_transforms())
    thing_ids = {k for k, c in enumerate(dataset.categories) if c["isthing"]}
    from maskformer.evaluation.predict import Predictor

    models = {arch: (Predictor(model, params.evaluate), record)
              for arch, (model, record) in ((a, _model(rev)) for a, rev in revs.items())}
    rows = []
    for i in range(len(dataset)):
        image, target = dataset[i]
        stem = Path(target["file_name"]).stem
        if stem in picked:
            predicted = {arch: _segment(p, r, image, params, thing_ids) for arch, (p, r) in models.items()}
            rows.append(architectures.Row(stem, picked[stem].image, picked[stem].truth, predicted))
    png = architectures.figure(rows, [c["name"] for c in categories], params.report.dpi)
    return architectures.render(title, table, png)


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline compare_architectures [--jobs N] [--name PREFIX] [--images K]`."""
    parser = argparse.ArgumentParser(prog="python -m pipeline compare_architectures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a params.yaml value both models use (e.g. train.max_iters=2400); repeatable")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once (default 2)")
    parser.add_argument("--name", default=None, help="experiment name prefix (default: arch-<random>)")
    parser.add_argument("--images", type=int, default=4, help="validation images segmented by both")
    args = parser.parse_args(argv)
    from pipeline.orchestration.overrides import parse_overrides

    def make() -> list[dict[str, Any]]:
        return [{**parse_overrides(args.overrides), "model.architecture": a} for a in ARCHITECTURES]

    runs = checked(params_path, make)
    if runs is None:
        return 2
    from pipeline.orchestration.dvc_cli import DvcError
    from pipeline.orchestration.sweep import sweep
    from pipeline.outputs import COMPARISONS

    prefix = args.name or f"arch-{uuid.uuid4().hex[:6]}"
    points = [point for point, _ in runs]
    try:
        status, _, _ = sweep(points, runs[0][1], prefix, args.jobs)
    except DvcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if any(s != "Success" for s in status.values()):
        print(f"error: {status}: see `dvc queue logs NAME`", file=sys.stderr)
        return 1
    names = {a: f"{prefix}-{i}" for i, a in enumerate(ARCHITECTURES)}
    page, summary = compare(runs[0][1], names, args.images, f"MaskFormer vs per-pixel baseline: {prefix}")
    COMPARISONS.mkdir(parents=True, exist_ok=True)
    (COMPARISONS / f"{prefix}.html").write_text(page)
    (COMPARISONS / f"{prefix}.md").write_text(summary)
    print(summary)
    print(f"comparison: {(COMPARISONS / f'{prefix}.html').resolve()}")
    return 0
