"""The project folder, above a run's workspace; imports nothing of the pipeline, so any module may use it."""

from __future__ import annotations

from pathlib import Path


def project_root() -> Path:
    """The absolute project folder: the nearest ancestor of the cwd with dvc.yaml or .git, taken above
    .dvc/ when the cwd is a run's workspace there (a flow run's, or `dvc exp run --temp/--queue`'s)."""
    cwd = Path.cwd().resolve()
    if ".dvc" in cwd.parts:
        cwd = Path(*cwd.parts[: cwd.parts.index(".dvc")])
    return next((d for d in (cwd, *cwd.parents) if (d / "dvc.yaml").exists() or (d / ".git").exists()), cwd)
