"""verify.training: arms, the spec factory, one epoch, held-out measurement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphs.rng import Stream, generator_for
from verify.model import forward, init_params
from verify.training import (
    Arm,
    AttackSettings,
    SpecFactory,
    TrainSettings,
    evaluate,
    frozen_batch_norm_statistics,
    make_optimizer,
    train_epoch,
)

FACTORY = SpecFactory("paper-net", (("channels", 3), ("dilation_base", 16)), 1, 10)
GEOMETRY = {"dim": 16, "native": 8, "mean": 0.3, "std": 0.4, "input_shape": (1, 16, 16)}


def _data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 1, 8, 8), generator=g), torch.randint(0, 10, (n,), generator=g)


def test_arm_names_and_shared_initial_nets():
    assert Arm("plain").name == "plain"
    assert Arm("gp", 0.01).name == "gp-0.01"
    assert Arm("pgd", 0.003, bn=False).name == "pgd-0.003-nobn"
    nobn = Arm("plain", 0.0, False, 5e-4)
    assert nobn.name == "nobn-wd0.0005"
    assert nobn.init_key == "init-nobn"
    assert Arm("gp", 0.01).init_key == Arm("plain").init_key == "init-bn"
    assert "Eq. 4" in Arm("gp", 0.01).describe()
    assert "Eq. 5" in Arm("pgd", 0.01).describe()


def test_spec_factory_builds_the_family_net_with_and_without_batch_norm():
    on, off = FACTORY.spec(16, True), FACTORY.spec(16, False)
    assert any(layer.kind == "batchnorm" for layer in on.layers)
    assert not any(layer.kind == "batchnorm" for layer in off.layers)
    assert on.input_shape == (1, 16, 16)
    assert FACTORY.d(32) == 32 * 32
    # the module's forward is the spec's functional forward with the same initial weights
    module = FACTORY.build(16, False, generator_for(Stream.TRAIN_INIT, 0, 1), torch.device("cpu"))
    params = init_params(off, generator_for(Stream.TRAIN_INIT, 0, 1))
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(module(x), forward(off, params, x))
    # a vector family sees the images flattened
    dense = SpecFactory("dense", (("widths", (8,)),), 1, 10)
    assert dense.input_shape(16) == (256,)


def test_frozen_batch_norm_statistics_keeps_running_statistics():
    bn = nn.BatchNorm1d(3)
    module = nn.Sequential(nn.Linear(2, 3), bn)
    module.train()
    x = torch.randn(8, 2)
    with frozen_batch_norm_statistics(module):
        module(x)
        assert torch.equal(bn.running_mean, torch.zeros(3))
        assert torch.equal(bn.running_var, torch.ones(3))
    assert bn.momentum == 0.1
    module(x)
    assert not torch.equal(bn.running_mean, torch.zeros(3))


@pytest.mark.parametrize("arm", [Arm("plain"), Arm("gp", 0.05), Arm("pgd", 0.05), Arm("plain", 0.0, False, 1e-3)])
def test_one_epoch_is_reproducible_and_moves_the_weights(arm):
    x, y = _data(24)
    settings = TrainSettings(epochs=1, batch_size=8, lr=0.01, pgd_steps=2, pgd_step_size=0.5)
    results = []
    for _ in range(2):
        module = FACTORY.build(16, arm.bn, generator_for(Stream.TRAIN_INIT, 0, 0), torch.device("cpu"))
        before = [p.detach().clone() for p in module.parameters()]
        opt = make_optimizer(module, settings, arm.weight_decay)
        losses = train_epoch(module, opt, x, y, arm, settings, seed=0, run=0, epoch=1, **GEOMETRY)
        assert losses.shape == (3,)
        assert np.isfinite(losses).all()
        assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
        results.append((losses, [p.detach().clone() for p in module.parameters()]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))


def test_gradient_penalty_arm_trains_on_equation_4():
    """The gp arm's first step is the gradient of mean(L + lam/2 ||d_x L||_1) (Eq. 4, q = 1)."""
    x, y = _data(8)
    arm = Arm("gp", 0.2, bn=False)
    settings = TrainSettings(epochs=1, batch_size=8, lr=0.1, optimizer="sgd")
    module = FACTORY.build(16, False, generator_for(Stream.TRAIN_INIT, 0, 0), torch.device("cpu"))
    ref = FACTORY.build(16, False, generator_for(Stream.TRAIN_INIT, 0, 0), torch.device("cpu"))
    order = torch.randperm(8, generator=generator_for(Stream.DATA_ORDER, 0, 0, 1))
    xb = ((x[order].repeat_interleave(2, -2).repeat_interleave(2, -1)) - 0.3) / 0.4
    xb.requires_grad_(True)
    loss = F.cross_entropy(ref(xb), y[order], reduction="none")
    (g,) = torch.autograd.grad(loss.sum(), xb, create_graph=True)
    total = (loss + 0.5 * (0.2 / 0.4) * g.abs().flatten(1).sum(1)).mean()
    grads = torch.autograd.grad(total, list(ref.parameters()))
    losses = train_epoch(
        module, make_optimizer(module, settings, 0.0), x, y, arm, settings, seed=0, run=0, epoch=1, **GEOMETRY
    )
    assert losses[0] == pytest.approx(float(total.detach()), rel=1e-5)
    with torch.no_grad():
        for p_ref, gr, p in zip(ref.parameters(), grads, module.parameters()):
            torch.testing.assert_close(p, p_ref - 0.1 * gr, rtol=1e-4, atol=1e-6)


def test_evaluate_measures_each_point_and_chunking_changes_no_gradient():
    x, y = _data(20, seed=1)
    module = FACTORY.build(16, True, generator_for(Stream.TRAIN_INIT, 0, 0), torch.device("cpu"))
    attack = AttackSettings(0.05, 3, 0.5)
    one = evaluate(module, x, y, attack, seed=0, run=0, epoch=0, batch_size=64, **GEOMETRY)
    chunked = evaluate(module, x, y, attack, seed=0, run=0, epoch=0, batch_size=7, **GEOMETRY)
    for q in ("accuracy", "loss", "loss_grad_l1", "loss_grad_l2"):
        np.testing.assert_allclose(one[q], chunked[q], rtol=1e-5)
    assert all(v.shape == (20,) for v in one.values())
    assert set(np.unique(one["vulnerability"])) <= {0.0, 1.0}
    # per-sample gradients, by hand, of the eval-mode net
    module.eval()
    xi = ((x.repeat_interleave(2, -2).repeat_interleave(2, -1)) - 0.3) / 0.4
    for i in (0, 13):
        xx = xi[i : i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(module(xx), y[i : i + 1]), xx)
        assert one["loss_grad_l1"][i] == pytest.approx(float(g.abs().sum()), rel=1e-5)
        assert one["loss_grad_l2"][i] == pytest.approx(float(g.norm()), rel=1e-5)
    # a larger attack flips at least as many labels here
    big = evaluate(module, x, y, AttackSettings(2.0, 5, 0.4), seed=0, run=0, epoch=0, **GEOMETRY)
    assert big["vulnerability"].mean() >= one["vulnerability"].mean()
    assert np.isfinite(big["adv_loss_gain"]).all()
