# `make run` and `make test` are README's two commands; both set up .venv/ first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run compare test lint clean
setup: $(STAMP)

# Rebuilt only when the install files change; torch first so pip takes the pinned build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch torchvision
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The main job: every stage of dvc.yaml on the default synthetic data, as a Prefect flow (local ephemeral
# Prefect unless PREFECT_API_URL is set) in its own workspace, saved as a DVC experiment and applied to the
# working copy; it ends by printing where the report and the MLflow run are.
run: setup
	$(BIN)/python -m pipeline run --apply

# The paper's comparison: MaskFormer and the per-pixel baseline trained alike, side by side (comparisons/).
compare: setup
	$(BIN)/python -m pipeline compare_architectures

# Two workers, a whole test file each at a time, slow files first: the two end-to-end modules start at once.
test: setup
	$(BIN)/ruff check maskformer pipeline tests
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

lint: setup
	$(BIN)/ruff check maskformer pipeline tests

clean:
	rm -rf $(VENV)
