"""InferenceConfig, the test-time settings: no torch, so the params file is validated without loading it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InferenceConfig:
    """Test-time sizes; scales/flip > the defaults give the paper's multi-scale + flip (m.s.) numbers."""

    test_size: int = 512  # shortest side
    max_size: int = 2048  # longest side at most
    size_divisibility: int = 32  # pad so every backbone stride divides the input
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    component_min_area: int = 16  # per-pixel baseline: smallest connected region taken as an instance
    amp: bool = True  # bf16 autocast on CUDA (fast); false: fp32 as the official code

    def __post_init__(self) -> None:
        lows = (("test_size", 32), ("max_size", 32), ("size_divisibility", 1), ("component_min_area", 1))
        for name, low in lows:
            if getattr(self, name) < low:
                raise ValueError(f"InferenceConfig.{name}={getattr(self, name)}: must be >= {low}")
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"InferenceConfig.scales={self.scales}: must be one or more positive factors")
