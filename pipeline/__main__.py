"""Command line: `python -m pipeline <stage|command> [--params params.yaml] [args]`.

Stages are the steps of dvc.yaml (pipeline.stages); commands drive them (pipeline.commands).
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
import threading
from typing import NoReturn

from pipeline.commands import COMMANDS
from pipeline.offline import go_offline
from pipeline.stages import STAGES


def exit_without_teardown(status: int) -> NoReturn:
    """End the process as `sys.exit` would but for freeing every module's objects one by one (1-2 s once
    torch, torchvision and MLflow are loaded, in each stage process): join the non-daemon threads, run the
    atexit handlers (logging, multiprocessing, MLflow), flush the output, then `os._exit`."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)


def main(argv: list[str] | None = None, exit_fast: bool = False) -> int:
    """Parse the command line and run the chosen stage or command; returns the exit status (with
    `exit_fast`, a stage that returned ends the process at once: `exit_without_teardown`)."""
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
    status = int(module.main(args.params, rest) or 0)
    if exit_fast and args.name in STAGES:  # a stage has nothing left to clean up but memory
        exit_without_teardown(status)
    return status


if __name__ == "__main__":
    sys.exit(main(exit_fast=True))
