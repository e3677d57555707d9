"""What every stage process pays before and after its work: the library's packages import their exports on
first use (reading params or data costs no torch import), every exported name still resolves to its
definition, and a finished stage ends without tearing its modules down but with everything exit does."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest

PACKAGES = ("maskformer", "maskformer.data", "maskformer.engine", "maskformer.evaluation")


def _loaded_after(statement: str) -> set[str]:
    """The heavy top-level modules a fresh interpreter holds after `statement`."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    names = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True).stdout)
    return {n for n in names if n.split(".")[0] in ("torch", "torchvision", "scipy", "mlflow")}


def test_params_and_data_sources_load_without_torch():
    assert _loaded_after("import pipeline.params, pipeline.outputs, pipeline.data.sources") == set()


@pytest.mark.parametrize("name", PACKAGES)
def test_every_export_resolves_and_none_shadows_a_submodule(name):
    package = importlib.import_module(name)
    submodules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    assert not set(package.__all__) & submodules  # importing that submodule would replace the export
    for export, module in package._EXPORTS.items():
        assert getattr(package, export) is getattr(importlib.import_module(module, name), export)
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match=f"module '{name}' has no attribute 'nope'"):
        package.nope  # noqa: B018


def test_the_train_function_and_its_module_are_apart():
    from maskformer.engine import train, trainer

    assert callable(train) and train.__module__ == "maskformer.engine.trainer" and trainer.train is train


EXITS = """
import atexit, threading, time
from pipeline.__main__ import exit_without_teardown
atexit.register(lambda: print("atexit ran", flush=True))
threading.Thread(target=lambda: (time.sleep(0.3), print("thread ended"))).start()
print("unflushed", end="")
exit_without_teardown(3)
print("never")
"""


def test_exit_without_teardown_joins_threads_runs_atexit_and_flushes():
    result = subprocess.run([sys.executable, "-c", EXITS], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (3, "unflushedthread ended\natexit ran\n"), result.stderr
