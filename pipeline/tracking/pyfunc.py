"""The MLflow model of a trained MaskFormer: a pyfunc that segments a batch of images, logged with the model
file as an artifact, a signature, an input example and, when asked, a registry version with an alias.

Input: a DataFrame with a column `image` of base64-encoded image files (PNG, JPEG, ...), one row per
image; param `task`: all (default), semantic, panoptic or instance. Output: one row per image with
`semantic` (base64 PNG of class indices), `panoptic` (base64 PNG, COCO panoptic colour code),
`segments_info` and `instances` (JSON text: COCO panoptic segments, COCO results with RLE masks).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema
from PIL import Image

from pipeline.params import Params

IMAGE_COLUMN = "image"
OUTPUT_COLUMNS = ("semantic", "panoptic", "segments_info", "instances")
MODEL_FILE = "model_file"  # the artifact key of the model file (kept as artifacts/<its name>)
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", IMAGE_COLUMN)]),
    outputs=Schema([ColSpec("string", name) for name in OUTPUT_COLUMNS]),
    params=ParamSchema([ParamSpec("task", "string", "all")]),
)


def encode_images(paths: Iterable[str | Path]) -> pd.DataFrame:
    """The pyfunc's input for image files: their bytes, base64-encoded, one row each."""
    encoded = [base64.b64encode(Path(p).read_bytes()).decode("ascii") for p in paths]
    return pd.DataFrame({IMAGE_COLUMN: encoded})


def decode_png(text: str) -> np.ndarray:
    """A base64 PNG of the output back to its array (class indices, or panoptic RGB)."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def _png(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _rgb(text: str, row: int) -> np.ndarray:
    """Row `row`'s image as RGB uint8; ValueError naming the row if it is not a readable image."""
    from pipeline.predictions import read_image

    name, expected = f"{IMAGE_COLUMN}[{row}]", "a base64-encoded image"
    try:
        data = base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: not {expected} ({exc})") from None
    return read_image(io.BytesIO(data), name, expected)


class SegmentationModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: the model file read as data (weights_only) and the run's test-time settings."""

    def load_context(self, context: Any) -> None:
        """Build the segmenter from the logged model file and the `evaluate` settings in the model config."""
        from pipeline.params import EvaluateParams
        from pipeline.predictions import Segmenter

        evaluate = EvaluateParams(**context.model_config["evaluate"])
        self.segmenter = Segmenter(context.artifacts[MODEL_FILE], evaluate)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Segment every row's image; see the module docstring for the columns."""
        from maskformer.data import id_to_rgb
        from pipeline.predictions import TASKS

        task = (params or {}).get("task", "all")
        tasks = TASKS if task == "all" else (task,)
        images = [_rgb(text, row) for row, text in enumerate(model_input[IMAGE_COLUMN])]
        rows = []
        for p in self.segmenter(images, tasks):
            rows.append({"semantic": _png(p.semantic) if p.semantic is not None else "",
                         "panoptic": _png(id_to_rgb(p.panoptic)) if p.panoptic is not None else "",
                         "segments_info": json.dumps(p.segments_info), "instances": json.dumps(p.instances)})
        return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))


def _input_example() -> pd.DataFrame:
    """A 64x64 grey image: small, and a valid input for any model of this project."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buffer, format="PNG")
    return pd.DataFrame({IMAGE_COLUMN: [base64.b64encode(buffer.getvalue()).decode("ascii")]})


def log_model(model_path: str | Path, params: Params) -> str:
    """Log the model file as a pyfunc model of the active run (tag `model_uri`) with the run's `evaluate`
    settings; with tracking.register_as, a new version of that registered model, which takes
    tracking.alias (moved from the version that had it). Returns the model's URI."""
    import dataclasses

    import maskformer
    import pipeline

    register_as, alias = params.tracking.register_as, params.tracking.alias
    evaluate = dataclasses.asdict(params.evaluate)

    info = mlflow.pyfunc.log_model(
        name="model", python_model=str(Path(__file__).with_name("pyfunc_entry.py")),  # code, not a pickle
        artifacts={MODEL_FILE: str(model_path)},
        model_config={"evaluate": evaluate}, signature=SIGNATURE, input_example=_input_example(),
        code_paths=[str(Path(maskformer.__file__).parent), str(Path(pipeline.__file__).parent)],
        pip_requirements=_requirements(), registered_model_name=register_as)
    mlflow.set_tag("model_uri", info.model_uri)
    if register_as and alias:
        version = info.registered_model_version
        MlflowClient().set_registered_model_alias(register_as, alias, str(version))
        mlflow.set_tags({"registered_model": f"models:/{register_as}/{version}",
                         "registered_alias": f"models:/{register_as}@{alias}"})
    return info.model_uri


def _requirements() -> list[str]:
    """The packages the pyfunc imports, at the versions of this environment."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("torch", "torchvision", "numpy", "scipy", "pandas", "pillow", "pycocotools", "pydantic",
                 "pyyaml", "tqdm", "mlflow"):
        try:
            found.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            found.append(name)
    return found


def model_file(uri: str) -> Path:
    """The model file inside an MLflow model (`models:/name@alias`, `models:/name/3`, `runs:/id/model`,
    `models:/m-...`), downloaded; ValueError naming the URI when it is not a model of this project."""
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    found = sorted(local.glob("artifacts/*.pt"))
    if not found:
        raise ValueError(f"{uri}: an MLflow model without this project's model file (artifacts/)")
    return found[0]
