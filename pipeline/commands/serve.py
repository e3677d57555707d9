"""Command `serve`: serve the pipeline as a Prefect deployment; the UI shows its parameters as a form.

Runs started from the UI or API run the pipeline in this workspace, one at a time (others queue).
Needs a Prefect server: `prefect server start` and PREFECT_API_URL=http://127.0.0.1:4200/api.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.commands.run import workspace_error

DEPLOYMENT_NAME = "maskformer"


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline serve [--name maskformer]`; serves until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m pipeline serve", description=__doc__)
    parser.add_argument("--name", default=DEPLOYMENT_NAME, help="deployment name (default: maskformer)")
    args = parser.parse_args(argv)
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.settings import PREFECT_API_URL

    error = workspace_error(params_path)
    if error is None and not PREFECT_API_URL.value():  # env var or Prefect profile
        error = ("PREFECT_API_URL is not set: start `prefect server start` and set "
                 "PREFECT_API_URL=http://127.0.0.1:4200/api (serving needs a server for the UI)")
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from pipeline.orchestration.deployment import RunSettings
    from pipeline.orchestration.flow import pipeline_flow
    from pipeline.params import ParamsError, load_params

    try:  # the form starts from what params.yaml holds now
        current = RunSettings.from_params(load_params(params_path)).model_dump(mode="json", exclude_none=True)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    pipeline_flow.serve(name=args.name, global_limit=one_at_a_time, limit=1, tags=["maskformer"],
                        parameters={"settings": current},
                        description="Run the MaskFormer pipeline (dvc.yaml) in this workspace; the form "
                                    "shows params.yaml's values when serving began, an emptied field keeps "
                                    "params.yaml's.")
    return 0
