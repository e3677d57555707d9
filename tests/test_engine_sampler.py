"""The deterministic data stream: permutation per epoch, resume offsets, rank shards, seeded loading."""

import itertools
import random

import torch
from torch.utils.data import Dataset

from maskformer.engine import InfiniteShardedSampler, SeededDataset


def _take(sampler: InfiniteShardedSampler, n: int) -> list[tuple[int, int]]:
    return list(itertools.islice(iter(sampler), n))


def test_each_epoch_is_a_permutation_and_epochs_differ():
    stream = [i for i, _ in _take(InfiniteShardedSampler(7, seed=3), 21)]
    epochs = [stream[k : k + 7] for k in (0, 7, 14)]
    assert all(sorted(e) == list(range(7)) for e in epochs)
    assert len({tuple(e) for e in epochs}) == 3
    assert stream == [i for i, _ in _take(InfiniteShardedSampler(7, seed=3), 21)]
    assert stream != [i for i, _ in _take(InfiniteShardedSampler(7, seed=4), 21)]


def test_resume_offset_continues_the_stream():
    full = _take(InfiniteShardedSampler(5, seed=1), 23)
    for start in (0, 3, 5, 12):
        assert _take(InfiniteShardedSampler(5, seed=1, start=start), 23 - start) == full[start:]


def test_rank_shards_interleave_the_global_stream():
    full = _take(InfiniteShardedSampler(6, seed=2), 16)
    ranks = [_take(InfiniteShardedSampler(6, seed=2, rank=r, world_size=2), 8) for r in (0, 1)]
    assert ranks[0] == full[0::2] and ranks[1] == full[1::2]
    resumed = _take(InfiniteShardedSampler(6, seed=2, rank=1, world_size=2, start=3), 5)
    assert resumed == full[7::2]


class _Noisy(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[float, float]:
        return torch.rand(()).item(), random.random()


def test_seeded_dataset_reproducible_and_leaves_global_rng_alone():
    data = SeededDataset(_Noisy(), seed=5)
    torch.manual_seed(0)
    expected_next = torch.rand(())
    torch.manual_seed(0)
    first = data[(1, 10)]
    assert data[(1, 10)] == first and data[(1, 11)] != first
    assert torch.equal(torch.rand(()), expected_next)  # loading did not consume the global RNG
