"""The command line every stage shares: parse, load params, run inside the execution's MLflow run, report.

The project's own expected errors (bad params, a bad data file, a checksum mismatch, an unsafe archive,
a missing input) become one line on stderr naming the file or key, and a non-zero exit; a traceback is
for real bugs, or for expected errors with `--verbose` or PIPELINE_DEBUG=1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from pipeline.data.extract import CorruptArchiveError, UnsafeArchiveError
from pipeline.data.http import DownloadError
from pipeline.data.sources import DataError
from pipeline.outputs import MissingInputError
from pipeline.params import Params, ParamsError, load_params

EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    ParamsError, DataError, DownloadError, UnsafeArchiveError, CorruptArchiveError, MissingInputError,
)
# body(params, run) does the stage's work and its logging; `run` is the MLflow run (None off rank 0)
Body = Callable[[Params, Any], str]


def run_stage(name: str, description: str | None, params_path: str, argv: list[str], body: Body,
              interrupted: tuple[type[BaseException], ...] = ()) -> int:
    """Run one stage from the command line; returns the exit status (2: bad params, 1: bad input)."""
    from pipeline import tracking  # here: importing a stage module stays free of MLflow

    parser = argparse.ArgumentParser(prog=f"python -m pipeline {name}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="full traceback on errors")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    verbose = args.verbose or os.environ.get("PIPELINE_DEBUG", "") not in ("", "0")
    try:
        params = load_params(params_path)
        with tracking.stage_run(name, params, interrupted=interrupted) as run:
            summary = body(params, run)
    except EXPECTED_ERRORS as exc:
        if verbose:
            raise
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ParamsError) else 1
    for line in summary.splitlines():
        print(f"{name}: {line}")
    return 0
