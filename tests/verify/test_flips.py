"""verify.flips: closed forms on a linear model, Euler's identity, the first flip along a ray."""

from __future__ import annotations

import math

import pytest
import torch

from graphs.spec import build_spec
from verify.flips import deepfool, first_order_distance, homogeneity_residual, line_search_flip, logit_jacobian
from verify.model import forward, sample_params
from verify.sampling import sample_inputs


def _net(spec, seed=0, draw=0):
    params = sample_params(spec, seed, draw, dtype=torch.float64)
    x = sample_inputs(spec, seed, draw, 6, dtype=torch.float64)
    return (lambda inp: forward(spec, params, inp)), params, x


@pytest.fixture(scope="module")
def linear():
    """A linear model f(x) = W x (dense with no hidden layer) and the closed forms of its flips."""
    spec = build_spec("dense", 40, widths=(), num_classes=5)
    fn, params, x = _net(spec)
    w = params[0]  # (K, d)
    f = x @ w.T
    c = f.argmax(dim=1)
    return spec, fn, w, x, f, c


def _closed(w, x, f, c, q):
    """min over k != c of (f_c - f_k) / ||w_c - w_k||_q: the distance to the class region's complement."""
    out = []
    for b in range(x.shape[0]):
        best = math.inf
        for k in range(w.shape[0]):
            if k != int(c[b]):
                gap = float(f[b, c[b]] - f[b, k])
                best = min(best, gap / float(torch.linalg.vector_norm(w[c[b]] - w[k], ord=q)))
        out.append(best)
    return torch.tensor(out, dtype=torch.float64)


def _along(w, x, f, c, u):
    """Smallest t > 0 where some f_k overtakes f_c along x + t u (each gap is linear in t)."""
    out = []
    for b in range(x.shape[0]):
        best = math.inf
        for k in range(w.shape[0]):
            slope = float((w[c[b]] - w[k]) @ u[b])
            if k != int(c[b]) and slope < 0:
                best = min(best, float(f[b, c[b]] - f[b, k]) / -slope)
        out.append(best)
    return torch.tensor(out, dtype=torch.float64)


def test_first_order_distance_is_the_exact_distance_on_a_linear_model(linear):
    _, fn, w, x, f, c = linear
    logits, jac = logit_jacobian(fn, x)
    assert torch.equal(logits.argmax(dim=1), c)
    for p, q in ((2.0, 2.0), (math.inf, 1.0)):
        dist, _ = first_order_distance(logits, jac, p)
        assert dist == pytest.approx(_closed(w, x, f, c, q), rel=1e-12)


def test_deepfool_takes_one_step_to_the_nearest_boundary_on_a_linear_model(linear):
    _, fn, w, x, f, c = linear
    for p, q in ((2.0, 2.0), (math.inf, 1.0)):
        res = deepfool(fn, x, p, overshoot=0.02)
        assert bool(res.flipped.all())
        assert (res.iterations == 1).all()
        norm = torch.linalg.vector_norm(res.perturbation.reshape(x.shape[0], -1), ord=p, dim=1)
        assert norm == pytest.approx(1.02 * _closed(w, x, f, c, q), rel=1e-10)


def test_line_search_finds_the_closed_form_crossing_on_a_linear_model(linear):
    _, fn, w, x, f, c = linear
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for u in (g / torch.linalg.vector_norm(g, dim=1, keepdim=True), torch.sign(g)):
        exact = _along(w, x, f, c, u)
        t = line_search_flip(fn, x, u, t0=0.1, t_max=1e6, rtol=1e-12)
        finite = torch.isfinite(exact)
        assert torch.equal(torch.isfinite(t), finite)
        assert t[finite] == pytest.approx(exact[finite], rel=1e-9)


def test_line_search_returns_the_first_flip_along_a_ray():
    # two classes along the ray x = t: class 1 wins on [0.9, 1.3] and again from t = 3 on
    def fn(inp):
        t = inp[:, 0]
        f1 = torch.where((t >= 0.9) & (t <= 1.3), 1.0, torch.where(t >= 3, 1.0, -1.0)).to(inp.dtype)
        return torch.stack([torch.zeros_like(t), f1], dim=1)

    x = torch.zeros(1, 1, dtype=torch.float64)
    u = torch.ones(1, 1, dtype=torch.float64)
    t = line_search_flip(fn, x, u, t0=2.5, t_max=100.0)
    assert float(t[0]) == pytest.approx(0.9, rel=1e-8)
    never = line_search_flip(fn, x, -u, t0=1.0, t_max=50.0)
    assert math.isnan(float(never[0]))


@pytest.mark.parametrize(
    ("family", "dim", "options"),
    [
        ("dense", 30, {"widths": (16, 16)}),
        ("strided-cnn", 12, {"channels": 4, "strides": (1, 2, 2), "padding": "zeros"}),
        ("strided-cnn", 12, {"channels": 4, "strides": (1, 2), "padding": "circular"}),
        ("avgpool-cnn", 12, {"channels": 4, "strides": (1, 2), "padding": "reflect"}),
        ("random-dag", 10, {"hidden": (8, 8)}),
    ],
)
def test_bias_free_relu_nets_satisfy_eulers_identity_exactly(family, dim, options):
    spec = build_spec(family, dim, **options)
    fn, _, x = _net(spec, seed=3)
    logits, jac = logit_jacobian(fn, x)
    assert float(homogeneity_residual(logits, jac, x).max()) < 1e-13
    # a bias breaks positive homogeneity, and the residual shows it
    shifted = logits + 0.1
    assert float(homogeneity_residual(shifted, jac, x).min()) > 1e-3


def test_deepfool_rejects_other_norms(linear):
    _, fn, _, x, _, _ = linear
    with pytest.raises(ValueError, match="2 or inf"):
        deepfool(fn, x, 1.0)
