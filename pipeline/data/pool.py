"""Ordered map over worker processes with a progress bar (0 workers = in this process)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(fn: Callable[[T], R], items: Iterable[T], num_workers: int, desc: str) -> list[R]:
    """`[fn(x) for x in items]` in `num_workers` processes, results in input order; fn must be picklable."""
    items = list(items)
    if num_workers <= 0 or len(items) <= 1:
        return [fn(x) for x in tqdm(items, desc=desc, leave=False)]
    chunk = max(1, len(items) // (num_workers * 8))
    with ProcessPoolExecutor(max_workers=num_workers) as pool:
        return list(tqdm(pool.map(fn, items, chunksize=chunk), total=len(items), desc=desc, leave=False))
