"""The paper's comparison on the project's data: MaskFormer and the per-pixel baseline trained at the same
budget, their headline metrics side by side, and the same validation images segmented by both (one
self-contained page, comparisons/<name>.html, and its Markdown summary)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd

from pipeline.report import plots
from pipeline.report.render import CSS, html_table, img_tag, md_table

HEADLINE = ("sem_seg/mIoU", "panoptic_seg/PQ", "panoptic_seg/PQ_th", "panoptic_seg/PQ_st", "segm/AP")
INTRO = ("Both models share the backbone, pixel decoder, data, schedule and iterations; only the head "
         "differs. MaskFormer predicts one mask and one class per segment (matched to the ground truth by "
         "the Hungarian algorithm); the per-pixel baseline predicts one class per pixel, so its instances "
         "are the connected regions of each thing class. The images are the validation images with the "
         "most touching same-class objects: where the baseline merges them into one region, MaskFormer "
         "can keep them apart.")


@dataclass
class Row:
    """One validation image: the picture, its ground truth and each model's panoptic segmentation."""

    name: str
    image: object  # [H, W, 3] uint8
    truth: plots.Panoptic
    predicted: dict[str, plots.Panoptic]  # architecture -> its segmentation


def metrics_table(metrics: dict[str, dict[str, float | None]]) -> pd.DataFrame:
    """Rows: architecture, then the headline metrics (names as in the metrics JSON and MLflow)."""
    return pd.DataFrame([{"architecture": a, **{k: m.get(k) for k in HEADLINE}} for a, m in metrics.items()])


def figure(rows: Sequence[Row], names: Sequence[str], dpi: int) -> bytes | None:
    """One row per image: image | ground-truth instances | each model's instances."""
    if not rows:
        return None
    models = list(rows[0].predicted)
    cols = 2 + len(models)
    fig, axes = plt.subplots(len(rows), cols, figsize=(3 * cols, 3 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows, strict=True):
        ax_row[0].imshow(row.image)
        ax_row[0].set_title(row.name, fontsize=9)
        plots.instances_panel(ax_row[1], row.image, row.truth, names, "ground truth")
        for ax, model in zip(ax_row[2:], models, strict=True):
            plots.instances_panel(ax, row.image, row.predicted[model], names, model)
        for ax in ax_row:
            ax.axis("off")
    return plots.png(fig, dpi)


def render(title: str, table: pd.DataFrame, png: bytes | None) -> tuple[str, str]:
    """(the HTML page, the Markdown summary) of a comparison, in the run report's style."""
    image = img_tag(png, "segmented by both") if png else \
        "<p>no validation image with touching same-class instances to show</p>"
    page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
            f"</title><style>{CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(INTRO)}</p><h2>Headline metrics</h2>{html_table(table)}"
            f"<h2>The same images, segmented by both</h2>{image}\n</body></html>\n")
    return page, f"# {title}\n\n{INTRO}\n\n{md_table(table)}\n"
