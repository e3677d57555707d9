"""Package exports imported on first use (PEP 562), so `maskformer.config` loads without torch or torchvision:
a stage that only reads params or data pays no model import."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package`, whose public names live in the submodules `exports` names
    (name -> ".submodule"). No name may equal a submodule's, or importing that submodule would shadow it."""
    namespace = sys.modules[package].__dict__

    def module_getattr(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        namespace[name] = value  # later lookups are plain attribute reads
        return value

    def module_dir() -> list[str]:
        return sorted({*namespace, *exports})

    return module_getattr, module_dir
