"""Command `run`: the whole pipeline as a Prefect flow (`--set key=value` overrides, checked before any work).

Without PREFECT_API_URL the flow runs in Prefect's local ephemeral mode; with it, the server records it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def workspace_error(params_path: str) -> str | None:
    """Why this directory cannot run the flow (its stages are dvc.yaml's, reading ./params.yaml), or None."""
    if not Path("dvc.yaml").exists():
        return f"no dvc.yaml in {Path.cwd()}: run from the repository root"
    if Path(params_path).resolve() != Path("params.yaml").resolve():
        return f"--params {params_path}: the DVC stages read params.yaml; change values with --set key=value"
    return None


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline run [--set key=value ...]`; exit 2 on bad params, nothing run."""
    parser = argparse.ArgumentParser(prog="python -m pipeline run", description=__doc__)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a params.yaml value (dotted key, YAML value); repeatable")
    args = parser.parse_args(argv)
    if error := workspace_error(params_path):
        print(f"error: {error}", file=sys.stderr)
        return 2
    from pipeline.orchestration.overrides import parse_overrides, validate_overrides
    from pipeline.params import ParamsError

    try:
        overrides = parse_overrides(args.overrides)
        validate_overrides(params_path, overrides)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from pipeline.orchestration.deployment import RunSettings
    from pipeline.orchestration.flow import pipeline_flow

    summary = pipeline_flow(settings=RunSettings(extra=overrides))
    print(f"run {summary['run_name']}: " + ", ".join(f"{s} {r}" for s, r in summary["stages"].items()))
    if summary["experiment"]:
        print(f"DVC experiment: {summary['experiment']} (dvc exp show)")
    print(f"report: {summary['report'] or 'none (no report stage output)'}")
    print(f"MLflow: {summary['mlflow'] or 'no new run (every stage was up to date)'}")
    return 0
