"""FLOPs of one call (torch.utils.flop_counter) and model FLOPs utilisation against known peak figures."""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.flop_counter import FlopCounterMode

# dense bf16 tensor-core peaks in TFLOP/s (vendor data sheets, SXM parts); MFU is quoted against these
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10": 125.0,
    "L4": 121.0,
}


class _TotalsOnly:
    """Stands in for FlopCounterMode's per-module tracker, whose hooks fail on transformers' model."""

    parents = frozenset({"Global"})

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def count_flops(step: Callable[[], None]) -> int:
    """FLOPs of one call of `step` (forward and backward matmuls/convolutions, as torch counts them)."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _TotalsOnly()  # totals are all we report
    with counter:
        step()
    return counter.get_total_flops()


def peak_tflops(device_name: str) -> float | None:
    """The bf16 dense peak of a known GPU (matched by name), None for CPUs and unknown cards."""
    for card, tflops in PEAK_BF16_TFLOPS.items():
        if card in device_name:
            return tflops
    return None


def flops_fields(flops: int, seconds: float, device_name: str) -> dict[str, float | int | None]:
    """Record fields: flops per call, achieved TFLOP/s and MFU (None when the device's peak is unknown)."""
    achieved = flops / seconds / 1e12
    peak = peak_tflops(device_name)
    return {
        "flops": flops,
        "achieved_tflops": achieved,
        "peak_tflops": peak,
        "mfu": achieved / peak if peak else None,
    }
