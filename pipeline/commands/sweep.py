"""Command `sweep`: a grid of experiments run by DVC's experiment queue, N at a time, each in its own
workspace (the working copy is never edited), then compared from MLflow with a plot per swept key
(pipeline.orchestration.sweep; the same from the Prefect UI through `python -m pipeline serve`).

    python -m pipeline sweep --grid model.num_queries=10,20 --grid train.lr=1e-3,3e-4 --jobs 2
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

from pipeline.commands.run import checked


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """`["train.lr=1e-3,3e-4", ...]` -> `{"train.lr": [0.001, 0.0003]}`; values are YAML, as with --set."""
    from pipeline.orchestration.overrides import parse_overrides, parse_value
    from pipeline.params import ParamsError

    grid: dict[str, list[Any]] = {}
    for item in items:
        key = next(iter(parse_overrides([item])))  # checks the `key=...` shape, naming the item
        values = [parse_value(v) for v in item.partition("=")[2].split(",")]
        if not values or any(v is None for v in values):
            raise ParamsError(f"--grid {item!r}: expected comma-separated values, e.g. train.lr=1e-3,3e-4")
        grid[key] = values
    return grid


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline sweep --grid KEY=V1,V2 [--grid ...] [--jobs N] [--name PREFIX]`."""
    parser = argparse.ArgumentParser(prog="python -m pipeline sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2",
                        help="a params.yaml key and its values (YAML, comma-separated); repeatable")
    parser.add_argument("--jobs", type=int, default=2, help="experiments run at once (default 2)")
    parser.add_argument("--name", default=None, help="experiment name prefix (default: sweep-<random>)")
    args = parser.parse_args(argv)
    from pipeline.orchestration.sweep import combinations, sweep

    runs = checked(params_path, lambda: combinations(parse_grid(args.grid)))  # every point, before any runs
    if runs is None:
        return 2
    points, params = [point for point, _ in runs], runs[-1][1]
    from pipeline.orchestration.dvc_cli import DvcError

    try:
        status, _, _ = sweep(points, params, args.name or f"sweep-{uuid.uuid4().hex[:6]}", args.jobs)
    except DvcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0 if all(s == "Success" for s in status.values()) else 1
