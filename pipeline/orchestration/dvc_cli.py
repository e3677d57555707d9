"""DVC through its command line: the stage order of `dvc dag`, and commands whose output is streamed line
by line (so Prefect shows a stage's log while it runs)."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

_NODE = re.compile(r'^"([^"]+)";$')
_EDGE = re.compile(r'^"([^"]+)" -> "([^"]+)";$')


class DvcError(RuntimeError):
    """A DVC command that exited with an error; the message has the command and its last lines."""


def dvc_command(*args: str) -> list[str]:
    """`dvc <args>` with this interpreter's DVC, waiting for the repo lock instead of failing on it."""
    return [sys.executable, "-m", "dvc", "--wait-for-lock", *args]


def stage_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a DVC subprocess: this venv first on PATH (dvc.yaml says `python`), unbuffered."""
    env = {**os.environ, **(extra or {})}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("DVC_NO_ANALYTICS", "1")
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


def stream(command: list[str], on_line: Callable[[str], None], cwd: str | Path = ".",
           env: dict[str, str] | None = None, on_tick: Callable[[], None] | None = None,
           tick_s: float = 5.0) -> list[str]:
    """Run a command, passing each output line (stdout and stderr) to `on_line` as it comes and calling
    `on_tick` every `tick_s` seconds meanwhile; returns all lines, raises DvcError on a non-zero exit."""
    proc = subprocess.Popen(command, cwd=cwd, env=env or stage_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1, errors="replace")
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    next_tick = time.monotonic() + tick_s
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.1, next_tick - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line:
                seen.append(line)
                on_line(line)
            if on_tick is not None and time.monotonic() >= next_tick:
                on_tick()
                next_tick = time.monotonic() + tick_s
    finally:
        if proc.poll() is None:  # interrupted (cancelled run): stop the stage, DVC releases its lock
            proc.terminate()
        code = proc.wait()
    if code != 0:
        tail = "\n".join(seen[-20:])
        raise DvcError(f"`{' '.join(command[2:])}` exited with {code}:\n{tail}")
    return seen
