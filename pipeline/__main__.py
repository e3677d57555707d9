"""Command line: `python -m pipeline <stage> [--params params.yaml]` runs one stage of dvc.yaml."""

from __future__ import annotations

import argparse
import importlib
import sys

from pipeline.stages import STAGES


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen stage; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    parser.add_argument("stage", choices=sorted(STAGES), help="the stage to run")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    args, rest = parser.parse_known_args(argv)
    module = importlib.import_module(f"pipeline.stages.{args.stage}")
    return int(module.main(args.params, rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
