# GPU image of the pipeline: CUDA-enabled PyTorch, the project installed with its pinned requirements
# exactly as `make setup` does (constraints.txt + pyproject.toml), run as a non-root user.
#   docker build -t maskformer .
#   docker run --gpus all --rm -v "$PWD":/workspace -u "$(id -u):$(id -g)" maskformer dvc repro
# The base's torch matches constraints.txt (torch 2.14.1, CUDA 13.0 wheels), so pip keeps it.
ARG BASE_IMAGE=pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime
FROM ${BASE_IMAGE}

# no analytics: `python -m pipeline` sets its offline environment itself (pipeline/offline.py)
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/app

# git for DVC (the mounted repository may belong to another uid: trust it), make for `make run/test`
RUN apt-get update && apt-get install -y --no-install-recommends git make \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*' \
    && useradd --create-home --uid 1000 app && chmod 1777 /home/app

WORKDIR /workspace
# requirements first, so code changes do not reinstall them (same commands as the Makefile's setup)
COPY pyproject.toml constraints.txt README.md ./
COPY maskformer/ maskformer/
COPY pipeline/ pipeline/
RUN pip install -q --upgrade pip \
    && pip install -q -c constraints.txt torch torchvision \
    && pip install -q -c constraints.txt -e '.[dev]'
COPY --chown=app:app . .
RUN chown app:app /workspace

USER app
CMD ["dvc", "repro"]
