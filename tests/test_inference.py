"""Semantic, panoptic and instance inference on crafted predictions with known answers."""

import torch

from maskformer import (
    instance_inference,
    panoptic_inference,
    resize_to_image,
    semantic_inference,
    semantic_maps,
)

BIG = 20.0  # a logit whose softmax / sigmoid is 1 for all practical purposes


def test_semantic_inference_equals_the_formula():
    gen = torch.Generator().manual_seed(0)
    logits, masks = torch.randn(5, 4, generator=gen), torch.randn(5, 3, 2, generator=gen)
    result = semantic_inference(logits, masks)
    prob = logits.softmax(-1)
    for c in range(3):
        for y in range(3):
            for x in range(2):
                expected = sum(prob[q, c] * torch.sigmoid(masks[q, y, x]) for q in range(5))
                assert torch.isclose(result[c, y, x], expected, atol=1e-6)


def crafted():
    """4 queries on a 4x4 image, classes: 0 thing, 1 stuff, (2 = no object).

    q0: thing, left half; q1: stuff, right half top; q2: stuff (same class), right half bottom;
    q3: no object everywhere.
    """
    logits = torch.full((4, 3), -BIG)
    logits[0, 0] = logits[1, 1] = logits[2, 1] = logits[3, 2] = BIG
    masks = torch.full((4, 4, 4), -BIG)
    masks[0, :, :2] = BIG
    masks[1, :2, 2:] = BIG
    masks[2, 2:, 2:] = BIG
    masks[3] = BIG
    return logits, masks


def test_panoptic_inference_merges_stuff_and_drops_no_object():
    logits, masks = crafted()
    panoptic, segments = panoptic_inference(logits, masks, thing_ids={0})
    assert [(s["id"], s["category_id"], s["isthing"], s["area"]) for s in segments] == [
        (1, 0, True, 8),
        (2, 1, False, 8),
    ]
    expected = torch.tensor([[1, 1, 2, 2]] * 4, dtype=torch.int32)
    assert torch.equal(panoptic, expected)


def test_panoptic_inference_thresholds():
    logits, masks = crafted()
    logits[0] = torch.tensor([1.0, 0.0, 0.0])  # q0 unsure: max prob 0.58 < 0.8 -> dropped
    panoptic, segments = panoptic_inference(logits, masks, thing_ids={0})
    # as the official code, every pixel goes to the best kept query: the stuff class takes the whole image
    assert [(s["category_id"], s["area"]) for s in segments] == [(1, 16)]
    assert (panoptic == 1).all()
    # an extra confident thing query whose mask is mostly covered by q1 fails the overlap threshold
    logits, masks = crafted()
    logits = torch.cat([logits, torch.tensor([[BIG, -BIG, -BIG]])])
    masks = torch.cat([masks, torch.full((1, 4, 4), -BIG)])
    masks[4, :2, 1:] = 0.5  # 6 pixels of probability 0.62; q0 (p=1) wins 2 of them, q1 wins 4
    _, segments = panoptic_inference(logits, masks, thing_ids={0})
    assert len(segments) == 2


def test_instance_inference_scores_and_thing_filter():
    logits, masks = crafted()
    result = instance_inference(logits, masks, topk=3)
    assert len(result["scores"]) == 3
    assert torch.allclose(result["scores"], torch.ones(3), atol=1e-6)  # prob 1 x mean mask prob 1
    things = instance_inference(logits, masks, topk=3, thing_ids={0})
    assert things["labels"].tolist() == [0]
    assert torch.equal(things["masks"][0], masks[0] > 0)
    # a soft mask lowers the score: class prob 1, mask probs 0.5 and sigmoid(2) inside the mask
    logits = torch.tensor([[BIG, -BIG]])
    soft = torch.tensor([[[2.0, 2.0], [1e-3, -5.0]]])
    result = instance_inference(logits, soft, topk=1)
    expected = (2 * torch.sigmoid(torch.tensor(2.0)) + torch.sigmoid(torch.tensor(1e-3))) / 3
    assert torch.isclose(result["scores"][0], expected, atol=1e-5)


def test_resize_crops_padding_before_resizing():
    masks = torch.zeros(1, 2, 4)
    masks[0, :, :3] = 1.0  # the image is the left half (all 1); the padding on the right holds the zeros
    out = resize_to_image(masks, padded_size=(8, 16), image_size=(8, 8), output_size=(4, 4))
    assert out.shape == (1, 4, 4)
    assert torch.allclose(out, torch.ones(1, 4, 4))


def test_semantic_maps_for_both_architectures():
    logits, masks = crafted()
    maps = semantic_maps({"pred_logits": logits[None], "pred_masks": masks[None]}, (4, 4), [(4, 4)], [(8, 8)])
    assert maps[0].shape == (2, 8, 8)
    assert maps[0].argmax(0)[:, :4].eq(0).all() and maps[0].argmax(0)[:, 4:].eq(1).all()
    per_pixel = torch.zeros(1, 3, 4, 4)
    per_pixel[0, 2] = BIG
    maps = semantic_maps({"pred_sem_seg": per_pixel}, (4, 4), [(4, 4)])
    assert maps[0].argmax(0).eq(2).all()


def test_semantic_scores_follow_the_official_order():
    """Official: mask logits upsampled to the padded input, the einsum there, then the scores cropped and
    resized; resizing the mask logits to the output first gives other scores when the output is resized."""
    from torch.nn import functional as F

    from maskformer.inference import semantic_scores

    torch.manual_seed(0)
    logits, masks = torch.randn(3, 5), 4 * torch.randn(3, 4, 6)  # 3 queries, 4 classes + no-object
    padded, image, out = (16, 24), (12, 20), (7, 9)
    up = F.interpolate(masks[None], size=padded, mode="bilinear", align_corners=False)[0]
    expected = torch.einsum("qc,qhw->chw", logits.softmax(-1)[:, :-1], up.sigmoid())
    expected = F.interpolate(expected[None, :, :12, :20], size=out, mode="bilinear", align_corners=False)[0]
    got = semantic_scores(logits, masks, padded, image, out)
    assert torch.allclose(got, expected, atol=1e-6)
    masks_first = semantic_inference(logits, resize_to_image(masks, padded, image, out))
    assert not torch.allclose(got, masks_first, atol=1e-3)
