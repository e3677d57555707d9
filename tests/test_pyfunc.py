"""The MLflow model of a trained MaskFormer: pyfunc predictions equal the predict command's, registry
aliases and run ids resolve for `predict`, and `mlflow models serve` answers an image over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image
from test_predict_command import model_file, scenes

from maskformer.data import rgb_to_id
from pipeline import tracking
from pipeline.__main__ import main as cli
from pipeline.params import load_params
from pipeline.predictions import Segmenter
from pipeline.tracking.pyfunc import OUTPUT_COLUMNS, decode_png, encode_images


@pytest.fixture
def logged(tmp_path, monkeypatch):
    """A project registering its model as `shapes`: (params, model file, run id, model URI, images)."""
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)
    raw = {"tracking": {"experiment": "pyfunc", "register_as": "shapes"}, "evaluate": {"test_size": 64}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(tmp_path / "params.yaml")
    model_file(tmp_path / "model.pt")
    with tracking.stage_run("train", params) as run:
        uri = tracking.log_model(tmp_path / "model.pt", params)
    return params, tmp_path / "model.pt", run.info.run_id, uri, scenes(tmp_path / "images", (48, 48, 64))


def test_pyfunc_predicts_what_the_segmenter_predicts(logged):
    params, path, _, uri, images = logged
    model = mlflow.pyfunc.load_model(uri)
    assert model.metadata.signature.inputs.input_names() == ["image"]
    assert model.metadata.signature.params.to_dict()[0]["name"] == "task"
    assert model.metadata.get_input_schema() is not None and model.metadata.saved_input_example_info
    frame = model.predict(encode_images(images))
    assert list(frame.columns) == list(OUTPUT_COLUMNS) and len(frame) == 3
    expected = Segmenter(path, params.evaluate)([np.asarray(Image.open(p).convert("RGB")) for p in images])
    for row, want in zip(frame.itertuples(), expected, strict=True):
        np.testing.assert_array_equal(decode_png(row.semantic), want.semantic)
        np.testing.assert_array_equal(rgb_to_id(decode_png(row.panoptic)), want.panoptic)
        assert json.loads(row.segments_info) == want.segments_info and want.segments_info
        assert json.loads(row.instances) == want.instances
    only = model.predict(encode_images(images[:1]), params={"task": "semantic"})
    assert only.panoptic[0] == "" and json.loads(only.instances[0]) == []
    with pytest.raises(ValueError, match=r"image\[0\]: not a base64-encoded image"):
        model.predict(encode_images([path]))  # the model file is no image


def test_registry_alias_and_run_id_resolve_for_predict(logged, tmp_path, capsys):
    _, path, run_id, _, images = logged
    version = MlflowClient().get_model_version_by_alias("shapes", "champion")
    assert int(version.version) == 1 and version.run_id == run_id
    local = tmp_path / "local"
    assert cli(["predict", *map(str, images), "--model", str(path), "--out", str(local)]) == 0
    for source in (["--model", "models:/shapes@champion"], ["--run", run_id]):
        out = tmp_path / source[0].strip("-")
        assert cli(["predict", *map(str, images), *source, "--out", str(out)]) == 0
        for image in images:
            name = f"{image.stem}_panoptic.png"
            assert np.array_equal(np.asarray(Image.open(out / name)), np.asarray(Image.open(local / name)))
    assert cli(["predict", str(images[0]), "--model", "models:/nosuch@champion", "--out", str(out)]) == 2
    assert "models:/nosuch@champion" in capsys.readouterr().out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_models_serve_answers_a_posted_image(logged):
    params, path, _, uri, images = logged
    port = _free_port()
    bin_dir = os.path.dirname(sys.executable)  # the server runs `uvicorn` from PATH, as in an active venv
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        body = json.dumps({"dataframe_split": encode_images(images[:2]).to_dict(orient="split"),
                           "params": {"task": "panoptic"}}).encode()
        deadline, answer = time.monotonic() + 120, None
        while answer is None:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body,
                                                 {"Content-Type": "application/json"})
                answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(1)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
        server.wait(30)
    rows = answer["predictions"]
    rgbs = [np.asarray(Image.open(p).convert("RGB")) for p in images[:2]]
    expected = Segmenter(path, params.evaluate)(rgbs, ("panoptic",))
    assert len(rows) == 2
    for row, want in zip(rows, expected, strict=True):
        np.testing.assert_array_equal(rgb_to_id(decode_png(row["panoptic"])), want.panoptic)
        assert json.loads(row["segments_info"]) == want.segments_info and row["semantic"] == ""
