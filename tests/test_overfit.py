"""A tiny MaskFormer overfits a few generated images on CPU: the model, matcher and loss learn."""

import time

from pipeline.stages.demo import overfit


def test_tiny_model_overfits_generated_images():
    start = time.perf_counter()
    result = overfit(steps=150, num_images=2, size=64, progress=False)
    assert result["first_loss"] / result["last_loss"] >= 10, result
    assert result["pixel_accuracy"] > 0.95, result
    assert time.perf_counter() - start < 60, result
