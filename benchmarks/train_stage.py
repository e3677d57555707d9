"""The real train stage's speed under param variants: `python -m pipeline train`, variants alternating.

A micro-benchmark of the step misses what the stage adds (loader workers sharing the cores, logging,
checkpoints), so this one times the stage itself: one temporary project (download + preprocess once),
then for each round and each variant a short `python -m pipeline train` with that variant's overrides,
reporting the stage's wall time and the median img/s of its train log. Variants alternate so machine
noise hits them alike; one JSON line per (variant, round) goes to benchmarks/results/train_stage.jsonl.

    python -m benchmarks train_stage --variant workers2 train.num_workers=2 train.channels_last=false \
        --variant workers0 train.num_workers=0 train.channels_last=false \
        --variant workers0_cl train.num_workers=0 --iters 300 --rounds 2
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import record
from benchmarks.learning_options import REPO, _env, _img_per_s, _overridden, _parse_value, _set, _stage

RESULTS = REPO / "benchmarks" / "results" / "train_stage.jsonl"


def run(variants: dict[str, dict[str, Any]], iters: int, rounds: int, threads: int = 2) -> list[dict]:
    """Time the train stage of each variant `rounds` times (alternating); append and return the rows."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    _set(base, "train.max_iters", iters)
    _set(base, "tracking.log_model", False)
    workdir = Path(tempfile.mkdtemp(prefix="train_stage_", dir="/tmp"))
    env, run_id, rows = _env(workdir, threads), uuid.uuid4().hex[:12], []
    try:
        with (workdir / "stages.log").open("w") as log:
            (workdir / "params.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
            for stage in ("download", "preprocess"):
                _stage(stage, workdir, env, log)
            for rnd in range(rounds):
                for name, overrides in variants.items():
                    params = _overridden(base, overrides)
                    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
                    shutil.rmtree(workdir / "models", ignore_errors=True)  # no resume: a whole run each time
                    wall, cpu, _ = _stage("train", workdir, env, log)
                    row = record(RESULTS, benchmark="train_stage", run=run_id, variant=name,
                                 overrides=overrides, round=rnd, max_iters=iters, stage_wall_s=round(wall, 1),
                                 stage_cpu_s=round(cpu, 1), median_img_per_s=_img_per_s(workdir),
                                 stage_threads=threads, cpu=platform.processor() or platform.machine())
                    rows.append(row)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", nargs="+", action="append", required=True,
                        metavar="NAME [KEY=VALUE ...]",
                        help="a variant: its name, then dotted params overrides (YAML values)")
    parser.add_argument("--iters", type=int, default=300, help="train.max_iters of each timed run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    variants = {}
    for name, *sets in args.variant:
        variants[name] = {k: _parse_value(v) for k, _, v in (s.partition("=") for s in sets)}
    rows = run(variants, args.iters, args.rounds, args.threads)
    for name in variants:
        speeds = [r["median_img_per_s"] for r in rows if r["variant"] == name and r["median_img_per_s"]]
        print(f"{name}: median img/s per round {speeds}")
    return 0
