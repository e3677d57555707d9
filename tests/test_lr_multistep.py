"""WarmupMultiStepLR (the COCO panoptic schedule): hand-computed lrs around each step and in the warmup,
validation of the steps, and a resume that continues the schedule from a weights_only checkpoint."""

import io
import re

import pytest
import torch
from torch import nn

from maskformer.engine import TrainConfig, build_lr_scheduler, warmup_multistep_factor

LR = 0.5


def _lrs(sched_kwargs: dict, iters: int) -> tuple[list[float], torch.optim.Optimizer, object]:
    """The lr used at each iteration 0..iters-1 (read before the step, as the train loop steps after)."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=LR)
    sched = build_lr_scheduler(opt, **sched_kwargs)
    seen = []
    for _ in range(iters):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return seen, opt, sched


def test_multistep_lr_before_at_and_after_each_step_and_in_warmup():
    kwargs = {"max_iters": 100, "warmup_iters": 10, "warmup_factor": 0.001, "name": "multistep",
              "steps": [30, 60], "gamma": 0.1}
    seen, _, _ = _lrs(kwargs, 100)
    expected = {
        0: 0.0005,  # 0.5 x 0.001
        5: 0.25025,  # 0.5 x (0.001 x 0.5 + 0.5)
        9: 0.45005,  # 0.5 x (0.001 x 0.1 + 0.9)
        10: 0.5, 29: 0.5,
        30: 0.05, 31: 0.05, 59: 0.05,  # x 0.1 from iteration 30 itself (detectron2's bisect_right)
        60: 0.005, 99: 0.005,
    }
    for it, lr in expected.items():
        assert seen[it] == pytest.approx(lr, rel=1e-12), it


def test_multistep_inside_the_warmup_multiplies_both():
    f = warmup_multistep_factor(max_iters=20, steps=[5], gamma=0.5, warmup_iters=10, warmup_factor=0.5)
    assert f(4) == pytest.approx(0.5 * 0.6 + 0.4)  # 0.7, before the step
    assert f(6) == pytest.approx(0.5 * (0.5 * 0.4 + 0.6))  # 0.4 = gamma x ramp
    assert f(10) == f(19) == pytest.approx(0.5)


def test_coco_schedule_values():
    """The official COCO recipe: 554400 iterations, x 0.1 at 369600, warmup 10 from 1.0 (a no-op)."""
    f = warmup_multistep_factor(554400, [369600], 0.1, warmup_iters=10, warmup_factor=1.0)
    assert (f(0), f(5), f(369599), f(369600), f(554399)) == (1.0, 1.0, 1.0, pytest.approx(0.1),
                                                              pytest.approx(0.1))


@pytest.mark.parametrize(("changes", "message"), [
    ({"lr_scheduler": "step"}, "lr_scheduler='step': must be one of"),
    ({"lr_scheduler": "multistep"}, "steps=[]: lr_scheduler multistep needs at least one step"),
    ({"lr_scheduler": "multistep", "steps": [60, 30]}, "steps=[60, 30]: must increase strictly"),
    ({"lr_scheduler": "multistep", "steps": [30, 30]}, "steps=[30, 30]: must increase strictly"),
    ({"lr_scheduler": "multistep", "steps": [101]}, "steps=[101]: must increase strictly, from >= 1 to <= "
                                                   "max_iters=100"),
    ({"lr_scheduler": "multistep", "steps": [0]}, "steps=[0]: must increase strictly, from >= 1"),
    ({"lr_scheduler": "multistep", "steps": [50], "gamma": 0.0}, "gamma=0.0: must be > 0"),
    ({"steps": [50]}, "steps=[50]: only lr_scheduler multistep uses steps"),
])
def test_train_config_validates_the_schedule(changes, message):
    with pytest.raises(ValueError, match=re.escape(f"TrainConfig.{message}")):
        TrainConfig(max_iters=100, **changes)
    TrainConfig(max_iters=100, lr_scheduler="multistep", steps=[30, 100])  # the last iteration is allowed


def test_resumed_multistep_scheduler_continues_from_its_state():
    kwargs = {"max_iters": 40, "name": "multistep", "steps": [10, 20], "warmup_iters": 3,
              "warmup_factor": 0.1}
    seen, opt, sched = _lrs(kwargs, 15)
    buffer = io.BytesIO()
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # the factor function is not in the state: plain data
    poly_state = build_lr_scheduler(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=LR), 40).state_dict()
    assert set(state["scheduler"]) == set(poly_state)  # the same keys as a poly scheduler's
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=LR)
    sched2 = build_lr_scheduler(opt2, **kwargs)
    opt2.load_state_dict(state["optimizer"])
    sched2.load_state_dict(state["scheduler"])
    resumed = []
    for _ in range(15, 40):
        resumed.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    full, _, _ = _lrs(kwargs, 40)
    assert full[:15] == seen and resumed == pytest.approx(full[15:], rel=1e-12)
    assert resumed[0] == pytest.approx(0.05) and resumed[-1] == pytest.approx(0.005)
