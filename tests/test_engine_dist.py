"""Rank helpers outside a process group fall back to the launcher's env (as after train() under torchrun)."""

import torch.distributed as dist

from maskformer.engine import get_rank, get_world_size, init_distributed, is_distributed, is_main_process


def test_single_process_defaults(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert (get_rank(), get_world_size(), is_main_process(), is_distributed()) == (0, 1, True, False)
    assert init_distributed("cpu") is False and not dist.is_initialized()  # not under torchrun: no group


def test_launcher_env_without_group(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not dist.is_initialized()
    assert (get_rank(), get_world_size(), is_main_process(), is_distributed()) == (1, 2, False, False)
