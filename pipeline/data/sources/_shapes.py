"""Scene drawing for the synthetic set: textured stuff, clusters of overlapping same-class shapes.

Colour is never a class cue: every instance and every background gets random colours; a class is
told apart only by shape (things) or texture and position (stuff).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

THINGS = ("circle", "square", "triangle", "star")
STUFF = ("sky", "ground")
CLASS_NAMES = THINGS + STUFF
_MIN_VISIBLE = 12  # pixels; an instance occluded below this is dropped (its pixels become void)


@dataclass(frozen=True)
class SceneSpec:
    """Size of one scene: image side, instances per image and object diameter range (pixels)."""

    image_size: int = 128
    min_instances: int = 4
    max_instances: int = 8
    min_object_size: int = 16
    max_object_size: int = 40

    def __post_init__(self) -> None:
        for name, low in (("image_size", 32), ("min_instances", 1), ("max_instances", 1),
                          ("min_object_size", 4), ("max_object_size", 4)):
            if getattr(self, name) < low:
                raise ValueError(f"SceneSpec.{name}={getattr(self, name)}: must be >= {low}")
        if self.max_instances < self.min_instances:
            raise ValueError("max_instances must be >= min_instances")
        if self.max_object_size < self.min_object_size:
            raise ValueError("max_object_size must be >= min_object_size")
        if self.max_object_size > self.image_size:
            raise ValueError("max_object_size must be <= image_size")


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour as floats."""
    return rng.uniform(0, 255, 3)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bilinearly."""
    coarse = Image.fromarray(rng.uniform(0, 255, (cells, cells)).astype(np.uint8))
    return np.asarray(coarse.resize((size, size), Image.BILINEAR), np.float32) / 127.5 - 1.0


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sky (smooth gradient, upper part) over ground (striped, grainy), split by a wavy horizon."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    wave = np.sin(x[0] / size * rng.uniform(2, 8) + rng.uniform(0, 6))
    horizon = size * rng.uniform(0.3, 0.6) + size * 0.06 * wave
    ground = y >= horizon[None, :]
    t = (y / size)[..., None]
    sky = (1 - t) * _colour(rng) + t * _colour(rng) + 20 * _smooth_noise(rng, size, 4)[..., None]
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.3, 0.8)
    stripes = np.sin((x * np.cos(angle) + y * np.sin(angle)) * freq)[..., None]
    soil = _colour(rng) + 35 * stripes + rng.normal(0, 18, (size, size, 1))
    image = np.where(ground[..., None], soil, sky)
    return image, ground


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Outline of a shape of radius r centred at (cx, cy), rotated by `angle`."""
    if kind == "circle":
        n, radii = 32, [r]
    elif kind == "square":
        n, radii = 4, [r]
    elif kind == "triangle":
        n, radii = 3, [r * 1.15]
    else:  # star: alternate outer and inner radius
        n, radii = 10, [r * 1.2, r * 0.5]
    t = angle + 2 * np.pi * np.arange(n) / n
    rad = np.array([radii[i % len(radii)] for i in range(n)])
    return list(zip((cx + rad * np.cos(t)).tolist(), (cy + rad * np.sin(t)).tolist(), strict=True))


def _instances(rng: np.random.Generator, spec: SceneSpec) -> list[tuple[int, list[tuple[float, float]]]]:
    """(class index, polygon) per instance; drawn in clusters of 2-3 overlapping same-class shapes."""
    n = int(rng.integers(spec.min_instances, spec.max_instances + 1))
    out: list[tuple[int, list[tuple[float, float]]]] = []
    while len(out) < n:
        cls = int(rng.integers(len(THINGS)))
        group = min(n - len(out), int(rng.integers(1, 4)))
        r = rng.uniform(spec.min_object_size, spec.max_object_size) / 2
        cx, cy = rng.uniform(min(r, spec.image_size / 2), max(r, spec.image_size - r), 2)
        for _ in range(group):
            out.append((cls, _polygon(THINGS[cls], cx, cy, r, rng.uniform(0, 2 * np.pi))))
            step, direction = rng.uniform(0.7, 1.4) * r, rng.uniform(0, 2 * np.pi)  # overlap the previous one
            cx = float(np.clip(cx + step * np.cos(direction), 0, spec.image_size))
            cy = float(np.clip(cy + step * np.sin(direction), 0, spec.image_size))
            r = float(np.clip(r * rng.uniform(0.8, 1.25), spec.min_object_size / 2, spec.max_object_size / 2))
    return out


def draw_scene(rng: np.random.Generator, spec: SceneSpec) -> tuple[np.ndarray, np.ndarray, list]:
    """One scene: image uint8 [H,W,3], segment map int32 [H,W] and (segment id, class index, 0) list.

    Segment ids: 1 = sky, 2 = ground, 3.. = instances; later instances occlude earlier ones.
    """
    size = spec.image_size
    image, ground = _background(rng, size)
    seg = np.where(ground, 2, 1).astype(np.int32)
    segments = [(1, CLASS_NAMES.index("sky"), 0), (2, CLASS_NAMES.index("ground"), 0)]
    shading = _smooth_noise(rng, size, 6)[..., None]
    for k, (cls, poly) in enumerate(_instances(rng, spec)):
        canvas = Image.new("L", (size, size), 0)
        ImageDraw.Draw(canvas).polygon(poly, fill=1)
        mask = np.asarray(canvas, bool)
        fill = _colour(rng) + 25 * shading + rng.normal(0, 6, (size, size, 1))
        image = np.where(mask[..., None], fill, image)
        seg[mask] = 3 + k
        segments.append((3 + k, cls, 0))
    visible = np.bincount(seg.ravel(), minlength=3 + len(segments))
    kept = []
    for seg_id, cls, crowd in segments:
        if visible[seg_id] >= _MIN_VISIBLE or seg_id <= 2:
            kept.append((seg_id, cls, crowd))
        elif visible[seg_id]:
            seg[seg == seg_id] = 0
    kept = [s for s in kept if visible[s[0]] > 0]
    return np.clip(image, 0, 255).astype(np.uint8), seg, kept
