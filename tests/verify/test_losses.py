"""Eq. 4 (gradient penalty, double backprop), Eq. 5 (adversarial augmentation) and Prop. 3."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphs.spec import build_spec
from verify.attacks import dual_exponent, lp_norm, optimal_attack
from verify.losses import augmented_loss, cross_entropy_loss, penalized_loss, prop3_difference
from verify.model import sample_params
from verify.sampling import input_gradients, sample_inputs, sample_labels


def _setup(d=12, widths=(10, 8), classes=4, batch=5, seed=11):
    spec = build_spec("dense", d, widths=widths, num_classes=classes)
    params = sample_params(spec, seed, 0, dtype=torch.float64)
    x = sample_inputs(spec, seed, 0, batch, dtype=torch.float64)
    labels = sample_labels(spec, seed, 0, batch)
    return spec, params, x, labels


@pytest.mark.parametrize("q", [1.0, 2.0])
def test_penalized_loss_value(q):
    spec, params, x, labels = _setup()
    eps = 0.3
    ig = input_gradients(spec, params, x, labels)
    want = ig.loss + 0.5 * eps * lp_norm(ig.loss_grad, q)
    got = penalized_loss(cross_entropy_loss(spec, params, labels), x, eps, q)
    torch.testing.assert_close(got, want, rtol=1e-15, atol=0)


@pytest.mark.parametrize("q", [1.0, 2.0])
def test_penalized_loss_weight_gradient_matches_finite_differences(q):
    # Double backprop: the penalty depends on the weights through d_x L, so its weight gradient
    # needs create_graph=True; gradcheck compares autograd with central finite differences.
    spec, params, x, labels = _setup()
    eps = 0.7

    def objective(*weights):
        return penalized_loss(cross_entropy_loss(spec, list(weights), labels), x, eps, q).sum()

    weights = tuple(w.clone().requires_grad_(True) for w in params)
    assert torch.autograd.gradcheck(objective, weights, eps=1e-6, atol=1e-8, rtol=1e-6)

    # The penalty really contributes to the weight gradient (it is not silently detached).
    plain = torch.autograd.grad(cross_entropy_loss(spec, list(weights), labels)(x).sum(), weights)
    pen = torch.autograd.grad(objective(*weights), weights)
    assert max(float((a - b).abs().max()) for a, b in zip(plain, pen)) > 1e-3


def test_penalized_loss_without_graph_is_detached():
    spec, params, x, labels = _setup()
    weights = [w.clone().requires_grad_(True) for w in params]
    out = penalized_loss(cross_entropy_loss(spec, weights, labels), x, 0.1, 2, create_graph=False)
    assert not out.requires_grad


@pytest.mark.parametrize("p", [math.inf, 2.0, 1.0])
def test_augmented_loss_value(p):
    spec, params, x, labels = _setup()
    loss = cross_entropy_loss(spec, params, labels)
    eps = 0.05
    g = input_gradients(spec, params, x, labels).loss_grad
    want = 0.5 * (loss(x) + loss(x + eps * optimal_attack(g, p, 1.0)))
    torch.testing.assert_close(augmented_loss(loss, x, eps, p), want, rtol=1e-15, atol=0)


@pytest.mark.parametrize("p", [math.inf, 2.0])
def test_prop3_difference_is_o_eps(p):
    # L~ - L_eps = (L(x + eps delta) - L(x) - eps ||g||_q) / 2: second order in eps, so
    # |diff| / eps -> 0 and the log-log order is about 2 (above 1 is what Prop. 3 claims).
    spec, params, x, labels = _setup(d=16, widths=(24, 24), classes=5, batch=16, seed=3)
    loss = cross_entropy_loss(spec, params, labels)
    eps = np.array([1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5])
    diffs = np.array([float(prop3_difference(loss, x, e, p).abs().mean()) for e in eps])
    ratios = diffs / eps
    assert np.all(np.diff(ratios) < 0), ratios
    assert ratios[-1] < ratios[0] / 50, ratios
    order = np.polyfit(np.log(eps), np.log(diffs), 1)[0]
    assert 1.7 < order < 2.3, order


def test_prop3_difference_with_and_without_precomputed_gradient_agree():
    spec, params, x, labels = _setup()
    loss = cross_entropy_loss(spec, params, labels)
    g = input_gradients(spec, params, x, labels).loss_grad
    for p in (math.inf, 2.0):
        a = prop3_difference(loss, x, 1e-2, p)
        b = prop3_difference(loss, x, 1e-2, p, grad=g)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)
        # and equals the first-order remainder of the one-step attack, halved
        q = dual_exponent(p)
        rem = 0.5 * (loss(x + 1e-2 * optimal_attack(g, p, 1.0)) - loss(x) - 1e-2 * lp_norm(g, q))
        torch.testing.assert_close(a, rem, rtol=0, atol=1e-15)
