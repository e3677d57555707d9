"""The report's figures as PNG bytes (matplotlib Agg): curves, per-class IoU, confusion, overlays."""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # headless: the report is built by a stage process without a display

import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


@dataclass
class Sample:
    """One validation image with its ground truth and predictions (class maps: uint8, 255 = ignore)."""

    name: str
    image: np.ndarray  # [H, W, 3] uint8
    truth: np.ndarray  # [H, W] class index
    semantic: np.ndarray | None  # [H, W] predicted class index
    panoptic: np.ndarray | None  # [H, W] predicted segment id (0 = none)


def _png(fig: plt.Figure, dpi: int) -> bytes:
    """Render and close a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def class_colors(num_classes: int) -> np.ndarray:
    """A fixed, distinct RGB colour per class [K, 3] (tab20, then evenly spaced hues)."""
    if num_classes <= 20:
        return (np.array(plt.get_cmap("tab20").colors[:num_classes]) * 255).astype(np.uint8)
    hues = plt.get_cmap("hsv")(np.linspace(0, 1, num_classes, endpoint=False))[:, :3]
    return (hues * 255).astype(np.uint8)


def colorize(labels: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Class map -> RGB; ignore and out-of-range pixels black."""
    rgb = np.zeros((*labels.shape, 3), np.uint8)
    valid = labels < len(colors)
    rgb[valid] = colors[labels[valid]]
    return rgb


def colorize_segments(ids: np.ndarray) -> np.ndarray:
    """Segment-id map -> RGB with a pseudo-random colour per segment (0 = none: black)."""
    rng = np.random.default_rng(0)
    palette = rng.integers(40, 256, size=(int(ids.max()) + 1, 3), dtype=np.uint8)
    palette[0] = 0
    return palette[ids]


def blend(image: np.ndarray, rgb: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Colour over the image, leaving black (no label) pixels as the image."""
    labelled = rgb.any(axis=-1, keepdims=True)
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * rgb.astype(np.float32)
    return np.where(labelled, mixed, image).astype(np.uint8)


def training_curves(log: pd.DataFrame, dpi: int) -> bytes | None:
    """Every loss term (aux layers thin) on a log scale, and the learning rate, against the step."""
    losses = [c for c in log.columns if c.startswith("loss")]
    if log.empty or not losses:
        return None
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [2.2, 1]})
    colors: dict[str, str] = {}
    for name in losses:
        base, _, layer = name.rpartition("_")
        aux = layer.isdigit()  # loss_ce_0 .. : an earlier decoder layer's term, drawn in its term's colour
        color = colors.setdefault(base if aux else name, f"C{len(colors)}")
        ax.plot(log["step"], log[name], color=color, label=None if aux else name, lw=0.7 if aux else 1.8,
                alpha=0.4 if aux else 1.0)
    ax.set(xlabel="step", ylabel="loss (aux layers thin)", yscale="log", title="training losses")
    ax.legend(fontsize=8)
    if "lr" in log:
        ax_lr.plot(log["step"], log["lr"], color="tab:purple")
    ax_lr.set(xlabel="step", title="learning rate")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    return _png(fig, dpi)


def per_class_iou(table: pd.DataFrame, dpi: int) -> bytes | None:
    """Horizontal bars of per-class IoU (%), best at the top."""
    if "IoU" not in table:
        return None
    table = table.dropna(subset=["IoU"]).sort_values("IoU")
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.22 * len(table)))
    ax.barh(table["class"].astype(str), table["IoU"], color="tab:blue")
    ax.set(xlabel="IoU (%)", xlim=(0, 100), title="per-class IoU")
    ax.tick_params(axis="y", labelsize=7 if len(table) > 30 else 9)
    return _png(fig, dpi)


def confusion_heatmap(confusion: pd.DataFrame, dpi: int) -> bytes | None:
    """Row-normalised confusion (ground truth rows, predicted columns; void last)."""
    if confusion.empty:
        return None
    counts = confusion.set_index("gt").astype(float)
    counts = counts.loc[counts.sum(axis=1) > 0]  # classes absent from the ground truth tell nothing
    if counts.empty:
        return None
    rates = counts.div(counts.sum(axis=1), axis=0).to_numpy()
    size = min(14.0, 2.5 + 0.3 * max(rates.shape))
    fig, ax = plt.subplots(figsize=(size, size * rates.shape[0] / rates.shape[1] + 0.8))
    im = ax.imshow(rates, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the row's pixels")
    if max(rates.shape) <= 40:  # beyond that, tick labels would overlap
        ax.set_xticks(range(rates.shape[1]), counts.columns, rotation=90, fontsize=7)
        ax.set_yticks(range(rates.shape[0]), counts.index, fontsize=7)
    ax.set(xlabel="predicted", ylabel="ground truth", title="confusion (rows normalised)")
    return _png(fig, dpi)


def overlays(samples: list[Sample], num_classes: int, dpi: int) -> bytes | None:
    """One row per sample: image | ground truth | semantic prediction | panoptic prediction (by segment)."""
    if not samples:
        return None
    colors = class_colors(num_classes)
    panoptic = any(s.panoptic is not None for s in samples)
    cols = 4 if panoptic else 3
    fig, axes = plt.subplots(len(samples), cols, figsize=(3 * cols, 3 * len(samples)), squeeze=False)
    for row, sample in zip(axes, samples, strict=True):
        panels = [(sample.image, sample.name),
                  (blend(sample.image, colorize(sample.truth, colors)), "ground truth")]
        if sample.semantic is not None:
            panels.append((blend(sample.image, colorize(sample.semantic, colors)), "semantic prediction"))
        if sample.panoptic is not None:
            panels.append((blend(sample.image, colorize_segments(sample.panoptic)), "panoptic (by segment)"))
        for ax, (picture, title) in zip(row, panels, strict=False):
            ax.imshow(picture)
            ax.set_title(title, fontsize=9)
        for ax in row:
            ax.axis("off")
    return _png(fig, dpi)


def class_legend(names: list[str], dpi: int) -> bytes | None:
    """Colour swatches with class names, so the overlays can be read."""
    if not names:
        return None
    colors = class_colors(len(names)) / 255
    cols = min(6, len(names))
    rows = -(-len(names) // cols)
    fig, ax = plt.subplots(figsize=(1.9 * cols, 0.3 * rows + 0.2))
    for i, (name, color) in enumerate(zip(names, colors, strict=True)):
        x, y = i % cols, rows - 1 - i // cols
        ax.add_patch(plt.Rectangle((x, y), 0.2, 0.8, color=color))
        ax.text(x + 0.27, y + 0.4, name, va="center", fontsize=8)
    ax.set(xlim=(0, cols), ylim=(0, rows))
    ax.axis("off")
    return _png(fig, dpi)
