"""The benchmarks' one entry point: `python -m benchmarks <name> [args]`; no name or --help lists them."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

# the runnable benchmarks, each a module benchmarks/<name>.py with main(argv)
NAMES = (
    "compare_transformers",
    "point_sampling_loss",
    "point_sampling_accuracy",
    "profile_step",
    "op_count",
    "train_throughput",
    "learning_options",
    "cpu_speedups",
    "train_stage",
    "step_bound",
    "learning_curves",
)


def summary(name: str) -> str:
    """The first line of a benchmark's docstring, read without importing it (no torch start-up)."""
    tree = ast.parse((Path(__file__).parent / f"{name}.py").read_text())
    return (ast.get_docstring(tree) or "").splitlines()[0]


def usage() -> str:
    """How to call this, with one line per benchmark."""
    lines = ["usage: python -m benchmarks <name> [args]   (python -m benchmarks <name> --help: its options)",
             "", "benchmarks:"]
    lines += [f"  {name:24s} {summary(name)}" for name in NAMES]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run benchmark argv[0] with the remaining arguments."""
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, *rest = argv
    if name not in NAMES:
        print(f"unknown benchmark {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    importlib.import_module(f"benchmarks.{name}").main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
