"""Param groups, WarmupPolyLR values and full-model gradient clipping of maskformer.engine.solver."""

import pytest
import torch
from torch import nn

from maskformer.engine import build_lr_scheduler, build_optimizer, clip_grad_norm, is_norm, warmup_poly_factor


class FrozenBatchNorm2d(nn.Module):
    """Stand-in for torchvision's FrozenBatchNorm2d: detected by class name, with a trainable weight here."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))


class Net(nn.Module):
    """Backbone (conv + BN + frozen conv) and a head with every kind of parameter group."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1))
        self.backbone[2].requires_grad_(False)
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm(4)
        self.fbn = FrozenBatchNorm2d(4)
        self.query = nn.Embedding(5, 4)
        self.head = nn.Linear(4, 2)


def _group_of(opt: torch.optim.Optimizer) -> dict[int, dict]:
    return {id(p): g for g in opt.param_groups for p in g["params"]}


def test_param_groups_decay_lr_and_frozen():
    net = Net()
    opt = build_optimizer(net, lr=1e-3, weight_decay=0.05, backbone_multiplier=0.1)
    groups = _group_of(opt)
    expected = {  # parameter -> (lr, weight_decay)
        net.backbone[0].weight: (1e-4, 0.05), net.backbone[0].bias: (1e-4, 0.05),
        net.backbone[1].weight: (1e-4, 0.0), net.backbone[1].bias: (1e-4, 0.0),
        net.gn.weight: (1e-3, 0.0), net.ln.bias: (1e-3, 0.0), net.fbn.weight: (1e-3, 0.0),
        net.query.weight: (1e-3, 0.0), net.head.weight: (1e-3, 0.05), net.head.bias: (1e-3, 0.05),
    }
    for param, (lr, wd) in expected.items():
        assert groups[id(param)]["lr"] == pytest.approx(lr)
        assert groups[id(param)]["weight_decay"] == wd
    frozen = {id(p) for p in net.backbone[2].parameters()}
    assert not frozen & set(groups)
    assert len(groups) == sum(p.requires_grad for p in net.parameters())
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"]  # the fused kernel on the CPU too


def test_swin_position_tables_get_no_weight_decay():
    """The official Swin recipe: relative_position_bias_table (and absolute_pos_embed) are not decayed."""
    from maskformer import build_model, tiny_config

    model = build_model(tiny_config(backbone="swin_t", weights=None))
    groups = _group_of(build_optimizer(model, lr=6e-5, weight_decay=0.01, backbone_multiplier=1.0))
    tables = [p for n, p in model.named_parameters() if n.endswith("relative_position_bias_table")]
    assert len(tables) == 12  # one per Swin-T block (2 + 2 + 6 + 2)
    assert all(groups[id(p)]["weight_decay"] == 0.0 for p in tables)
    qkv = model.backbone.features[1][0].attn.qkv.weight
    assert groups[id(qkv)]["weight_decay"] == 0.01


def test_is_norm_by_type_and_name():
    assert all(is_norm(m) for m in (nn.BatchNorm1d(2), nn.SyncBatchNorm(2), nn.InstanceNorm2d(2),
                                    nn.GroupNorm(1, 2), nn.LayerNorm(2), FrozenBatchNorm2d(2)))
    assert not any(is_norm(m) for m in (nn.Linear(2, 2), nn.Embedding(2, 2), nn.Conv2d(2, 2, 1)))


def test_poly_schedule_matches_formula():
    max_iters, lr = 100, 0.5
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = build_lr_scheduler(opt, max_iters)
    seen = {}
    for it in range(max_iters):
        seen[it] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    for it in (0, 1, 10, 50, 99):
        assert seen[it] == pytest.approx(lr * (1 - it / max_iters) ** 0.9, rel=1e-12)
    assert opt.param_groups[0]["lr"] == 0.0  # at max_iters


def test_warmup_ramp():
    f = warmup_poly_factor(max_iters=100, power=0.9, warmup_iters=10, warmup_factor=0.01)
    assert f(0) == pytest.approx(0.01)
    assert f(5) == pytest.approx((0.01 * 0.5 + 0.5) * 0.95**0.9)
    assert f(10) == pytest.approx(0.9**0.9)
    assert warmup_poly_factor(10)(20) == 0.0  # past the end stays at zero


def test_clip_grad_norm_full_model():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    norm = clip_grad_norm([a, b, nn.Parameter(torch.zeros(1))], max_norm=0.01)  # grad-less params skipped
    assert norm.item() == pytest.approx(5.0)
    total = torch.cat([a.grad, b.grad]).norm()
    assert total.item() == pytest.approx(0.01, rel=1e-4)
    assert torch.allclose(a.grad / b.grad[0], torch.tensor([0.75, 0.0]))  # direction kept
    assert clip_grad_norm([a, b], max_norm=0.0) is None
