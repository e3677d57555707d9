"""The sweep's hold on DVC's queue: starting workers never waits for them, and experiments left queued
with no worker get workers again."""

import subprocess
import sys
import time

import pytest

from pipeline.orchestration import sweep
from pipeline.orchestration.dvc_cli import DvcError

# `dvc queue start` as DVC does it: the command exits, a daemon it spawned keeps its stdout and lives on
SLEEPER = "[sys.executable, '-c', 'import time; time.sleep(60)']"
DAEMONIZES = f"import subprocess, sys; subprocess.Popen({SLEEPER}, start_new_session=True)"


def test_starting_workers_returns_while_the_daemon_it_spawned_lives_on(monkeypatch):
    monkeypatch.setattr(sweep, "dvc_command", lambda *args: [sys.executable, "-c", DAEMONIZES])
    start = time.monotonic()
    sweep._start_workers(2)
    assert time.monotonic() - start < 20  # a pipe to the command would have waited the daemon's 60 s
    subprocess.run(["pkill", "-f", "time.sleep\\(60\\)"], check=False)


def test_a_failed_start_names_the_command_and_says_its_output(monkeypatch):
    fails = "import sys; print('no repo here'); sys.exit(3)"
    monkeypatch.setattr(sweep, "dvc_command", lambda *args: [sys.executable, "-c", fails])
    with pytest.raises(DvcError, match=r"dvc queue start -j 2 failed:\nno repo here"):
        sweep._start_workers(2)


STATUS = """Task     Name    Created    Status
c204284  s-0     12:30 AM   {0}
00d9a28  s-1     12:30 AM   {1}

Worker status: {2} active, 0 idle
"""


def test_queued_experiments_with_no_worker_get_workers_again(monkeypatch):
    """A worker stopped early (dvc-task's monitor can miss a busy worker) leaves s-1 queued: after
    RESTART_POLLS polls without a worker the sweep starts one again, and then ends with both done."""
    polls = iter([("Running", "Queued", 1), ("Success", "Queued", 0), *[("Success", "Queued", 0)] * 4,
                  ("Success", "Running", 1), ("Success", "Success", 0)])
    calls = []

    def dvc(*args):
        calls.append(args)
        return STATUS.format(*next(polls)) if args == ("queue", "status") else ""

    started = []
    monkeypatch.setattr(sweep, "_dvc", dvc)
    monkeypatch.setattr(sweep, "_start_workers", started.append)
    monkeypatch.setattr(sweep, "POLL_S", 0.0)
    said = []
    status = sweep.run_queue([{"train.lr": 1}, {"train.lr": 2}], "s", 2, said.append)
    assert status == {"s-0": "Success", "s-1": "Success"}
    assert started == [2, 1]  # the first start, then one worker for the one experiment left
    assert any("1 queued and no queue worker" in line for line in said), said
    assert calls[:2] == [("exp", "run", "--queue", "-n", "s-0", "-S", "train.lr=1"),
                         ("exp", "run", "--queue", "-n", "s-1", "-S", "train.lr=2")]
