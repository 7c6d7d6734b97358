"""Optimal first-order attacks and PGD, checked on linear models where the optimum is closed-form."""

from __future__ import annotations

import math

import pytest
import torch

from graphs.rng import Stream, generator_for
from graphs.spec import build_spec
from tests.mc import assert_mc_close
from verify.attacks import (
    dual_exponent,
    dual_norm,
    lp_norm,
    optimal_attack,
    parse_norm,
    pgd_attack,
    pgd_linear_efficiency,
    project,
    random_start,
)
from verify.losses import cross_entropy_loss
from verify.model import sample_params

NORMS = [math.inf, 2.0, 1.0]


def _dyadic(shape, seed: int) -> torch.Tensor:
    """Nonzero multiples of 1/4 in [-2, 2]: sums and products with eps = 1/8 are exact in float64."""
    g = generator_for(Stream.WEIGHTS, seed, 0)
    v = torch.randint(1, 9, shape, generator=g).double() / 4
    s = torch.randint(0, 2, shape, generator=g).double() * 2 - 1
    return v * s


def _linear(w: torch.Tensor):
    def loss(x: torch.Tensor) -> torch.Tensor:
        return (w * x).flatten(1).sum(dim=1)

    return loss


def test_norm_parsing_and_duals():
    assert parse_norm("inf") == math.inf
    assert parse_norm(2) == 2.0
    assert parse_norm("1") == 1.0
    assert dual_exponent(math.inf) == 1.0
    assert dual_exponent(2) == 2.0
    assert dual_exponent(1) == math.inf
    with pytest.raises(ValueError, match="choose one of inf, 2, 1"):
        parse_norm("3")


@pytest.mark.parametrize("p", NORMS)
def test_optimal_attack_attains_dual_norm_exactly(p):
    g = _dyadic((6, 3, 4, 4), seed=1)
    eps = 0.125
    delta = optimal_attack(g, p, eps)
    gain = (g * delta).flatten(1).sum(dim=1)
    if p == 2.0:
        # sqrt makes g/||g||_2 inexact; the error is a few ulps.
        torch.testing.assert_close(gain, eps * dual_norm(g, p), rtol=4e-16, atol=0)
        torch.testing.assert_close(lp_norm(delta, p), torch.full((6,), eps, dtype=torch.float64), rtol=4e-16, atol=0)
    else:
        assert torch.equal(gain, eps * dual_norm(g, p))
        assert torch.equal(lp_norm(delta, p), torch.full((6,), eps, dtype=torch.float64))


@pytest.mark.parametrize("p", NORMS)
def test_optimal_attack_beats_every_feasible_perturbation(p):
    g = torch.randn((4, 50), generator=generator_for(Stream.WEIGHTS, 2, 0), dtype=torch.float64)
    best = (g * optimal_attack(g, p, 1.0)).sum(dim=1)
    z = torch.randn((200, 4, 50), generator=generator_for(Stream.WEIGHTS, 2, 1), dtype=torch.float64)
    z = z / lp_norm(z.reshape(800, 50), p).reshape(200, 4, 1)  # on the unit sphere of the norm
    assert torch.all((z * g).sum(dim=2) <= best * (1 + 1e-12))


def test_optimal_attack_per_sample_eps_and_l1_picks_largest():
    g = torch.tensor([[0.5, -3.0, 2.0], [1.0, 0.0, -0.25]], dtype=torch.float64)
    eps = torch.tensor([2.0, 0.5], dtype=torch.float64)
    assert torch.equal(
        optimal_attack(g, 1, eps), torch.tensor([[0.0, -2.0, 0.0], [0.5, 0.0, 0.0]], dtype=torch.float64)
    )
    assert torch.equal(
        optimal_attack(g, "inf", eps), torch.tensor([[2.0, -2.0, 2.0], [0.5, 0.0, -0.5]], dtype=torch.float64)
    )


@pytest.mark.parametrize("p", [math.inf, 2.0])
def test_projection_and_random_start_stay_in_the_ball(p):
    x = torch.randn((5, 30), generator=generator_for(Stream.WEIGHTS, 3, 0), dtype=torch.float64) * 3
    eps = torch.tensor([0.1, 0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    proj = project(x, p, eps)
    assert torch.all(lp_norm(proj, p) <= eps * (1 + 1e-15))
    torch.testing.assert_close(project(proj, p, eps), proj, rtol=1e-15, atol=0)
    start = random_start(x, p, eps, generator_for(Stream.WEIGHTS, 3, 1))
    assert torch.all(lp_norm(start, p) <= eps * (1 + 1e-15))
    assert torch.equal(start, random_start(x, p, eps, generator_for(Stream.WEIGHTS, 3, 1)))


@pytest.mark.parametrize("p", [math.inf, 2.0])
def test_pgd_without_random_start_reaches_the_linear_optimum_in_the_paper_schedule(p):
    # From 0, 7 steps of 0.2 eps reach the l_inf corner eps sign(g) and the l_2 point eps g/||g||.
    w = _dyadic((8, 40), seed=4)
    x = torch.randn((8, 40), generator=generator_for(Stream.WEIGHTS, 4, 1), dtype=torch.float64)
    eps = 0.125
    delta = pgd_attack(_linear(w), x, p, eps, random_init=False)
    opt = optimal_attack(w, p, eps)
    if p == 2.0:
        torch.testing.assert_close(delta, opt, rtol=1e-14, atol=1e-16)
    else:
        assert torch.equal(delta, opt)


@pytest.mark.parametrize(("p", "steps"), [(math.inf, 10), (2.0, 250)])
def test_pgd_with_random_start_converges_to_the_linear_optimum(p, steps):
    w = torch.randn((8, 64), generator=generator_for(Stream.WEIGHTS, 5, 0), dtype=torch.float64)
    x = torch.randn((8, 64), generator=generator_for(Stream.WEIGHTS, 5, 1), dtype=torch.float64)
    eps = torch.linspace(0.1, 2.0, 8, dtype=torch.float64)
    delta = pgd_attack(_linear(w), x, p, eps, steps=steps, generator=generator_for(Stream.WEIGHTS, 5, 2))
    opt = optimal_attack(w, p, eps)
    if p == 2.0:
        # The orthogonal part shrinks by about 1/1.2 per step: 250 steps leave nothing in float64.
        torch.testing.assert_close(delta, opt, rtol=1e-12, atol=1e-15)
    else:
        # 10 steps x 0.2 eps = 2 eps: every coordinate reaches its corner from anywhere in the cube.
        assert torch.equal(delta, opt)


def test_pgd_paper_schedule_from_random_start_reaches_91_percent_of_linear_optimum():
    # Coordinate start u ~ U[-1, 1] (units of eps, aligned with sign g) ends at min(u + 1.4, 1):
    # E = int_{-1}^{-0.4} (u + 1.4) du/2 + 1.4/2 = 0.21 + 0.7 = 0.91 per coordinate, whatever |g_i|.
    d, batch = 64, 400
    w = torch.ones((batch, d), dtype=torch.float64)
    x = torch.zeros((batch, d), dtype=torch.float64)
    delta = pgd_attack(_linear(w), x, "inf", 1.0, steps=7, step_size=0.2, generator=generator_for(Stream.WEIGHTS, 6, 0))
    fraction = (w * delta).sum(dim=1) / dual_norm(w, "inf")
    assert_mc_close(fraction.numpy(), 0.91, what="PGD fraction of the l_inf optimum")


@pytest.mark.parametrize("p", [math.inf, 2.0])
def test_pgd_reaches_closed_form_optimum_of_binary_linear_classifier(p):
    # K = 2 linear logits: cross-entropy is increasing in the margin (w_k - w_c) . x, so the best
    # l_p attack is the optimal attack of the constant vector w_k - w_c.
    spec = build_spec("dense", 20, widths=(), num_classes=2)
    (weight,) = sample_params(spec, 7, 0, dtype=torch.float64)
    x = torch.randn((6, 20), generator=generator_for(Stream.WEIGHTS, 7, 1), dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    loss = cross_entropy_loss(spec, [weight], labels)
    direction = weight[1 - labels] - weight[labels]
    eps = 0.3
    best = loss(x + optimal_attack(direction, p, eps))
    delta = pgd_attack(loss, x, p, eps, steps=250, generator=generator_for(Stream.WEIGHTS, 7, 2))
    torch.testing.assert_close(loss(x + delta), best, rtol=1e-12, atol=0)
    assert torch.all(lp_norm(delta, p) <= eps * (1 + 1e-15))


def test_pgd_rejects_bad_arguments():
    x = torch.zeros((2, 3), dtype=torch.float64)
    with pytest.raises(ValueError, match="p = inf and p = 2 only"):
        pgd_attack(_linear(x), x, 1, 0.1, generator=generator_for(Stream.WEIGHTS, 0, 0))
    with pytest.raises(ValueError, match=r"random start needs a torch\.Generator"):
        pgd_attack(_linear(x), x, "inf", 0.1)  # random start without a generator


def test_pgd_linear_efficiency_of_the_paper_schedule_and_of_a_converged_pgd():
    # 7 x 0.2 eps from a random start: 0.91 of the l_inf optimum (closed form above) and about
    # 0.87 of the l_2 one in high dimension; enough steps reach the optimum of a linear loss.
    assert pgd_linear_efficiency("inf", 256, batch=512) == pytest.approx(0.91, abs=0.005)
    assert pgd_linear_efficiency("2", 4096, batch=64) == pytest.approx(0.870, abs=0.005)
    assert pgd_linear_efficiency("2", 64, steps=200, batch=32) == pytest.approx(1.0, abs=1e-10)
    assert pgd_linear_efficiency("inf", 64, batch=16, seed=3) == pgd_linear_efficiency("inf", 64, batch=16, seed=3)
