"""Infinite deterministic resumable data stream: the batch of iteration i depends only on (seed, i, rank)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class InfiniteShardedSampler(Sampler):
    """Yields (index, global position) forever: this rank's shard of a stream of per-epoch permutations.

    The global stream concatenates randperm(n) for epochs 0, 1, ...; each permutation is derived from
    (seed, epoch) alone. Rank r takes global positions r, r + W, r + 2W, ... (W = world size), so one
    iteration of all ranks with per-rank batch b consumes exactly the W*b samples that a single process
    with batch W*b would. `start` skips this rank's first `start` samples arithmetically, which makes a
    resume at iteration i (start = i * b) reproduce the uninterrupted batches. The sample seed is the
    global position, so random augmentations are reproducible too (see SeededDataset).
    """

    def __init__(self, size: int, seed: int = 0, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        if size < 1:
            raise ValueError("InfiniteShardedSampler: the dataset is empty")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        self.size, self.seed, self.rank, self.world_size, self.start = size, seed, rank, world_size, start

    def permutation(self, epoch: int) -> torch.Tensor:
        """The shuffled order of epoch `epoch` (same on every rank and in every run)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=generator)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start * self.world_size + self.rank
        epoch, perm = -1, []
        while True:
            if position // self.size != epoch:
                epoch = position // self.size
                perm = self.permutation(epoch).tolist()
            yield perm[position % self.size], position
            position += self.world_size


class SeededDataset(Dataset):
    """Wraps a map-style dataset: item (index, sample_seed) is loaded under RNGs seeded from the sample seed.

    The global RNG states are saved and restored around each item, so loading never perturbs the training
    process's RNG, and augmentations do not depend on num_workers, worker assignment or resumption.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, position = key
        sample_seed = (self.seed * 1_000_003 + position) % 2**63
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(sample_seed)  # CPU only: never touch the CUDA RNG
                random.seed(sample_seed)
                np.random.seed(sample_seed % 2**32)
                return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
