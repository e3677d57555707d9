"""CPU speed-ups of the training step change the speed, not the losses or the gradients."""

import pytest
import torch

from maskformer import build_model, tiny_config
from maskformer.engine import TrainConfig, build_optimizer, train_step
from maskformer.engine import trainer as train_module


def batch():
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 64, 64, generator=gen)
    targets = [{"labels": torch.tensor([0, 2]), "masks": torch.rand(2, 64, 64, generator=gen) > 0.5}
               for _ in range(2)]
    return images, targets


def losses_and_grads(fmt: torch.memory_format, amp_dtype: torch.dtype | None):
    """One train step of the tiny model from a fixed init: its loss terms and every gradient."""
    torch.manual_seed(0)
    model = build_model(tiny_config(num_classes=3, num_queries=6)).to(memory_format=fmt).train()
    optimizer = build_optimizer(model, lr=0.0)  # lr 0: the step leaves the weights, we read the grads
    images, targets = batch()
    _, losses = train_step(model, model.criterion, optimizer, images.contiguous(memory_format=fmt),
                           targets, amp_dtype)
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return {k: v.item() for k, v in losses.items()}, grads


def test_channels_last_on_cpu_gives_the_same_losses_and_gradients():
    base_losses, base_grads = losses_and_grads(torch.contiguous_format, None)
    losses, grads = losses_and_grads(torch.channels_last, None)
    assert losses == pytest.approx(base_losses, rel=1e-4, abs=1e-6)
    assert (grads - base_grads).norm() / base_grads.norm() < 1e-4  # measured 4e-6: summation order only


@pytest.mark.skipif(not train_module.native_cpu_bf16(), reason="this CPU has no native bf16")
def test_cpu_bf16_autocast_stays_within_bf16_precision_of_fp32():
    """bf16 keeps 8 bits of mantissa: losses agree to ~1%, gradients point the same way (cosine 0.97
    measured: not the same numbers, which is why amp_cpu is opt-in; its learning run is in benchmarks/)."""
    base_losses, base_grads = losses_and_grads(torch.contiguous_format, None)
    losses, grads = losses_and_grads(torch.channels_last, torch.bfloat16)
    assert losses == pytest.approx(base_losses, rel=3e-2, abs=1e-3)
    cosine = torch.nn.functional.cosine_similarity(grads, base_grads, dim=0)
    assert cosine > 0.95


def test_channels_last_is_the_default_on_the_cpu_too():
    cpu = torch.device("cpu")
    assert train_module._memory_format(TrainConfig(), cpu) == torch.channels_last
    assert train_module._memory_format(TrainConfig(channels_last=False), cpu) == torch.contiguous_format


class _Augmented(torch.utils.data.Dataset):
    """Stands in for a randomly augmented sample: its values come from the global torch RNG."""

    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.full((2,), float(index)) + torch.rand(2)


def test_batches_do_not_depend_on_the_number_of_loader_workers():
    """No loader workers (the default on 2 cores, where workers preempt the torch threads) is a speed-up
    with the same batches, so the same losses: every sample is drawn under its own seed."""
    def batches(workers: int) -> list[torch.Tensor]:
        cfg = TrainConfig(device="cpu", batch_size=3, num_workers=workers, seed=4)
        loader = train_module._loader(_Augmented(), cfg, torch.utils.data.default_collate, 2,
                                      torch.device("cpu"))
        stream = iter(loader)
        return [next(stream) for _ in range(4)]

    in_process, two_workers = batches(0), batches(2)
    assert all(torch.equal(a, b) for a, b in zip(in_process, two_workers, strict=True))
    assert not torch.equal(in_process[0], in_process[1])


def test_amp_cpu_is_what_the_engine_runs_and_needs_native_bf16(monkeypatch):
    cpu = torch.device("cpu")
    assert train_module.autocast_dtype(TrainConfig(amp_cpu=False), cpu) is None
    assert train_module.autocast_dtype(TrainConfig(amp=True), cpu) is None  # `amp` is for CUDA
    monkeypatch.setattr(train_module, "native_cpu_bf16", lambda: True)
    assert train_module.autocast_dtype(TrainConfig(amp_cpu=True), cpu) is torch.bfloat16
    assert train_module._memory_format(TrainConfig(amp_cpu=True), cpu) == torch.channels_last
    monkeypatch.setattr(train_module, "native_cpu_bf16", lambda: False)
    with pytest.raises(RuntimeError, match="no native bf16"):
        train_module.autocast_dtype(TrainConfig(amp_cpu=True), cpu)
    with pytest.raises(ValueError, match="amp_cpu needs amp_dtype='bfloat16'"):
        TrainConfig(amp_cpu=True, amp_dtype="float16")


def weights_after_steps(fused: bool, steps: int = 3) -> torch.Tensor:
    """The tiny model's weights after a few clipped AdamW steps from a fixed init."""
    torch.manual_seed(0)
    model = build_model(tiny_config(num_classes=3, num_queries=6)).train()
    optimizer = build_optimizer(model, lr=1e-3, backbone_multiplier=1.0, fused=fused)
    images, targets = batch()
    for _ in range(steps):
        train_step(model, model.criterion, optimizer, images, targets, max_norm=0.01)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_fused_adamw_on_cpu_takes_the_steps_of_the_per_tensor_loop():
    """The default optimizer on the CPU is the fused kernel (4-9x faster on the default model): the same
    update up to float rounding, so the same run."""
    assert build_optimizer(build_model(tiny_config(num_classes=3))).defaults["fused"]
    start = weights_after_steps(fused=False, steps=0)
    loop, fused = weights_after_steps(fused=False), weights_after_steps(fused=True)
    assert (loop - start).abs().max() > 1e-4  # the steps moved the weights
    assert (fused - loop).abs().max() < 1e-6
