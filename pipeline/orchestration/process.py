"""A stage's process tree, streamed into a log: output lines as they come, progress-bar refreshes thinned
to a few, and the whole tree (dvc and the stage it runs) stopped when the caller is interrupted."""

from __future__ import annotations

import codecs
import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

_BREAK = re.compile(r"[\r\n]")
# a stopped training writes its checkpoint and ends its MLflow run KILLED well within this; Prefect's runner
# kills a cancelled flow run's process after 30 s
STOP_GRACE_S = 25.0


class CommandError(RuntimeError):
    """A command that exited with an error; the message has the command and its last lines."""


def _pump(proc: subprocess.Popen, out: queue.Queue) -> None:
    """Read the output as it arrives: ('line', text) per newline, ('refresh', text) per carriage return
    (a progress bar redrawing itself), then None at the end."""
    assert proc.stdout is not None
    decoder, pending = codecs.getincrementaldecoder("utf-8")(errors="replace"), ""
    while chunk := os.read(proc.stdout.fileno(), 65536):
        pending += decoder.decode(chunk)
        while match := _BREAK.search(pending):
            text, pending = pending[: match.start()], pending[match.end():]
            out.put(("line" if match.group() == "\n" else "refresh", text))
    if pending:
        out.put(("line", pending))
    out.put(None)


def _group_gone(pgid: int, deadline: float) -> bool:
    """Wait until no process of group `pgid` is left, or `deadline` (monotonic) passes; True when none is."""
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def stop_tree(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> int:
    """SIGTERM to the process group (the command and everything it started), SIGKILL to what is left of
    it after `grace_s`. Waits for the whole group, not only the command: DVC dies at once, the stage it
    started still writes its checkpoint and ends its MLflow run, into the pipe this process reads."""
    deadline = time.monotonic() + grace_s
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return proc.wait()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)  # reaped, so that the group empties when its other members end
    if not _group_gone(proc.pid, deadline):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


def stream(command: list[str], on_line: Callable[[str], None], cwd: str | Path = ".",
           env: dict[str, str] | None = None, on_tick: Callable[[], None] | None = None,
           tick_s: float = 5.0, refresh_s: float = 30.0) -> list[str]:
    """Run `command` in its own process group, passing each output line (stdout and stderr) to `on_line`
    as it comes, a progress refresh at most every `refresh_s` seconds, and calling `on_tick` every
    `tick_s` seconds. Returns the lines passed on; raises CommandError on a non-zero exit. If this is
    interrupted (an exception, a cancelled flow run), the whole process tree is stopped first."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    events: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(proc, events), daemon=True).start()
    seen: list[str] = []
    next_tick, last_refresh = time.monotonic() + tick_s, -refresh_s
    try:
        while True:
            try:
                event = events.get(timeout=max(0.1, next_tick - time.monotonic()))
            except queue.Empty:
                event = ("refresh", "")
            if event is None:
                break
            kind, text = event
            due = kind == "line" or time.monotonic() - last_refresh >= refresh_s
            if text.strip() and due:
                if kind == "refresh":
                    last_refresh = time.monotonic()
                seen.append(text)
                on_line(text)
            if on_tick is not None and time.monotonic() >= next_tick:
                on_tick()
                next_tick = time.monotonic() + tick_s
        code = proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: stop the stage too; DVC's lock goes with its process
            stop_tree(proc)
    if code != 0:
        tail = "\n".join(seen[-20:])
        raise CommandError(f"`{' '.join(command)}` exited with {code}:\n{tail}")
    return seen
