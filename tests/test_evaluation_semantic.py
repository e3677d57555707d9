"""Semantic metrics on a hand-computed confusion matrix, batch invariance and distributed reduction."""

import math
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from maskformer.evaluation import SemSegEvaluator

# 3 classes; class 2 never occurs in the ground truth; 255 = ignore
GT = torch.tensor([[0, 0, 0, 0, 1], [1, 1, 255, 255, 0]])
PRED = torch.tensor([[0, 0, 0, 1, 1], [1, 2, 0, 2, 255]])
# valid pixels: class 0 -> predicted 0,0,0,1 and 255 (a miss); class 1 -> predicted 1,1,2
# class 0: TP 3, gt 5, predicted 3 -> IoU 3/5, ACC 3/5
# class 1: TP 2, gt 3, predicted 3 -> IoU 2/4, ACC 2/3
# class 2: absent from gt (predicted once) -> NaN, left out of the means
HAND = {
    "mIoU": 55.0,  # (60 + 50) / 2
    "fwIoU": 56.25,  # 5/8 * 60 + 3/8 * 50
    "mACC": 63.333333333333336,  # (60 + 66.67) / 2
    "pACC": 62.5,  # 5 / 8
    "IoU-bg": 60.0,
    "IoU-cat": 50.0,
    "ACC-bg": 60.0,
    "ACC-cat": 66.66666666666667,
}


def test_hand_computed_metrics():
    ev = SemSegEvaluator(3, class_names=["bg", "cat", "dog"])
    ev.update(PRED, GT)
    res = ev.compute()
    for key, value in HAND.items():
        assert res[key] == pytest.approx(value), key
    assert math.isnan(res["IoU-dog"]) and math.isnan(res["ACC-dog"])
    # rows = gt, columns = pred, index 3 = void (ignored gt row / out-of-range prediction column)
    expected = torch.tensor([[3, 1, 0, 1], [0, 2, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0]])
    assert torch.equal(ev.conf_matrix, expected)


def test_batches_equal_all_at_once():
    g = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 5, (6, 17, 13), generator=g)
    gt = torch.randint(0, 5, (6, 17, 13), generator=g)
    gt[torch.rand(gt.shape, generator=g) < 0.1] = 255
    whole = SemSegEvaluator(5)
    whole.update(pred, gt)
    parts = SemSegEvaluator(5)
    parts.update(pred[:2], gt[:2])
    parts.update(pred[2], gt[2])
    parts.update(pred[3:], gt[3:])
    assert torch.equal(whole.conf_matrix, parts.conf_matrix)
    assert whole.compute() == parts.compute()
    whole.reset()
    assert whole.conf_matrix.sum() == 0


def test_rejects_bad_inputs():
    ev = SemSegEvaluator(3)
    with pytest.raises(ValueError, match="outside"):
        ev.update(torch.zeros(2, 2, dtype=torch.long), torch.full((2, 2), 3))
    with pytest.raises(ValueError, match="shape"):
        ev.update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="names"):
        SemSegEvaluator(3, class_names=["a"])


def test_empty_is_nan():
    res = SemSegEvaluator(2).compute()
    assert all(math.isnan(v) for v in res.values())


def _sync_worker(rank: int, port: int) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        ev = SemSegEvaluator(3, class_names=["bg", "cat", "dog"])
        ev.update(PRED[rank], GT[rank])  # each rank sees one row of the hand-computed case
        ev.synchronize()
        res = ev.compute()
        for key, value in HAND.items():
            assert res[key] == pytest.approx(value), key
    finally:
        dist.destroy_process_group()


def test_synchronize_sums_over_ranks():
    SemSegEvaluator(3).synchronize()  # no process group: a no-op
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the children need not re-import torch, which keeps the test fast
    mp.start_processes(_sync_worker, args=(port,), nprocs=2, join=True, start_method="fork")
