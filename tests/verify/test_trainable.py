"""The trainable module of a spec: same forward as the functional one, real parameters, modes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graphs.spec import build_spec
from verify.model import forward, sample_params, trainable_module

FAMILY_CASES = [
    ("dense", 7, {"widths": (5, 4), "num_classes": 3}),
    ("random-dag", 9, {"hidden": (6, 5), "num_classes": 3}),
    ("strided-cnn", 8, {"channels": 3, "strides": (1, 2), "padding": "reflect"}),
    ("avgpool-cnn", 8, {"channels": 3, "strides": (1, 2), "padding": "circular"}),
    ("resnet", 8, {"width": 4, "blocks": (1, 1), "stage_strides": (1, 2)}),
    ("resnet", 8, {"width": 4, "blocks": (2,), "stage_strides": (2,), "bn": "on", "add_relu": "off"}),
    (
        "resnet",
        8,
        {"width": 4, "blocks": (1, 1), "stage_strides": (1, 2), "bn": "on", "bn_mode": "eval", "head": "max"},
    ),
    ("resnet", 6, {"width": 2, "blocks": (1,), "stage_strides": (2,), "head": "flatten", "padding": "reflect"}),
    ("paper-net", 32, {"channels": 3, "dilation_base": 16}),
    ("paper-net", 16, {"channels": 3, "dilation_base": 16, "pool": "avg", "bn": "off"}),
    ("paper-net", 32, {"channels": 3, "pool": "stride", "bn_mode": "eval"}),
]


def _id(case):
    fam, n, opts = case
    return f"{fam}-{n}-" + "-".join(f"{k}={v}" for k, v in opts.items() if k in ("bn", "bn_mode", "pool", "head"))


@pytest.mark.parametrize("case", FAMILY_CASES, ids=[_id(c) for c in FAMILY_CASES])
def test_module_forward_equals_the_functional_forward(case):
    fam, n, opts = case
    spec = build_spec(fam, n, **opts)
    module = trainable_module(spec, seed=3, draw=1, dtype=torch.float64)
    params = sample_params(spec, 3, 1, dtype=torch.float64)
    x = torch.randn((3, *spec.input_shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(module(x), forward(spec, params, x), rtol=1e-13, atol=1e-13)
    modes = {getattr(layer, "mode", None) for layer in spec.layers} - {None}
    assert module.training == (modes != {"eval"})
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in module.parameters())
    # every weight is a parameter, except batch norm's running statistics (buffers)
    expected = sum(
        w.numel() // 2 if layer.kind == "batchnorm" else w.numel()
        for layer, w in zip(spec.layers, params)
        if w is not None
    )
    assert sum(p.numel() for p in module.parameters()) == expected


def test_train_and_eval_modes_follow_batch_norm_semantics():
    """Train mode: batch statistics and running statistics updated; eval mode: the running ones,
    equal to the functional forward of the eval-mode spec with the module's statistics."""
    spec = build_spec("resnet", 8, width=4, blocks=(1,), stage_strides=(2,), bn="on")
    eval_spec = build_spec("resnet", 8, width=4, blocks=(1,), stage_strides=(2,), bn="on", bn_mode="eval")
    module = trainable_module(spec, dtype=torch.float64)
    x = torch.randn((4, 3, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    bn = next(m for m in module.modules() if isinstance(m, nn.BatchNorm2d))
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    module(x)
    assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    module.eval()
    params = sample_params(eval_spec, 0, 0, dtype=torch.float64)
    bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    slots = [i for i, layer in enumerate(eval_spec.layers) if layer.kind == "batchnorm"]
    for i, m in zip(slots, bns):
        params[i] = torch.stack([m.weight.detach(), m.bias.detach(), m.running_mean, m.running_var])
    torch.testing.assert_close(module(x), forward(eval_spec, params, x), rtol=1e-13, atol=1e-13)


def test_a_training_step_changes_the_weights_and_lowers_the_loss():
    spec = build_spec("paper-net", 32, channels=4, pool="avg")
    module = trainable_module(spec, seed=0, draw=0)
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn((8, 3, 32, 32), generator=gen), torch.randint(0, 10, (8,), generator=gen)
    opt = torch.optim.SGD(module.parameters(), lr=0.05)
    before = [p.detach().clone() for p in module.parameters()]
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(module(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert all(not torch.equal(a, b.detach()) for a, b in zip(before, module.parameters()))


def test_paper_net_parameter_count_does_not_depend_on_the_input_size():
    counts = {
        n: sum(p.numel() for p in trainable_module(build_spec("paper-net", n)).parameters()) for n in (32, 64, 128)
    }
    # 8 convs of 64 channels with biases, 8 batch norms, the linear head with its bias
    expected = (3 * 64 * 9 + 64) + 7 * (64 * 64 * 9 + 64) + 8 * 2 * 64 + (64 * 10 + 10)
    assert set(counts.values()) == {expected}


def test_convolutions_carry_the_following_bias():
    module = trainable_module(build_spec("paper-net", 32, channels=2, bn="off"))
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8
    assert all(m.bias is not None for m in convs)
    assert all(m.padding_mode == "reflect" and m.dilation == (1, 1) for m in convs)
    assert all(
        m.dilation == (4, 4)
        for m in trainable_module(build_spec("paper-net", 128, channels=2)).modules()
        if isinstance(m, nn.Conv2d)
    )
