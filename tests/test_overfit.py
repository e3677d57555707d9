"""A tiny MaskFormer overfits a few generated images on CPU: the model, matcher and loss learn."""

from pipeline.commands.demo import overfit


def test_tiny_model_overfits_generated_images():
    result = overfit(steps=150, num_images=2, size=64, progress=False)
    # background is 87 % of the pixels: 97 % needs both shapes; seen over 8 seeds and perturbed inits:
    # loss / 6 to / 114 and 98.7-99.9 %; a frozen-BN tiny model varied from / 3 and 87 % to / 16 and 99.7 %
    assert result["first_loss"] / result["last_loss"] >= 5, result
    assert result["pixel_accuracy"] > 0.97, result
