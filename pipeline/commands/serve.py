"""Command `serve`: serve the pipeline and the sweep as Prefect deployments; the UI shows their parameters
as forms.

Each run started from the UI or API runs in its own workspace (a DVC experiment); `--limit N` of them at
once, the others queue. Needs a Prefect server: `prefect server start` and
PREFECT_API_URL=http://127.0.0.1:4200/api.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.commands.run import commit_error, workspace_error

DEPLOYMENT_NAME = "maskformer"  # of both: maskformer-pipeline/maskformer and maskformer-sweep/maskformer


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline serve [--name maskformer]`; serves until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m pipeline serve", description=__doc__)
    parser.add_argument("--name", default=DEPLOYMENT_NAME, help="deployment name (default: maskformer)")
    parser.add_argument("--limit", type=int, default=1,
                        help="pipeline runs at once, each in its own workspace (default 1; the rest queue)")
    args = parser.parse_args(argv)
    from prefect import serve
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.settings import PREFECT_API_URL

    error = workspace_error(params_path) or commit_error()
    if error is None and not PREFECT_API_URL.value():  # env var or Prefect profile
        error = ("PREFECT_API_URL is not set: start `prefect server start` and set "
                 "PREFECT_API_URL=http://127.0.0.1:4200/api (serving needs a server for the UI)")
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from pipeline.orchestration.deployment import RunSettings
    from pipeline.orchestration.flow import pipeline_flow
    from pipeline.orchestration.sweep import SweepSettings, sweep_flow
    from pipeline.params import ParamsError, load_params

    try:  # the form starts from what params.yaml holds now
        current = RunSettings.from_params(load_params(params_path)).model_dump(mode="json", exclude_none=True)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    limit = ConcurrencyLimitConfig(limit=max(1, args.limit),
                                   collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    lr = load_params(params_path).train.lr  # the sweep form starts from params.yaml's lr and a third of it
    example = SweepSettings(grid={"train.lr": [lr, float(f"{lr / 3:.2g}")]}).model_dump(mode="json",
                                                                                       exclude_none=True)
    runs = pipeline_flow.to_deployment(
        name=args.name, concurrency_limit=limit, tags=["maskformer"], parameters={"settings": current},
        description="Run the MaskFormer pipeline (dvc.yaml) in its own workspace, saved as a DVC experiment "
                    "named after the flow run; the form shows params.yaml's values when serving began, an "
                    "emptied field keeps params.yaml's.")
    sweeps = sweep_flow.to_deployment(
        name=args.name, concurrency_limit=1, tags=["maskformer"], parameters={"settings": example},
        description="A grid of experiments through DVC's queue (`jobs` at a time, each its own workspace), "
                    "then the MLflow comparison table and a plot per swept key.")
    serve(runs, sweeps, limit=max(1, args.limit) + 1)
    return 0
