"""The report's figures as PNG bytes (matplotlib Agg): curves, per-class IoU, confusion, and validation
samples with their instances outlined."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # headless: the report is built by a stage process without a display

import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import hsv_to_rgb  # noqa: E402
from scipy import ndimage  # noqa: E402

SegmentInfo = tuple[int, int, bool]  # (segment id, class index, isthing)


@dataclass
class Panoptic:
    """A segment-id map [H, W] (0 = void) and its segments (id, class index, isthing)."""

    ids: np.ndarray
    segments: list[SegmentInfo]


@dataclass
class Sample:
    """One validation image with its ground truth and whatever predictions exist."""

    name: str
    image: np.ndarray  # [H, W, 3] uint8
    truth: Panoptic
    semantic: np.ndarray | None  # [H, W] predicted class index, 255 = ignore
    panoptic: Panoptic | None
    caption: str = ""  # shown under the name (why this image was picked)


@dataclass(frozen=True)
class Label:
    """Text for one thing segment at a pixel inside it (x, y), in its outline colour (RGB 0..255)."""

    x: int
    y: int
    text: str
    color: tuple[int, int, int]


def png(fig: plt.Figure, dpi: int) -> bytes:
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


def category_colors(categories: Sequence[dict]) -> np.ndarray:
    """Each category's own `color` (COCO's, a user's class list) where it has one, else class_colors'."""
    colors = class_colors(len(categories))
    for k, category in enumerate(categories):
        if "color" in category:
            colors[k] = category["color"]
    return colors


def colorize(labels: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Class map -> RGB; ignore and out-of-range pixels black."""
    rgb = np.zeros((*labels.shape, 3), np.uint8)
    valid = labels < len(colors)
    rgb[valid] = colors[labels[valid]]
    return rgb


def instance_colors(count: int) -> np.ndarray:
    """`count` saturated RGB colours [N, 3], hues a golden-ratio step apart so neighbours in order differ."""
    hues = (np.arange(count) * 0.618034) % 1.0
    return (hsv_to_rgb(np.stack([hues, np.ones(count), np.ones(count)], axis=-1)) * 255).astype(np.uint8)


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
    return png(fig, dpi)


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
    return png(fig, dpi)


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
    return png(fig, dpi)


def _things(segments: Sequence[SegmentInfo]) -> list[tuple[int, int, np.ndarray]]:
    """(id, class, outline colour) of each thing segment, colours in list order."""
    things = [(seg_id, cls) for seg_id, cls, isthing in segments if isthing]
    return [(seg_id, cls, color) for (seg_id, cls), color in zip(things, instance_colors(len(things)),
                                                                  strict=True)]


def draw_instances(image: np.ndarray, ids: np.ndarray, segments: Sequence[SegmentInfo], names: Sequence[str],
                   width: int = 1) -> np.ndarray:
    """The image [H, W, 3] uint8 with stuff segments as a faint fill in their class colour and each thing
    segment outlined (its pixels within `width` of its mask's edge) in a colour of its own."""
    classes = class_colors(len(names))
    fill = np.zeros_like(image)
    for seg_id, cls, isthing in segments:
        if not isthing:
            fill[ids == seg_id] = classes[cls]
    picture = blend(image, fill, alpha=0.35)
    for seg_id, _, color in _things(segments):
        mask = ids == seg_id
        picture[mask & ~ndimage.binary_erosion(mask, iterations=width)] = color
    return picture


def instance_labels(ids: np.ndarray, segments: Sequence[SegmentInfo], names: Sequence[str],
                    stuff: bool = False) -> list[Label]:
    """A label per drawn thing segment at its pixel farthest from its edge: the class name, with #k when
    the image holds several of that class (k in list order), in the segment's outline colour; with
    `stuff`, stuff segments too (their class name, in the class colour)."""
    colored = [(seg_id, cls, color) for seg_id, cls, color in _things(segments)]
    if stuff:
        classes = class_colors(len(names))
        colored += [(seg_id, cls, classes[cls]) for seg_id, cls, isthing in segments if not isthing]
    drawn = [(cls, color, np.nonzero(ids == seg_id)) for seg_id, cls, color in colored]
    drawn = [(cls, color, (rows, cols)) for cls, color, (rows, cols) in drawn if rows.size]
    things = {cls for _, cls, isthing in segments if isthing}
    totals = np.bincount([cls for cls, _, _ in drawn if cls in things], minlength=len(names))
    seen = np.zeros_like(totals)
    labels = []
    for cls, color, (rows, cols) in drawn:
        top, left = rows.min(), cols.min()
        crop = np.zeros((rows.max() - top + 3, cols.max() - left + 3), bool)  # a void border: edges count
        crop[rows - top + 1, cols - left + 1] = True
        y, x = np.unravel_index(ndimage.distance_transform_edt(crop).argmax(), crop.shape)
        seen[cls] += 1
        text = f"{names[cls]}#{seen[cls]}" if totals[cls] > 1 else names[cls]
        labels.append(Label(int(left + x - 1), int(top + y - 1), text, tuple(int(c) for c in color)))
    return labels


def draw_labels(picture: np.ndarray, labels: Sequence[Label]) -> np.ndarray:
    """The picture with each label written at its point on a box of its colour (for image files; the
    report's figures use matplotlib text instead)."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.fromarray(picture)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(9, round(min(picture.shape[:2]) / 28)))
    height, width = picture.shape[:2]
    for label in labels:
        left, top, right, bottom = draw.textbbox((label.x, label.y), label.text, font=font, anchor="mm")
        dx = max(0, 1 - left) - max(0, right + 2 - width)  # keep the box inside the picture
        dy = max(0, 1 - top) - max(0, bottom + 2 - height)
        draw.rectangle((left + dx - 1, top + dy - 1, right + dx + 1, bottom + dy + 1), fill=label.color)
        light = np.dot(label.color, (0.299, 0.587, 0.114)) > 150
        draw.text((label.x + dx, label.y + dy), label.text, fill="black" if light else "white", font=font,
                  anchor="mm")
    return np.asarray(canvas)


def instances_panel(ax: plt.Axes, image: np.ndarray, panoptic: Panoptic, names: Sequence[str],
                     title: str) -> None:
    """Outlined instances with their labels, the title counting them."""
    width = max(1, round(max(image.shape[:2]) / 250))  # outlines stay visible once the figure scales down
    ax.imshow(draw_instances(image, panoptic.ids, panoptic.segments, names, width))
    labels = instance_labels(panoptic.ids, panoptic.segments, names)
    for label in labels:
        light = np.dot(label.color, (0.299, 0.587, 0.114)) > 150  # dark text on a light outline colour
        ax.text(label.x, label.y, label.text, color="black" if light else "white", fontsize=5.5, ha="center",
                va="center", bbox={"facecolor": np.array(label.color) / 255, "alpha": 0.8, "pad": 0.6,
                                   "linewidth": 0})
    ax.set_title(f"{title}: {len(labels)} instances", fontsize=9)


def overlays(samples: list[Sample], names: Sequence[str], dpi: int) -> bytes | None:
    """One row per sample: image | ground-truth instances | predicted instances | semantic prediction
    (prediction columns only when some sample has one)."""
    if not samples:
        return None
    panoptic = any(s.panoptic is not None for s in samples)
    semantic = any(s.semantic is not None for s in samples)
    cols = 2 + panoptic + semantic
    fig, axes = plt.subplots(len(samples), cols, figsize=(3 * cols, 3 * len(samples)), squeeze=False)
    for row, sample in zip(axes, samples, strict=True):
        row[0].imshow(sample.image)
        row[0].set_title(f"{sample.name}\n{sample.caption}" if sample.caption else sample.name, fontsize=9)
        instances_panel(row[1], sample.image, sample.truth, names, "ground truth")
        if panoptic and sample.panoptic is not None:
            instances_panel(row[2], sample.image, sample.panoptic, names, "predicted")
        elif panoptic:
            row[2].set_title("no panoptic prediction", fontsize=9)
        if semantic:
            if sample.semantic is not None:
                row[-1].imshow(blend(sample.image, colorize(sample.semantic, class_colors(len(names)))))
            row[-1].set_title("semantic prediction" if sample.semantic is not None else
                              "no semantic prediction", fontsize=9)
        for ax in row:
            ax.axis("off")
    return png(fig, dpi)


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
    return png(fig, dpi)
