"""MaskFormer end to end: output shapes, gradients everywhere, clear errors on bad input, pure imports."""

import subprocess
import sys

import pytest
import torch

from maskformer import MaskFormerConfig, build_model, tiny_config


def config(**changes) -> MaskFormerConfig:
    """The library's tiny model with the 4 classes and 6 queries that the shapes below are written for."""
    return tiny_config(num_classes=4, num_queries=6, **changes)


def targets_for(batch: int, size: int, num_classes: int = 4) -> list[dict]:
    gen = torch.Generator().manual_seed(1)
    return [
        {
            "labels": torch.randint(0, num_classes, (2,), generator=gen),
            "masks": torch.rand(2, size, size, generator=gen) > 0.5,
        }
        for _ in range(batch)
    ]


@pytest.mark.parametrize("pixel_decoder", ["fpn", "transformer_encoder"])
def test_output_shapes_and_deep_supervision(pixel_decoder):
    model = build_model(config(pixel_decoder=pixel_decoder, dec_layers=3))
    out = model(torch.randn(2, 3, 64, 96))
    assert tuple(out["pred_logits"].shape) == (2, 6, 5)
    assert tuple(out["pred_masks"].shape) == (2, 6, 16, 24)
    assert len(out["aux_outputs"]) == 2
    assert all(a["pred_masks"].shape == out["pred_masks"].shape for a in out["aux_outputs"])
    whole = [{"labels": torch.tensor([1]), "masks": torch.ones(1, 64, 96, dtype=torch.bool)}] * 2
    losses = model.criterion(out, whole)
    assert set(losses) == {f"{k}{s}" for k in ("loss_ce", "loss_mask", "loss_dice") for s in ("", "_0", "_1")}
    assert set(losses) <= set(model.criterion.weight_dict)


def test_masks_are_the_einsum_of_mask_embeddings_and_pixel_embeddings():
    model = build_model(config()).eval()
    images = torch.randn(1, 3, 64, 64)
    captured = {}
    model.pixel_decoder.register_forward_hook(lambda m, i, o: captured.update(pixel=o[0]))
    with torch.no_grad():
        out = model(images)
        hs = model.predictor.transformer_decoder(
            torch.zeros(1, *model.predictor.query_embed.weight.shape),
            model.predictor.input_proj(model.backbone(images)["res5"]).flatten(2).transpose(1, 2),
            pos=model.predictor.pe_layer(model.backbone(images)["res5"]).flatten(2).transpose(1, 2),
            query_pos=model.predictor.query_embed.weight[None],
        )[-1]
        expected = torch.einsum("qc,chw->qhw", model.predictor.mask_embed(hs)[0], captured["pixel"][0])
    torch.testing.assert_close(out["pred_masks"][0], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        out["pred_logits"][0], model.predictor.class_embed(hs)[0], rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize(
    "architecture,pixel_decoder",
    [("maskformer", "fpn"), ("maskformer", "transformer_encoder"), ("per_pixel_baseline", "fpn")],
)
def test_gradients_reach_every_trainable_parameter(architecture, pixel_decoder):
    model = build_model(config(architecture=architecture, pixel_decoder=pixel_decoder, dropout=0.0))
    out = model(torch.randn(2, 3, 64, 64))
    losses = model.criterion(out, targets_for(2, 64))
    total = sum(losses[k] * model.criterion.weight_dict[k] for k in losses)
    total.backward()
    missing = {
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
    }
    # As in DETR, the first decoder layer's self-attention sees zero input queries: its values are all
    # equal (the bias), so its weight matrices get no gradient, and norm1 sees the zero-initialised bias.
    first = "predictor.transformer_decoder.layers.0."
    degenerate = {
        first + "self_attn.in_proj_weight",
        first + "self_attn.out_proj.weight",
        first + "norm1.weight",
    }
    assert missing == (degenerate if architecture == "maskformer" else set())


def test_per_pixel_baseline_outputs_class_logits():
    model = build_model(config(architecture="per_pixel_baseline"))
    out = model(torch.randn(1, 3, 64, 64))
    assert tuple(out["pred_sem_seg"].shape) == (1, 4, 16, 16)
    # a uniform prediction's per-pixel CE is ln K over the labelled pixels
    out = {"pred_sem_seg": torch.zeros(1, 4, 16, 16)}
    target = [{"labels": torch.tensor([2]), "masks": torch.ones(1, 64, 64, dtype=torch.bool)}]
    assert model.criterion(out, target)["loss_sem_seg"].item() == pytest.approx(
        torch.log(torch.tensor(4.0)).item()
    )


def test_per_pixel_classifier_init_is_c2_msra_fill():
    """He normal over fan-out (out channels x 1 x 1 = K), zero bias: std sqrt(2 / K), as the official head."""
    torch.manual_seed(0)
    head = build_model(config(architecture="per_pixel_baseline", mask_dim=4096)).predictor  # K = 4
    assert torch.equal(head.bias, torch.zeros(4))
    assert head.weight.std().item() == pytest.approx((2 / 4) ** 0.5, rel=0.03)
    assert head.weight.mean().abs().item() < 0.01


@pytest.mark.parametrize(
    "images,message",
    [
        (torch.randn(3, 64, 64), "rank 4"),
        (torch.randn(1, 1, 64, 64), "3 channels"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "float"),
    ],
)
def test_bad_images_are_clear_errors(images, message):
    model = build_model(config())
    with pytest.raises(ValueError, match=message):
        model(images)


def test_bad_targets_are_clear_errors():
    model = build_model(config())
    out = model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="class id 4 out of range"):
        model.criterion(out, [{"labels": torch.tensor([4]), "masks": torch.ones(1, 64, 64) > 0}])
    with pytest.raises(ValueError, match="class id -1 out of range"):
        model.criterion(out, [{"labels": torch.tensor([-1]), "masks": torch.ones(1, 64, 64) > 0}])
    with pytest.raises(ValueError, match="input image's size"):
        model.criterion(out, [{"labels": torch.tensor([1]), "masks": torch.ones(1, 32, 32) > 0}])
    with pytest.raises(ValueError, match="labels .N. and masks"):
        model.criterion(out, [{"labels": torch.tensor([1, 2]), "masks": torch.ones(1, 64, 64) > 0}])


def test_library_imports_no_pipeline_tools():
    code = (
        "import sys, maskformer, maskformer.evaluation; "
        "bad = [m for m in ('prefect', 'mlflow', 'dvc', 'pipeline', 'pandas', 'pycocotools', 'yaml') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_progress_bars_are_optional_in_the_library():
    code = ("import sys; sys.modules['tqdm'] = None; sys.modules['tqdm.auto'] = None\n"
            "from maskformer.engine.runtime import progress_bar\n"
            "bar = progress_bar(range(3), desc='x'); bar.update(); bar.set_postfix(loss=1); bar.close()\n"
            "assert list(bar) == [0, 1, 2] and type(bar).__name__ == '_NoBar'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("feature", "tokens"), [("res5", 2 * 2), ("res4", 4 * 4), ("res3", 8 * 8),
                                                  ("pixel_embedding", 16 * 16)])
def test_transformer_in_feature_picks_the_map_the_decoder_attends_to(feature, tokens):
    """The official TRANSFORMER_IN_FEATURE: the decoder's cross-attention sees one token per position of
    the named map (64x64 input: res5 2x2 ... pixel embedding 16x16), and training still reaches it."""
    model = build_model(config(transformer_in_feature=feature))
    seen = []
    cross = model.predictor.transformer_decoder.layers[0].cross_attn
    cross.register_forward_hook(lambda _m, args, _out: seen.append(args[1].shape[1]))
    out = model(torch.randn(2, 3, 64, 64))
    assert seen == [tokens]
    assert tuple(out["pred_masks"].shape) == (2, 6, 16, 16)
    model.criterion(out, targets_for(2, 64)).get("loss_mask").backward()
    assert model.predictor.query_embed.weight.grad.abs().sum() > 0


def test_unknown_transformer_in_feature_is_named():
    with pytest.raises(ValueError, match="transformer_in_feature='res6'"):
        config(transformer_in_feature="res6")
