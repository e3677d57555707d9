"""params.yaml validation for the data section: defaults, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.__main__ import main as cli
from pipeline.outputs import processed_dir
from pipeline.params import ParamsError, load_params

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_load_with_synthetic_default():
    data = load_params(REPO / "params.yaml").data
    assert data.dataset == "synthetic" and processed_dir(data) == Path("data/processed/synthetic")
    assert data.synthetic.num_train > 0 and data.source("cityscapes").local_path is None


@pytest.mark.parametrize(("text", "message"), [
    ("data:\n  synthetic:\n    num_train: 0\n", "data.synthetic.num_train: Input should be greater than 0"),
    ("data:\n  num_wrkers: 2\n", "data.num_wrkers: Extra inputs are not permitted"),
    ("data:\n  dataset: imagenet\n", "data.dataset: unknown source 'imagenet'"),
    ("data:\n  sources:\n    ade20k:\n      url: x\n", "data.sources.ade20k.url: Extra inputs"),
    ("data:\n  synthetic:\n    min_instances: 5\n    max_instances: 2\n", "data.synthetic: max_instances"),
    ("data:\n  synthetic:\n    image_size: 32\n", "data.synthetic: max_object_size must be <= image_size"),
    ("data: [\n", "cannot read params"),
])
def test_errors_name_file_and_dotted_key(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_cli_runs_both_stages(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  num_workers: 0\n  synthetic: {num_train: 2, num_val: 1, image_size: 48}\n")
    assert cli(["download", "--params", str(path)]) == 0
    assert cli(["preprocess", "--params", str(path)]) == 0
    assert "train: 2 images (0 skipped)" in capsys.readouterr().out
    assert (tmp_path / "data" / "processed" / "synthetic" / "manifest.json").is_file()
