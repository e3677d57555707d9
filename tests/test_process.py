"""Streaming a stage's process tree: lines as they come, progress refreshes thinned, the tree stopped."""

from __future__ import annotations

import os
import sys
import time

import pytest

from pipeline.orchestration.process import CommandError, stream

BAR = """import sys, time
for i in range(300):
    sys.stdout.write(f"\\rbar {i}/300")
    sys.stdout.flush()
    time.sleep(0.002)
print()
print("done")
"""
TREE = """import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""

SLOW_CHILD = """import signal, subprocess, sys
CHILD = \"\"\"import pathlib, signal, sys, time
def stop(*_):
    time.sleep(1.5)  # a checkpoint being written
    pathlib.Path(sys.argv[1]).write_text("stopped")
    raise SystemExit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(120)
\"\"\"
subprocess.Popen([sys.executable, "-c", CHILD, sys.argv[1]])
signal.pause()
"""


def test_progress_refreshes_become_a_few_lines():
    lines: list[str] = []
    assert stream([sys.executable, "-c", BAR], lines.append) == lines
    assert lines[-1] == "done" and len(lines) <= 3, lines  # 300 refreshes: the first (and the last line)
    assert lines[0].startswith("bar ")


def test_an_interrupted_stream_stops_the_whole_tree():
    class CancelledError(Exception):
        pass

    started: list[int] = []

    def on_line(line: str) -> None:
        started.append(int(line))
        raise CancelledError

    with pytest.raises(CancelledError):
        stream([sys.executable, "-c", TREE], on_line)
    grandchild = started[0]
    for _ in range(50):  # the orphan is reaped by init shortly after the kill
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail(f"grandchild {grandchild} survived")


def test_a_stopped_stream_waits_for_the_whole_group_not_only_the_command(tmp_path) -> None:
    class CancelledError(Exception):
        pass

    def on_line(line: str) -> None:  # the child is ready; the command itself dies at the SIGTERM
        raise CancelledError

    stopped = tmp_path / "stopped"
    with pytest.raises(CancelledError):
        stream([sys.executable, "-c", SLOW_CHILD, str(stopped)], on_line)
    assert stopped.read_text() == "stopped"  # the child finished stopping before stream returned


def test_a_failing_command_names_itself_and_its_last_lines():
    with pytest.raises(CommandError, match=r"exited with 3:\nboom"):
        stream([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], lambda _: None)
