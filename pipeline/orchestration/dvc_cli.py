"""DVC through its command line: the command with this interpreter's DVC, the environment its stages get,
and the stage order of `dvc dag`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

_NODE = re.compile(r'^"([^"]+)";$')
_EDGE = re.compile(r'^"([^"]+)" -> "([^"]+)";$')


class DvcError(RuntimeError):
    """A DVC command that exited with an error; the message has the command and its last lines."""


def dvc_command(*args: str) -> list[str]:
    """`dvc <args>` with this interpreter's DVC, waiting for the repo lock instead of failing on it."""
    return [sys.executable, "-m", "dvc", "--wait-for-lock", *args]


def stage_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a DVC subprocess: this venv first on PATH (dvc.yaml says `python`), unbuffered,
    progress bars redrawn rarely."""
    env = {**os.environ, **(extra or {})}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TQDM_MININTERVAL", "5")  # progress bars in a pipe: a redraw every 5 s at most
    return env


def parse_dot(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Nodes (in the order DVC lists them) and edges (upstream, downstream) of `dvc dag --dot`."""
    nodes, edges = [], []
    for line in text.splitlines():
        line = line.strip()
        if m := _EDGE.match(line):
            edges.append((m[1], m[2]))
        elif m := _NODE.match(line):
            nodes.append(m[1])
    return nodes, edges


def topological_order(nodes: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """Kahn's order: every stage after its upstream ones, ties in the listed (dvc.yaml) order, as DVC runs."""
    upstream = {n: {a for a, b in edges if b == n} for n in nodes}
    order: list[str] = []
    while len(order) < len(nodes):
        ready = [n for n in nodes if n not in order and upstream[n] <= set(order)]
        if not ready:
            raise DvcError(f"dvc dag has a cycle among {sorted(set(nodes) - set(order))}")
        order.append(ready[0])
    return order


def stage_order(cwd: str | Path = ".") -> list[str]:
    """The stages of dvc.yaml in the order `dvc repro` runs them."""
    result = subprocess.run(dvc_command("dag", "--dot"), cwd=cwd, env=stage_env(), capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise DvcError(f"dvc dag failed in {Path(cwd).resolve()}:\n{result.stderr.strip()}")
    return topological_order(*parse_dot(result.stdout))
