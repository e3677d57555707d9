"""The architecture comparison page: the metrics table as the experiments' files give it, the figure with a
column per model, HTML and Markdown with the same numbers; an experiment's commit found by its name."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from pipeline.commands.compare_architectures import experiment_commit
from pipeline.report import architectures, plots


def _row(name: str) -> architectures.Row:
    ids = np.zeros((16, 16), np.int64)
    ids[2:8, 2:8], ids[8:14, 8:14] = 1, 2
    truth = plots.Panoptic(ids, [(1, 0, True), (2, 0, True)])
    merged = plots.Panoptic((ids > 0).astype(np.int64), [(1, 0, True)])  # one region: the pair merged
    return architectures.Row(name, np.full((16, 16, 3), 128, np.uint8), truth,
                             {"maskformer": truth, "per_pixel_baseline": merged})


def test_metrics_table_and_page_carry_the_same_numbers():
    table = architectures.metrics_table({
        "maskformer (a-0)": {"sem_seg/mIoU": 61.234, "panoptic_seg/PQ_th": 40.0, "segm/AP": 30.5},
        "per_pixel_baseline (a-1)": {"sem_seg/mIoU": 58.0, "panoptic_seg/PQ_th": 12.25},
    })
    assert list(table.columns) == ["architecture", *architectures.HEADLINE]
    assert table["segm/AP"].isna().tolist() == [False, True]
    png = architectures.figure([_row("val_1"), _row("val_2")], ["cat"], dpi=40)
    assert png is not None and png.startswith(b"\x89PNG")
    page, summary = architectures.render("cmp", table, png)
    assert 'alt="segmented by both"' in page and "61.23" in page and "12.25" in page
    assert "| maskformer (a-0) | 61.23 |" in summary and "| per_pixel_baseline (a-1) | 58 |" in summary
    assert architectures.figure([], ["cat"], dpi=40) is None
    assert "no validation image" in architectures.render("cmp", table, None)[0]


def test_an_experiment_is_found_by_name(tmp_path, monkeypatch):
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "base")
    head = git("rev-parse", "HEAD")
    git("update-ref", f"refs/exps/{head[:2]}/{head[2:]}/arch-1", head)  # where DVC keeps experiments
    monkeypatch.chdir(tmp_path)
    assert experiment_commit("arch-1") == head
    with pytest.raises(LookupError, match="arch-2"):
        experiment_commit("arch-2")
