"""verify.stats: the finite-size fit, binomial intervals and the constant of a power law."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from tests.verify.test_stats import _synthetic
from verify.stats import (
    ASYMPTOTIC_MIN_SIZES,
    asymptotic_coefficients,
    binomial_interval,
    fit_asymptotic_power_law,
    fit_power_law,
    power_law_constant,
)

XS = [100, 200, 400, 800, 1600, 3200]


def _border(c: float, exponent: float = -0.5):
    return lambda x: math.exp(c * x**exponent)


def test_coefficients_of_noise_free_values_are_exact_and_vectorised():
    xs = np.array(XS, dtype=np.float64)
    y = 0.3 * np.log(xs) + 1.0 - 5.0 * xs**-0.5
    assert asymptotic_coefficients(xs, y, -0.5) == pytest.approx([0.3, 1.0, -5.0], rel=1e-12)
    both = asymptotic_coefficients(xs, np.stack([y, 2 * y]), -0.5)
    assert both.shape == (2, 3)
    assert both[1] == pytest.approx([0.6, 2.0, -10.0], rel=1e-12)


def test_finite_size_fit_removes_a_border_term_the_plain_fit_cannot():
    # E[Q] = 2 x^0.5 exp(-8 / sqrt(x)): the plain slope is biased upwards, beta is not
    rec = _synthetic(XS, 0.5, 200, 2, seed=11, factor=_border(-8.0), shared_draws=True)
    plain = fit_power_law(rec, "q", n_boot=500, seed=0)
    asym = fit_asymptotic_power_law(rec, "q", exponent=-0.5, n_boot=500, seed=0)
    assert not plain.interval.contains(0.5)
    assert plain.slope > 0.55
    assert asym.interval.contains(0.5), asym.interval
    assert asym.amplitude == pytest.approx(-8.0, rel=0.25)
    assert asym.paired
    assert asym.predict(asym.xs) == pytest.approx(np.exp(np.log(asym.means) - asym.residuals), rel=1e-10)
    # the interval pays for the extra coefficient
    assert asym.interval.half_width > plain.interval.half_width


def test_finite_size_fit_needs_enough_sizes_and_a_vanishing_term():
    rec = _synthetic(XS[: ASYMPTOTIC_MIN_SIZES - 1], 0.5, 20, 2, seed=1)
    with pytest.raises(ValueError, match="at least 5"):
        fit_asymptotic_power_law(rec, "q")
    rec = _synthetic(XS, 0.5, 20, 2, seed=1)
    with pytest.raises(ValueError, match="negative"):
        fit_asymptotic_power_law(rec, "q", exponent=0.5)


@pytest.mark.slow
def test_finite_size_interval_covers_about_95_percent():
    covered, reps = 0, 150
    for rep in range(reps):
        rec = _synthetic(XS, 0.5, 128, 2, seed=900 + rep, factor=_border(-8.0), shared_draws=True)
        covered += fit_asymptotic_power_law(rec, "q", n_boot=999, seed=rep).interval.contains(0.5)
    assert 0.89 <= covered / reps <= 0.99, covered / reps


@pytest.mark.parametrize("n", [1, 7, 40])
def test_clopper_pearson_closed_forms_at_the_ends(n):
    none = binomial_interval(0, n)
    assert none.estimate == 0.0
    assert none.interval.low == 0.0
    assert none.interval.high == pytest.approx(1 - 0.025 ** (1 / n), rel=1e-9)
    every = binomial_interval(n, n)
    assert every.interval.high == 1.0
    assert every.interval.low == pytest.approx(0.025 ** (1 / n), rel=1e-9)


def test_clopper_pearson_is_the_beta_quantiles():
    p = binomial_interval(95, 100)
    assert p.estimate == 0.95
    assert p.interval.low == pytest.approx(sps.beta.ppf(0.025, 95, 6), rel=1e-9)
    assert p.interval.high == pytest.approx(sps.beta.ppf(0.975, 96, 5), rel=1e-9)
    assert p.to_dict()["successes"] == 95
    with pytest.raises(ValueError, match="successes <= trials"):
        binomial_interval(3, 2)
    with pytest.raises(ValueError, match="trials >= 1"):
        binomial_interval(0, 0)


def test_power_law_constant_recovers_the_scale():
    rec = _synthetic([64, 256, 1024, 4096], -0.5, 200, 2, seed=5, scale=0.7, shared_draws=True)
    c, interval = power_law_constant(rec, "q", slope=-0.5, n_boot=500)
    assert interval.contains(0.7), interval
    assert c == pytest.approx(0.7, rel=0.05)
