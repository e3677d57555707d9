"""What identifies a pipeline run beyond its name: project folder, flattened params, git commit, data hash."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from pipeline.outputs import processed_dir
from pipeline.params import Params

MAX_PARAM_CHARS = 6000  # MLflow's limit on one param value


def dvc_process(pid: int | None = None) -> str | None:
    """`dvc:<pid>:<start time>` of the nearest DVC process above `pid` (default: this one), the `dvc repro`
    or `dvc exp run` whose stages make one execution; None when there is none or no /proc to read."""
    pid = os.getppid() if pid is None else pid
    while pid > 1:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:3]
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return None
        if any(Path(os.fsdecode(arg)).name == "dvc" for arg in argv):
            return f"dvc:{pid}:{fields[19]}"  # stat's 22nd field, the start time: pids get reused
        pid = int(fields[1])  # the parent
    return None


def flatten(tree: dict[str, Any], sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of `a<sep>b` keys (empty dicts stay values)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        flat.update(flatten(value, sep, name) if isinstance(value, dict) and value else {name: value})
    return flat


def param_dict(params: Params) -> dict[str, str]:
    """All params as dotted keys named as in params.yaml, values as JSON text (strings as themselves)."""
    flat = flatten(params.model_dump(mode="json"))
    return {k: (v if isinstance(v, str) else json.dumps(v))[:MAX_PARAM_CHARS] for k, v in flat.items()}


def git_commit() -> str | None:
    """HEAD of the workspace the stage runs in (a flow run's worktree, a DVC experiment's, the project),
    or None outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def data_hash(params: Params) -> str | None:
    """DVC's md5 of data/processed/<dataset> from dvc.lock, else a sha256 of the manifest's split hashes."""
    target = processed_dir(params.data)
    if Path("dvc.lock").exists():
        stages = (yaml.safe_load(Path("dvc.lock").read_text()) or {}).get("stages", {})
        hashes = {
            Path(e["path"]): e["md5"]
            for s in stages.values()
            for e in [*s.get("outs", []), *s.get("deps", [])]
            if isinstance(e, dict) and e.get("md5") and e.get("path")
        }
        for path in (target, target.parent):  # the data set's folder, or data/processed as one out
            if path in hashes:
                return f"md5:{hashes[path]}"
    manifest = target / "manifest.json"
    if not manifest.exists():
        return None
    splits = json.loads(manifest.read_text())["splits"]
    return (
        "sha256:"
        + hashlib.sha256(
            json.dumps({s: v["sha256"] for s, v in splits.items()}, sort_keys=True).encode()
        ).hexdigest()
    )
