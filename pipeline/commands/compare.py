"""Command `compare`: a table of all MLflow runs of an experiment (params that differ, headline metrics)."""

from __future__ import annotations

import argparse

import pandas as pd

from pipeline.params import load_params
from pipeline.report.runs import runs_table


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline compare [--experiment NAME] [--max-runs N] [--csv FILE]`."""
    parser = argparse.ArgumentParser(prog="python -m pipeline compare", description=__doc__)
    parser.add_argument("--experiment", help="MLflow experiment (default: params tracking.experiment)")
    parser.add_argument("--max-runs", type=int, default=None, help="newest N runs only")
    parser.add_argument("--csv", help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    params = load_params(params_path)
    table = runs_table(params, args.experiment, args.max_runs)
    if table.empty:
        print(f"compare: no runs in experiment {args.experiment or params.tracking.experiment!r}")
        return 0
    if args.csv:
        table.to_csv(args.csv, index=False)
    wide = ("display.max_columns", None, "display.width", 200, "display.float_format", "{:.2f}".format)
    with pd.option_context(*wide):
        print(table.to_string(index=False))
    return 0
