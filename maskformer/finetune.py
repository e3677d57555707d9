"""Start a model from another's weights (a released checkpoint): same-named, same-shaped tensors are
copied; the class head of another class count is left as initialised, and named."""

from __future__ import annotations

import re

from torch import Tensor, nn

# the tensors whose shape follows the class count: MaskFormer's class head, the per-pixel classifier,
# the criterion's no-object weights (a buffer the criterion rebuilds anyway)
CLASS_SHAPED = re.compile(
    r"^(predictor\.class_embed\.(weight|bias)|predictor\.(weight|bias)|criterion\.empty_weight)$"
)


def load_pretrained(model: nn.Module, state: dict[str, Tensor]) -> list[str]:
    """Copy `state` into `model` and return the names left re-initialised (class-shaped, another class
    count). ValueError naming the tensors when the two are different architectures (names missing or
    unexpected, or another shape outside the class head)."""
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"another architecture: missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
                         f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''} "
                         f"({len(missing)} missing, {len(unexpected)} unexpected)")
    differ = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    others = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in differ if not CLASS_SHAPED.match(k)]
    if others:
        raise ValueError(f"another architecture: shapes differ for {others[:4]} ({len(others)} tensors)")
    model.load_state_dict({k: v for k, v in state.items() if k not in differ}, strict=False)
    return differ
