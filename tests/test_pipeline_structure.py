"""The shape of pipeline/: dvc.yaml and pipeline.outputs name the same paths, imports point one way (no
cycle, no module reaching into a stage for a constant), and every sub-package says what it owns."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import yaml

import pipeline
from pipeline import outputs

ROOT = Path(__file__).resolve().parents[1]


def _dvc_paths() -> set[str]:
    """Every out and metrics file of dvc.yaml; none may be templated from params (a preset could move it)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    found = set()
    for stage in stages.values():
        for entry in [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("deps", [])]:
            path = entry if isinstance(entry, str) else next(iter(entry))
            assert "${" not in path, f"dvc.yaml: {path} is templated from params.yaml"
            found.add(path)
    return {p for p in found if not p.startswith(("pipeline", "maskformer"))}  # code deps aside


def test_dvc_yaml_and_outputs_name_the_same_paths():
    declared = {str(v) for k, v in vars(outputs).items() if k.isupper() and isinstance(v, Path)}
    written = _dvc_paths()
    assert written <= declared, f"dvc.yaml paths not in pipeline/outputs.py: {written - declared}"
    # the report's files live in the `reports` out; the resume folder is deliberately no out
    not_outs = {"params.yaml", "reports/report.html", "reports/report.md", "reports/plots",
                "models/checkpoints", "data/downloads", "sweeps", ".dvc/tmp/runs", "comparisons"}
    unused = declared - written - not_outs
    assert not unused, f"paths in pipeline/outputs.py that dvc.yaml does not declare: {unused}"


def _modules() -> dict[str, Path]:
    """Every module of the pipeline package by dotted name."""
    found = {"pipeline": Path(pipeline.__file__)}
    for info in pkgutil.walk_packages(pipeline.__path__, "pipeline."):
        spec = importlib.util.find_spec(info.name)
        found[info.name] = Path(spec.origin)
    return found


def _runtime_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The pipeline modules `name` imports when it runs (anywhere in the file; `if TYPE_CHECKING` aside)."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and getattr(node.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return {m for m in found if m in known and m != name}


def test_no_import_cycle_in_pipeline():
    modules = _modules()
    graph = {name: _runtime_imports(name, path, set(modules)) for name, path in modules.items()}
    # a package's __init__ re-exporting its own modules is not a cycle through them
    graph = {n: {m for m in deps if not (m.startswith(n + ".") and modules[n].name == "__init__.py")}
             for n, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(dep):], dep]))
            if dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_only_stages_import_stage_modules():
    modules = _modules()
    for name, path in modules.items():
        if name.startswith("pipeline.stages"):
            continue
        stages = {m for m in _runtime_imports(name, path, set(modules)) if m.startswith("pipeline.stages.")}
        assert not stages, f"{name} imports {stages}: constants belong in pipeline.outputs / pipeline.params"


def test_every_package_opens_with_a_one_line_docstring():
    for info in pkgutil.walk_packages(pipeline.__path__, "pipeline."):
        if info.ispkg:
            doc = importlib.import_module(info.name).__doc__
            assert doc and doc.strip(), f"{info.name} has no docstring saying what it owns"
            assert "\n" not in doc.strip(), f"{info.name}: the docstring is one line"


def test_data_stages_depend_on_every_data_key_but_the_runtime_ones():
    from pipeline.params import DataParams

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    read = {p.removeprefix("data.") for s in ("download", "preprocess") for p in stages[s]["params"]
            if p.startswith("data.")}
    assert read | set(DataParams.RUNTIME_KEYS) == set(DataParams.model_fields), "a data key no stage tracks"
    assert not read & set(DataParams.RUNTIME_KEYS)
