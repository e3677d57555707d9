"""The GPU Dockerfile (not buildable here): it installs what `make setup` and README install, the same way,
on a CUDA PyTorch base matching the pinned torch, as a non-root user."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def pip_installs(text: str) -> list[list[str]]:
    """The arguments of every `pip install` in a Makefile recipe or Dockerfile RUN (quiet flags dropped)."""
    text = text.replace("\\\n", " ")
    commands = []
    for match in re.finditer(r"(?:\S*/)?pip install ([^&;\n]+)", text):
        args = [a for a in shlex.split(match[1]) if a not in ("-q", "--quiet")]
        commands.append(args)
    return commands


def setup_recipe() -> str:
    """The Makefile's install recipe (the rule that builds the install stamp)."""
    makefile = (ROOT / "Makefile").read_text()
    return re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", makefile, re.M)[1]


def test_installs_like_make_setup() -> None:
    assert pip_installs(DOCKERFILE) == pip_installs(setup_recipe())
    copied = " ".join(re.findall(r"^COPY (.+)$", DOCKERFILE, re.M))
    for name in ("pyproject.toml", "constraints.txt"):
        assert name in copied
        assert name in (ROOT / "README.md").read_text()  # README names the same install files


def test_cuda_pytorch_base_matches_the_pinned_torch() -> None:
    torch_pin = re.search(r"^torch==([\d.]+)$", (ROOT / "constraints.txt").read_text(), re.M)[1]
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.M)[1]
    assert base.startswith(f"pytorch/pytorch:{torch_pin}-cuda") and "cudnn" in base
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", DOCKERFILE, re.M)


def test_runs_as_non_root_and_reproduces_by_default() -> None:
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^CMD \["dvc", "repro"\]$', DOCKERFILE, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv/", "data/", "models/", ".dvc/cache/"} <= set(ignored)


def test_readme_shows_the_gpu_run() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"docker run --gpus all .*dvc repro", readme), "README: show `docker run --gpus all`"
