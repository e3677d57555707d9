"""Command line: `python -m pipeline <stage|command> [--params params.yaml] [args]`.

Stages are the steps of dvc.yaml (pipeline.stages); commands drive them (pipeline.commands).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pipeline.commands import COMMANDS
from pipeline.offline import go_offline
from pipeline.stages import STAGES


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen stage or command; returns the exit status."""
    choices = {
        **{name: f"pipeline.stages.{name}" for name in STAGES},
        **{name: f"pipeline.commands.{name}" for name in COMMANDS},
    }
    epilog = "\n".join(f"  {name:<18} {text}" for name, text in {**STAGES, **COMMANDS}.items())
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description=__doc__,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,  # `python -m pipeline train --help` is the stage's help, not this one
    )
    parser.add_argument("name", nargs="?", choices=sorted(choices), metavar="stage|command",
                        help="what to run")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    parser.add_argument("-h", "--help", action="store_true", help="show this help (or the stage's)")
    args, rest = parser.parse_known_args(argv)
    if args.name is None:
        parser.print_help(None if args.help else sys.stderr)
        return 0 if args.help else 2
    if args.help:
        rest = ["--help", *rest]
    go_offline()  # before the stage or command imports Prefect, MLflow or DVC
    module = importlib.import_module(choices[args.name])
    return int(module.main(args.params, rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
