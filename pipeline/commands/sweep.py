"""Command `sweep`: a grid of experiments run by DVC's experiment queue, N at a time, each in its own
workspace (the working copy is never edited), then compared from MLflow with a plot per swept key.

    python -m pipeline sweep --grid model.num_queries=10,20 --grid train.lr=1e-3,3e-4 --jobs 2
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pipeline.commands.run import checked

METRIC = "sem_seg/mIoU"  # the headline metric the sweep plot shows
POLL_S = 2.0


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


def combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every point of the grid, as overrides (dotted key -> value)."""
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def _dvc(*args: str) -> str:
    """Run a DVC command (this interpreter's, with the stages' environment); its output, or exit on error."""
    from pipeline.orchestration.dvc_cli import dvc_command, stage_env

    result = subprocess.run(dvc_command(*args), env=stage_env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"error: dvc {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def _statuses(names: list[str]) -> dict[str, str]:
    """DVC queue status (Queued, Running, Success, Failed) of the named experiments."""
    status = {}
    for line in _dvc("queue", "status").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in names:
            status[parts[1]] = parts[-1]
    return status


def run_sweep(points: list[dict[str, Any]], prefix: str, jobs: int) -> dict[str, str]:
    """Queue one experiment per point, start `jobs` queue workers, wait; returns name -> final status."""
    names = [f"{prefix}-{i}" for i in range(len(points))]
    for name, point in zip(names, points, strict=True):
        sets = [arg for key, value in point.items() for arg in ("-S", f"{key}={_yaml(value)}")]
        _dvc("exp", "run", "--queue", "-n", name, *sets)
        print(f"sweep: queued {name}: " + ", ".join(f"{k}={v}" for k, v in point.items()), flush=True)
    _dvc("queue", "start", "-j", str(jobs))
    while True:
        status = _statuses(names)
        if len(status) == len(names) and all(s not in ("Queued", "Running") for s in status.values()):
            return status
        time.sleep(POLL_S)


def _yaml(value: Any) -> str:
    """A value as `-S` reads it back (YAML flow style)."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")


def sweep_plot(table: Any, keys: list[str], path: Path) -> Path | None:
    """One panel per swept key: the headline metric of every run against that key's value."""
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if table.empty or METRIC not in table:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        if key not in table:
            continue
        numbers = pd.to_numeric(table[key], errors="coerce")  # MLflow params are text
        values = numbers if numbers.notna().all() else table[key].astype(str)
        order = values.argsort()
        ax.scatter(values.iloc[order], table[METRIC].iloc[order], color="tab:blue")
        if values is numbers:  # ticks at the swept values only
            ax.set_xticks(sorted(numbers.unique()), [str(v) for v in sorted(table[key].unique(), key=float)])
        ax.set(xlabel=key, ylabel=METRIC, title=f"{METRIC} vs {key}")
        ax.tick_params(axis="x", rotation=45)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline sweep --grid KEY=V1,V2 [--grid ...] [--jobs N] [--name PREFIX]`."""
    parser = argparse.ArgumentParser(prog="python -m pipeline sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2",
                        help="a params.yaml key and its values (YAML, comma-separated); repeatable")
    parser.add_argument("--jobs", type=int, default=2, help="experiments run at once (default 2)")
    parser.add_argument("--name", default=None, help="experiment name prefix (default: sweep-<random>)")
    args = parser.parse_args(argv)
    runs = checked(params_path, lambda: combinations(parse_grid(args.grid)))  # every point, before any runs
    if runs is None:
        return 2
    points, params = [point for point, _ in runs], runs[-1][1]
    prefix = args.name or f"sweep-{uuid.uuid4().hex[:6]}"
    start = time.perf_counter()
    status = run_sweep(points, prefix, max(1, args.jobs))
    print(f"sweep: {len(points)} experiments in {time.perf_counter() - start:.0f}s, {args.jobs} at a time: "
          + ", ".join(f"{n} {s}" for n, s in status.items()))
    return _compare(params, prefix, list(points[0]), status)


def _compare(params: Any, prefix: str, keys: list[str], status: dict[str, str]) -> int:
    """Print the MLflow comparison of the sweep's runs and write its plot; 1 if an experiment failed."""
    import pandas as pd

    from pipeline.outputs import SWEEPS
    from pipeline.report.runs import runs_table

    table = runs_table(params)
    table = table[table["run"].astype(str).str.startswith(f"{prefix}-")] if not table.empty else table
    shown = [c for c in ["run", "status", *keys, "sem_seg/mIoU", "panoptic_seg/PQ", "segm/AP"] if c in table]
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(table[shown].to_string(index=False) if not table.empty else "sweep: no MLflow runs found")
    found = set(table["run"]) if not table.empty else set()
    for name in (n for n in status if n not in found):  # DVC found every stage up to date (or cached)
        print(f"sweep: {name}: no new MLflow run: its results equal an earlier run's (nothing reran)")
    plot = sweep_plot(table, keys, SWEEPS / f"{prefix}.png")
    if plot:
        print(f"sweep: plot {plot.resolve()}")
    return 0 if all(s == "Success" for s in status.values()) else 1
