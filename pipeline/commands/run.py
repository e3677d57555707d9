"""Command `run`: the whole pipeline as a Prefect flow (`--set key=value` overrides, checked before any work),
in the run's own workspace, saved as a DVC experiment; `--apply` brings it into the working copy after.

Without PREFECT_API_URL the flow runs in Prefect's local ephemeral mode; with it, the server records it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def workspace_error(params_path: str) -> str | None:
    """Why this directory cannot run the flow (its stages are dvc.yaml's, reading ./params.yaml), or None."""
    if not Path("dvc.yaml").exists():
        return f"no dvc.yaml in {Path.cwd()}: run from the repository root"
    if Path(params_path).resolve() != Path("params.yaml").resolve():
        return f"--params {params_path}: the DVC stages read params.yaml; change values with --set key=value"
    return None


def commit_error() -> str | None:
    """Why runs cannot start from this repository (each is an experiment on a git commit), or None."""
    from pipeline.orchestration.dvc_cli import DvcError
    from pipeline.orchestration.workspace import head_commit

    try:
        head_commit()
    except DvcError as exc:
        return str(exc)
    return None


def checked(params_path: str, make: Callable[[], list[dict[str, Any]]]) -> list[tuple[dict, Any]] | None:
    """Each set of overrides that `make()` gives, with params.yaml validated under it (nothing runs yet);
    None after one line on stderr naming the bad workspace, key or value, or the missing commit. What `run`
    and `sweep` check."""
    if error := workspace_error(params_path):
        print(f"error: {error}", file=sys.stderr)
        return None
    from pipeline.orchestration.overrides import validate_overrides
    from pipeline.params import ParamsError

    try:
        runs = [(overrides, validate_overrides(params_path, overrides)) for overrides in make()]
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    if error := commit_error():
        print(f"error: {error}", file=sys.stderr)
        return None
    return runs


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline run [--set key=value ...]`; exit 2 on bad params, nothing run."""
    parser = argparse.ArgumentParser(prog="python -m pipeline run", description=__doc__)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a params.yaml value (dotted key, YAML value); repeatable")
    parser.add_argument("--apply", action="store_true",
                        help="when the run ends, bring its experiment (params, dvc.lock, outputs) into the "
                             "working copy with `dvc exp apply` (what `make run` does)")
    parser.add_argument("--revision", default=None, metavar="COMMIT",
                        help="run this git commit as committed (to reproduce an earlier run: its commit and "
                             "overrides), instead of HEAD with the working copy's changes")
    args = parser.parse_args(argv)
    from pipeline.orchestration.overrides import parse_overrides

    runs = checked(params_path, lambda: [parse_overrides(args.overrides)])
    if runs is None:
        return 2
    overrides = runs[0][0]
    from pipeline.orchestration.deployment import RunSettings
    from pipeline.orchestration.flow import pipeline_flow

    summary = pipeline_flow(settings=RunSettings(extra=overrides), apply=args.apply, revision=args.revision)
    name = summary["run_name"]
    print(f"run {name}: " + ", ".join(f"{s} {r}" for s, r in summary["stages"].items()))
    print(f"commit: {summary['commit']}" + (" + the working copy's changes" if summary["changes"] else ""))
    print(f"DVC experiment: {summary['experiment']} (dvc exp show" + (", applied to the working copy)"
                                                                       if args.apply else ")"))
    print(f"report: {summary['report'] or f'`dvc exp apply {name}` puts it in reports/'}")
    print(f"MLflow: {summary['mlflow'] or 'no new run (every stage was up to date)'}")
    return 0
