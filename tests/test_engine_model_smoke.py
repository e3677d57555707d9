"""The engine trains the real MaskFormer and per-pixel baseline (tiny resnet18) and resumes them exactly."""

import os
import signal

import pytest
import torch
from torch.utils.data import Dataset

from maskformer import build_model, tiny_config
from maskformer.engine import TrainConfig, TrainingInterruptedError, train


class TwoRegions(Dataset):
    """64x64 random images split into two labelled halves."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict]:
        masks = torch.zeros(2, 64, 64, dtype=torch.bool)
        masks[0, :, :32] = True
        masks[1] = ~masks[0]
        image = torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(i))
        return image, {"labels": torch.tensor([i % 3, (i + 1) % 3]), "masks": masks}


def collate(batch: list) -> tuple[torch.Tensor, list[dict]]:
    images, targets = zip(*batch, strict=True)
    return torch.stack(images), list(targets)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train(tmp_path, architecture: str, callback=None) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = TrainConfig(device="cpu", max_iters=4, batch_size=2, num_workers=0, checkpoint_dir=str(tmp_path),
                      checkpoint_period=2, log_period=1)
    model = build_model(tiny_config(num_classes=3, architecture=architecture))
    return train(model, TwoRegions(), cfg, collate, callback=callback)


@pytest.mark.parametrize("architecture", ["maskformer", "per_pixel_baseline"])
def test_real_model_trains_and_resumes_exactly(tmp_path, architecture):
    calls = []
    reference = _train(tmp_path / "ref", architecture, lambda s, m: calls.append(m)).state_dict()
    assert len(calls) == 4 and all(torch.isfinite(torch.tensor(m["loss"])) for m in calls)

    def stop_at_1(step, metrics):
        if step == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterruptedError):
        _train(tmp_path / "run", architecture, stop_at_1)
    resumed = _train(tmp_path / "run", architecture).state_dict()
    for k, v in reference.items():
        assert torch.equal(resumed[k], v), k
