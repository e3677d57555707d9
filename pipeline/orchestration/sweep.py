"""Sweeps: a grid of experiments run by DVC's experiment queue, N at a time, each in its own workspace (the
working copy is never edited), then compared from MLflow with a plot per swept key. The CLI
(`python -m pipeline sweep`) and the Prefect flow (a deployment parameter in the UI) both call `sweep`.
"""


import itertools
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from pipeline.orchestration.dvc_cli import DvcError, dvc_command, stage_env

METRIC = "sem_seg/mIoU"  # the headline metric the sweep plot shows
POLL_S = 2.0
RESTART_POLLS = 5  # queued experiments and no worker for this many polls in a row: start workers again
SWEEP_FLOW = "maskformer-sweep"


class SweepSettings(BaseModel):
    """A grid of params.yaml values: one DVC experiment per point, `jobs` at a time, compared from MLflow."""

    model_config = ConfigDict(extra="forbid")

    grid: dict[str, list[Any]] = Field(
        description='params.yaml keys and the values to try, e.g. {"train.lr": [0.001, 0.0003]}')
    jobs: int = Field(2, ge=1, le=64, description="experiments run at once (DVC queue workers)")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$",
                             description="experiment name prefix; empty: sweep- and the flow run's id")


def combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every point of the grid, as overrides (dotted key -> value)."""
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def _dvc(*args: str) -> str:
    """Run a DVC command (this interpreter's, the stages' environment): its output; DvcError if it fails.
    The output goes through files, not pipes: `dvc queue start` leaves daemon workers that inherit them,
    and a pipe stays open until the last of them exits (one may never: see `run_queue`)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code = subprocess.run(dvc_command(*args), env=stage_env(), stdin=subprocess.DEVNULL, stdout=out,
                              stderr=err, check=False).returncode
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        raise DvcError(f"dvc {' '.join(args)} failed:\n{stdout}{stderr}")
    return stdout


def _statuses(names: list[str]) -> tuple[dict[str, str], int]:
    """DVC queue status (Queued, Running, Success, Failed) of the named experiments, and how many queue
    workers DVC sees (active + idle)."""
    status, workers = {}, 0
    for line in _dvc("queue", "status").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in names:
            status[parts[1]] = parts[-1]
        elif line.startswith("Worker status:"):
            workers = sum(int(n) for n in re.findall(r"(\d+) (?:active|idle)", line))
    return status, workers


def _start_workers(jobs: int) -> None:
    """`dvc queue start -j jobs`: daemon workers that run the queued experiments and outlive the command."""
    _dvc("queue", "start", "-j", str(jobs))


def _yaml(value: Any) -> str:
    """A value as `-S` reads it back (YAML flow style)."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")


def run_queue(points: list[dict[str, Any]], prefix: str, jobs: int, say: Callable[[str], None] = print
              ) -> dict[str, str]:
    """Queue one experiment per point, start `jobs` queue workers, wait; returns name -> final status.
    Interrupted (Ctrl-C, a cancelled flow run), it stops this sweep's experiments first."""
    names = [f"{prefix}-{i}" for i in range(len(points))]
    for name, point in zip(names, points, strict=True):
        sets = [arg for key, value in point.items() for arg in ("-S", f"{key}={_yaml(value)}")]
        _dvc("exp", "run", "--queue", "-n", name, *sets)
        say(f"sweep: queued {name}: " + ", ".join(f"{k}={v}" for k, v in point.items()))
    _start_workers(jobs)
    idle = 0  # polls in a row with experiments queued and no worker
    try:
        while True:
            status, workers = _statuses(names)
            if len(status) == len(names) and all(s not in ("Queued", "Running") for s in status.values()):
                return status
            queued = sum(s == "Queued" for s in status.values())
            idle = idle + 1 if queued and not workers else 0
            if idle == RESTART_POLLS:  # a worker's monitor can miss its busy worker and stop it early
                say(f"sweep: {queued} queued and no queue worker: starting {min(jobs, queued)} again")
                _start_workers(min(jobs, queued))
                idle = 0
            time.sleep(POLL_S)
    except BaseException:
        status, _ = _statuses(names)
        queued = [n for n, s in status.items() if s == "Queued"]
        if queued:
            subprocess.run(dvc_command("queue", "remove", *queued), env=stage_env(), check=False)
        running = [n for n, s in status.items() if s == "Running"]
        if running:
            subprocess.run(dvc_command("queue", "kill", *running), env=stage_env(), check=False)
        raise


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


def compare(params: Any, prefix: str, keys: list[str], status: dict[str, str],
            say: Callable[[str], None] = print) -> tuple[Any, Path | None]:
    """Say the MLflow comparison of the sweep's runs and write its plot; (table, plot path)."""
    import pandas as pd

    from pipeline.outputs import SWEEPS
    from pipeline.report.runs import runs_table

    table = runs_table(params)
    table = table[table["run"].astype(str).str.startswith(f"{prefix}-")] if not table.empty else table
    shown = [c for c in ["run", "status", *keys, "sem_seg/mIoU", "panoptic_seg/PQ", "segm/AP"] if c in table]
    with pd.option_context("display.width", 200, "display.max_columns", None):
        say(table[shown].to_string(index=False) if not table.empty else "sweep: no MLflow runs found")
    found = set(table["run"]) if not table.empty else set()
    for name in (n for n in status if n not in found):  # DVC found every stage up to date (or cached)
        say(f"sweep: {name}: no new MLflow run: its results equal an earlier run's (nothing reran)")
    plot = sweep_plot(table, keys, SWEEPS / f"{prefix}.png")
    if plot:
        say(f"sweep: plot {plot.resolve()}")
    return table[shown] if not table.empty else table, plot


def sweep(points: list[dict[str, Any]], params: Any, prefix: str, jobs: int,
          say: Callable[[str], None] = print) -> tuple[dict[str, str], Any, Path | None]:
    """Run the grid's points through the queue and compare them: (statuses, table, plot)."""
    start = time.perf_counter()
    status = run_queue(points, prefix, max(1, jobs), say)
    say(f"sweep: {len(points)} experiments in {time.perf_counter() - start:.0f}s, {jobs} at a time: "
        + ", ".join(f"{n} {s}" for n, s in status.items()))
    return (status, *compare(params, prefix, list(points[0]), status, say))


@flow(name=SWEEP_FLOW, log_prints=True,
      description="A grid of MaskFormer experiments through DVC's queue, N at a time, compared from MLflow.")
def sweep_flow(settings: SweepSettings) -> dict[str, Any]:
    """Check every point, run the sweep, publish the comparison table and the plot as artifacts.

    Args:
        settings: the grid (params.yaml keys and values to try), experiments at once, a name prefix
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact
    from prefect.runtime import flow_run

    from pipeline.orchestration.overrides import validate_overrides
    from pipeline.outputs import PARAMS

    points = combinations(settings.grid)
    params = [validate_overrides(PARAMS, point) for point in points][-1]  # a bad key fails here, named
    prefix = settings.name or f"sweep-{str(flow_run.id or '')[:6] or 'local'}"
    status, table, plot = sweep(points, params, prefix, settings.jobs, get_run_logger().info)
    if not table.empty:
        create_table_artifact(table.round(3).astype(object).where(table.notna(), None).to_dict("records"),
                              key="sweep-comparison", description=f"Sweep {prefix}: MLflow comparison")
    if plot:
        create_markdown_artifact(f"Sweep plot: `{plot.resolve()}`", key="sweep-plot",
                                 description=f"Sweep {prefix}: {METRIC} per swept key")
    failed = [n for n, s in status.items() if s != "Success"]
    if failed:
        raise RuntimeError(f"sweep {prefix}: {', '.join(failed)} did not succeed (see `dvc queue logs NAME`)")
    return {"prefix": prefix, "status": status, "plot": str(plot.resolve()) if plot else None}
