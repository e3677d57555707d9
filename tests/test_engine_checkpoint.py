"""Checkpoint round trip under weights_only, atomicity on a failed write, rotation and RNG state."""

import random

import numpy as np
import pytest
import torch
from torch import nn

import maskformer.engine.checkpoint as ckpt_mod
from maskformer.engine import (
    build_lr_scheduler,
    build_optimizer,
    capture_rng_state,
    checkpoint_path,
    find_last,
    list_checkpoints,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def _training_state() -> tuple[nn.Module, dict]:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    opt = build_optimizer(model, lr=1e-2)
    sched = build_lr_scheduler(opt, max_iters=10, warmup_iters=2, warmup_factor=0.1)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    sched.step()
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "scaler": scaler.state_dict(), "rng": [capture_rng_state()]}
    return model, state


def test_round_trip_weights_only(tmp_path):
    model, state = _training_state()
    path = save_checkpoint(tmp_path, 7, state)
    assert path == checkpoint_path(tmp_path, 7) and find_last(tmp_path) == path
    loaded = load_checkpoint(path)  # weights_only=True inside
    assert loaded["iteration"] == 7
    for k, v in model.state_dict().items():
        assert torch.equal(loaded["model"][k], v)
    assert loaded["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    assert loaded["scheduler"]["last_epoch"] == 1 and loaded["scaler"]["scale"] == state["scaler"]["scale"]
    torch.load(path, weights_only=True)  # really loadable as pure data


def test_failed_write_leaves_no_partial_file_and_keeps_older(tmp_path, monkeypatch):
    _, state = _training_state()
    old = save_checkpoint(tmp_path, 2, state)
    before = old.read_bytes()

    def exploding_save(obj, f):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", exploding_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 4, state)
    assert sorted(p.name for p in tmp_path.iterdir()) == [old.name]  # no temp file, no model_0000004
    assert old.read_bytes() == before and find_last(tmp_path) == old


def test_keep_last_and_temp_files_ignored(tmp_path):
    state = {"x": torch.zeros(1)}
    for it in (1, 2, 3, 10):
        save_checkpoint(tmp_path, it, state, keep_last=2)
    (tmp_path / ".model_0000099.pth.abc.tmp").write_bytes(b"junk")  # a save killed mid-write
    assert [it for it, _ in list_checkpoints(tmp_path)] == [3, 10]
    assert find_last(tmp_path) == checkpoint_path(tmp_path, 10)
    assert find_last(tmp_path / "missing") is None


def test_rng_state_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    random.gauss(0, 1)
    save_checkpoint(tmp_path, 1, {"rng": capture_rng_state()})
    expected = (random.random(), random.gauss(0, 1), np.random.standard_normal(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng_state(load_checkpoint(find_last(tmp_path))["rng"])
    got = (random.random(), random.gauss(0, 1), np.random.standard_normal(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])
