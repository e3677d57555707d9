"""`--set key=value` overrides: validated by pipeline.params before any work, then written into params.yaml
the way `dvc exp run -S` does (comments kept), so DVC sees the change and records it."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from pipeline.params import Params, ParamsError, load_params


def parse_value(text: str) -> Any:
    """A value as YAML 1.2 reads it, like DVC's -S: `1e-3` is a float, `null` is None, `a` a string."""
    return YAML(typ="safe", pure=True).load(text) if text.strip() else None


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["train.lr=0.001", ...]` -> `{"train.lr": 0.001}`; a malformed item names itself."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ParamsError(f"--set {item!r}: expected a dotted key and a value, e.g. train.lr=0.001")
        overrides[key] = parse_value(value)
    return overrides


def _assign(tree: dict, key: str, value: Any, make: type = dict) -> None:
    """Set `tree[a][b][c] = value` for key "a.b.c", creating missing sections; a value in the way: error."""
    *parents, leaf = key.split(".")
    node = tree
    for depth, part in enumerate(parents):
        if part not in node or node[part] is None:
            node[part] = make()
        node = node[part]
        if not isinstance(node, dict):
            prefix = ".".join(parents[: depth + 1])
            raise ParamsError(f"{key}: {prefix} is a value, not a section")
    node[leaf] = value


def merged_params(params_path: str | Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The content of params.yaml with the overrides applied (not validated)."""
    path = Path(params_path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ParamsError(f"{path}: cannot read params: {exc}") from exc
    merged = copy.deepcopy(raw)
    for key, value in overrides.items():
        _assign(merged, key, value)
    return merged


def validate_overrides(params_path: str | Path, overrides: dict[str, Any]) -> Params:
    """Validate params.yaml with the overrides applied; ParamsError names the bad key. Writes nothing."""
    merged = merged_params(params_path, overrides)
    with tempfile.TemporaryDirectory(prefix="params-") as tmp:
        candidate = Path(tmp) / "params.yaml"
        candidate.write_text(yaml.safe_dump(merged, sort_keys=False))
        try:
            return load_params(candidate)
        except ParamsError as exc:
            raise ParamsError(str(exc).replace(str(candidate), f"{params_path} with --set")) from None


def _null(representer: Any, _: None) -> Any:
    """Write None as `null` (ruamel's default is an empty value)."""
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def write_overrides(params_path: str | Path, overrides: dict[str, Any]) -> None:
    """Write the overrides into params.yaml in place, keeping its comments and key order."""
    if not overrides:
        return
    path = Path(params_path)
    yml = YAML()  # round-trip mode, as DVC edits params files; keep nulls and long lines as written
    yml.preserve_quotes, yml.width = True, 4096
    yml.representer.add_representer(type(None), _null)
    tree = yml.load(path.read_text())
    for key, value in overrides.items():
        _assign(tree, key, value, make=type(tree))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        yml.dump(tree, f)
    tmp.replace(path)
