"""Test-time inference: resize + pad, mapping back to the original size, flip and multi-scale TTA."""

import torch
from torch import nn
from torch.nn import functional as F

from maskformer.evaluation.predict import InferenceConfig, Predictor, resize_and_pad


class PixelEcho(nn.Module):
    """A stand-in per-pixel model: class c's logit at stride 4 is the image's channel c (flip-equivariant)."""

    def forward(self, images):
        return {"pred_sem_seg": 10 * F.avg_pool2d(images, 4)}


def test_resize_and_pad_sizes():
    batch, size = resize_and_pad(torch.ones(3, 100, 50), short=64, max_size=2048, divisibility=32)
    assert size == (128, 64) and tuple(batch.shape) == (1, 3, 128, 64)
    batch, size = resize_and_pad(torch.ones(3, 40, 70), short=64, max_size=80, divisibility=32)
    assert size == (46, 80) and tuple(batch.shape) == (1, 3, 64, 96)  # longest side capped at 80
    assert batch[..., 46:, :].abs().sum() == 0 and batch[..., :, 80:].abs().sum() == 0


def test_predictions_come_back_at_the_original_size_and_tta_agrees():
    image = torch.zeros(3, 60, 90)
    image[0, :, :30] = 1.0  # left third: class 0
    image[1, :, 30:60] = 1.0  # middle: class 1
    image[2, :, 60:] = 1.0  # right: class 2
    expected = torch.tensor([0] * 30 + [1] * 30 + [2] * 30).expand(60, 90)
    for cfg in (
        InferenceConfig(test_size=64),
        InferenceConfig(test_size=64, scales=(0.75, 1.0, 1.5), flip=True),
    ):
        scores = Predictor(PixelEcho(), cfg).semantic(image)
        assert tuple(scores.shape) == (3, 60, 90)
        agree = (scores.argmax(0) == expected).float().mean()
        assert agree > 0.95, (cfg, agree)  # only the blurred borders between the bands may differ


def test_flip_is_undone():
    image = torch.zeros(3, 64, 64)
    image[0, :, :16] = 1.0  # class 0 on the left only
    image[1, :, 16:] = 1.0
    plain = Predictor(PixelEcho(), InferenceConfig(test_size=64)).semantic(image)
    flipped = Predictor(PixelEcho(), InferenceConfig(test_size=64, flip=True)).semantic(image)
    torch.testing.assert_close(plain, flipped, atol=1e-5, rtol=1e-5)


def test_bf16_and_fp32_inference_agree_on_a_trained_model():
    """evaluate.amp: bf16 autocast (the fast default on CUDA) and fp32 (the official code) give the same
    mIoU within 0.5 on a trained tiny model (here on the CPU's bf16 autocast)."""
    from maskformer import build_model, tiny_config
    from maskformer.engine.step import train_step
    from maskformer.evaluation import SemSegEvaluator
    from pipeline.commands.demo import make_shapes, segments_to_semantic

    torch.manual_seed(0)
    images, targets = make_shapes(4, 64, seed=0)
    model = build_model(tiny_config(num_classes=3))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(120):
        train_step(model, model.criterion, optimizer, images, targets)
    results = {}
    for amp in (False, True):
        evaluator = SemSegEvaluator(3)
        predictor = Predictor(model, InferenceConfig(test_size=64), amp=amp)
        for image, target in zip(images, targets, strict=True):
            evaluator.update(predictor.semantic(image).float().argmax(0), segments_to_semantic(target))
        results[amp] = evaluator.compute()["mIoU"]
    assert results[False] > 50, results  # it learned the shapes
    assert abs(results[True] - results[False]) < 0.5, results
