"""Command `demo`: overfit a tiny MaskFormer on a few generated shape images (no data needed)."""

from __future__ import annotations

import argparse
import time

import torch
from tqdm import tqdm

from maskformer import build_model, semantic_maps, tiny_config
from maskformer.criterion import segments_to_semantic
from maskformer.engine import train_step


def make_shapes(num_images: int, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, list[dict]]:
    """Images with a square (class 1) and a disc (class 2) on background (class 0), as semantic targets."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images, targets = [], []
    for _ in range(num_images):
        sem = torch.zeros(size, size, dtype=torch.int64)
        x0, y0 = torch.randint(2, size // 2 - 4, (2,), generator=gen).tolist()
        side = int(torch.randint(size // 5, size // 3, (1,), generator=gen))
        sem[y0 : y0 + side, x0 : x0 + side] = 1
        cx, cy = torch.randint(size // 2 + 6, size - 10, (2,), generator=gen).tolist()
        radius = int(torch.randint(size // 10, size // 6, (1,), generator=gen))
        sem[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 2
        colours = torch.rand(3, 3, generator=gen)  # per-image colours: colour is no class cue
        image = colours[:, sem] + 0.1 * torch.randn(3, size, size, generator=gen)
        labels = sem.unique()
        images.append((image - 0.5) / 0.25)
        targets.append({"labels": labels, "masks": sem[None] == labels[:, None, None]})
    return torch.stack(images), targets


def overfit(
    steps: int = 150,
    num_images: int = 2,
    size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, float]:
    """Train the tiny model on the same few images; returns first/last loss and pixel accuracy."""
    torch.manual_seed(seed)
    images, targets = make_shapes(num_images, size, seed)
    model = build_model(tiny_config(num_classes=3))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc="overfit", disable=not progress):
        total, _ = train_step(model, model.criterion, optimizer, images, targets)
        losses.append(total.item())
    return {
        "first_loss": losses[0],
        "last_loss": min(losses[-5:]),
        "pixel_accuracy": pixel_accuracy(model, images, targets),
        "seconds": time.perf_counter() - start,
    }


def pixel_accuracy(model: torch.nn.Module, images: torch.Tensor, targets: list[dict]) -> float:
    """Fraction of pixels whose predicted semantic class is right (the model is left in eval mode)."""
    size = tuple(images.shape[-2:])
    model.eval()
    with torch.no_grad():
        maps = semantic_maps(model(images), size, [size] * len(images))
    predicted = torch.stack([m.argmax(0) for m in maps])
    truth = torch.stack([segments_to_semantic(t) for t in targets])
    return (predicted == truth).float().mean().item()


def main(params_path: str, argv: list[str]) -> int:
    """CLI: `python -m pipeline demo [--steps N]`."""
    parser = argparse.ArgumentParser(prog="python -m pipeline demo")
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args(argv)
    result = overfit(steps=args.steps)
    print(" ".join(f"{k}={v:.4g}" for k, v in result.items()))
    return 0
