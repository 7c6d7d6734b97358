"""verify.stats: power-law fits, bootstrap intervals over draws, verdicts, Holm, the maximum of normals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tests.mc import assert_mc_close
from verify.results import Interval, Verdict
from verify.stats import (
    band_verdict,
    bootstrap_interval,
    draw_means,
    expected_max_abs_normal,
    fit_power_law,
    holm,
    ols_slope,
    rejection_verdict,
    samples_to_settle,
    t_interval,
)


def _synthetic(
    xs, slope, draws, inputs, *, sigma_draw=0.3, sigma_input=0.5, seed=0, scale=2.0, factor=None, shared_draws=False
):
    """Long-format records with E[value] = scale * x^slope * factor(x) exactly.

    Each draw has a lognormal factor shared by its inputs (so inputs are not independent),
    each input a further lognormal factor; both have mean 1. ``shared_draws``: draw k has
    the same factor at every x, as CNN kernels of draw k are the same at every input size.
    """
    rng = np.random.default_rng(seed)
    frames = []
    common = rng.lognormal(-(sigma_draw**2) / 2, sigma_draw, size=(draws, 1))
    for x in xs:
        mean = scale * x**slope * (1.0 if factor is None else float(factor(x)))
        a = common if shared_draws else rng.lognormal(-(sigma_draw**2) / 2, sigma_draw, size=(draws, 1))
        b = rng.lognormal(-(sigma_input**2) / 2, sigma_input, size=(draws, inputs))
        frames.append(
            pd.DataFrame(
                {
                    "d": x,
                    "draw": np.repeat(np.arange(draws), inputs),
                    "input": np.tile(np.arange(inputs), draws),
                    "quantity": "q",
                    "value": (mean * a * b).ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_fit_recovers_a_known_slope():
    rec = _synthetic([100, 400, 1600, 6400], -0.5, 200, 2, seed=0)
    fit = fit_power_law(rec, "q", n_boot=1000, seed=0)
    assert fit.interval.contains(-0.5)
    assert fit.interval.high - fit.interval.low < 0.1
    assert fit.slope == pytest.approx(-0.5, abs=0.03)
    assert list(fit.xs) == [100, 400, 1600, 6400]
    assert (fit.draws == 200).all()
    assert fit.interval.method.startswith("BCa")


def test_means_and_standard_errors_are_over_draw_means():
    rec = _synthetic([10, 100], 1.0, 5, 3, seed=2)
    fit = fit_power_law(rec, "q", n_boot=200)
    per_draw = draw_means(rec, "q")
    for k, x in enumerate([10, 100]):
        v = per_draw[per_draw.d == x]["value"].to_numpy()
        assert len(v) == 5
        assert fit.means[k] == pytest.approx(v.mean(), rel=1e-12)
        assert fit.stderr[k] == pytest.approx(v.std(ddof=1) / math.sqrt(5), rel=1e-12)
    # least squares through two points is the slope between them
    assert fit.slope == pytest.approx(math.log(fit.means[1] / fit.means[0]) / math.log(10), rel=1e-12)
    assert fit.local_slopes() == pytest.approx([fit.slope], rel=1e-12)


@pytest.mark.slow
def test_bootstrap_interval_covers_the_true_slope_about_95_percent():
    # With the draws the CLI uses (~100+) the BCa interval is calibrated; with few draws (~40)
    # it under-covers (about 0.85), as bootstrap intervals of skewed means do.
    covered = 0
    reps = 150
    for rep in range(reps):
        rec = _synthetic([50, 200, 800, 3200], 0.5, 128, 2, seed=100 + rep)
        covered += fit_power_law(rec, "q", n_boot=999, seed=rep).interval.contains(0.5)
    # nominal 0.95; binomial sd with 150 replicates is 1.8%: accept 0.89..0.99
    assert 0.89 <= covered / reps <= 0.99, covered / reps


@pytest.mark.slow
def test_bootstrap_resamples_draw_ids_jointly_when_sizes_share_draws():
    # Draw k of every size shares one factor (common random numbers): the slope's spread is
    # much smaller than independent sizes would give; resampling draw ids jointly is calibrated.
    covered = 0
    reps = 150
    for rep in range(reps):
        rec = _synthetic(
            [50, 200, 800, 3200], 0.5, 128, 2, sigma_draw=0.6, sigma_input=0.3, seed=500 + rep, shared_draws=True
        )
        fit = fit_power_law(rec, "q", n_boot=999, seed=rep)
        assert fit.paired
        covered += fit.interval.contains(0.5)
    assert 0.89 <= covered / reps <= 0.99, covered / reps


def test_bootstrap_resamples_sizes_alone_when_draw_ids_differ():
    rec = _synthetic([50, 200], 0.5, 20, 2, seed=9)
    assert fit_power_law(rec, "q", n_boot=200).paired
    rec.loc[rec.d == 200, "draw"] += 100
    assert not fit_power_law(rec, "q", n_boot=200).paired


def test_bootstrap_is_seeded():
    rec = _synthetic([50, 200, 800], 0.3, 20, 2, seed=3)
    a = fit_power_law(rec, "q", n_boot=500, seed=7)
    b = fit_power_law(rec, "q", n_boot=500, seed=7)
    c = fit_power_law(rec, "q", n_boot=500, seed=8)
    assert a.interval == b.interval
    assert a.interval != c.interval


def test_max_correction_recovers_the_pure_power():
    xs = [100, 1000, 10000, 100000]
    rec = _synthetic(xs, -0.5, 100, 2, seed=4, factor=expected_max_abs_normal)
    raw = fit_power_law(rec, "q", n_boot=500)
    corrected = fit_power_law(rec, "q", n_boot=500, correction="max_abs_normal")
    assert corrected.interval.contains(-0.5)
    assert not raw.interval.contains(-0.5)
    assert corrected.raw_slope == raw.slope
    expected = np.exp(corrected.intercept) * corrected.xs**corrected.slope * expected_max_abs_normal(corrected.xs)
    assert corrected.predict(corrected.xs) == pytest.approx(expected, rel=1e-12)


def test_expected_max_abs_normal_against_monte_carlo_and_closed_forms():
    # d = 1: E|Z| = sqrt(2/pi); d = 2: E max(|Z1|, |Z2|) = 2/sqrt(pi)
    assert expected_max_abs_normal(1) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-9)
    assert expected_max_abs_normal(2) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-9)
    rng = np.random.default_rng(0)
    for d in (10, 3072):
        draws = np.abs(rng.standard_normal((4000, d))).max(axis=1)
        assert_mc_close(draws, float(expected_max_abs_normal(d)), what=f"E max over {d}")
    big = expected_max_abs_normal(np.array([3 * 256**2, 3 * 1024**2]))
    assert (np.diff(big) > 0).all()
    assert big[1] < math.sqrt(2 * math.log(3 * 1024**2))


def test_other_x_columns_can_be_fitted():
    rec = _synthetic([1, 4, 16, 64], -0.5, 30, 1, seed=5, sigma_input=0.0).rename(columns={"d": "pool"})
    fit = fit_power_law(rec, "q", "pool", n_boot=300)
    assert fit.x == "pool"
    assert fit.interval.contains(-0.5)


def test_fit_errors():
    with pytest.raises(ValueError, match="at least two values of 'd'"):
        fit_power_law(_synthetic([10], 1.0, 5, 1), "q")
    with pytest.raises(ValueError, match="no records of quantity 'other'"):
        fit_power_law(_synthetic([10, 20], 1.0, 5, 1), "other")
    neg = _synthetic([10, 20], 1.0, 5, 1)
    neg.loc[0, "value"] = -1.0
    with pytest.raises(ValueError, match="a power law needs positive d"):
        fit_power_law(neg, "q")


def test_single_draw_gives_no_interval_and_an_inconclusive_verdict():
    fit = fit_power_law(_synthetic([10, 20, 40], 1.0, 1, 3), "q")
    assert not fit.interval.finite
    assert band_verdict(fit.interval, 1.0, 0.05) is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0.46, 0.54, Verdict.CONSISTENT),
        (0.45, 0.55, Verdict.CONSISTENT),  # the band's edges belong to it
        (0.30, 0.44, Verdict.INCONSISTENT),
        (0.56, 0.70, Verdict.INCONSISTENT),
        (0.40, 0.52, Verdict.INCONCLUSIVE),
        (0.48, 0.60, Verdict.INCONCLUSIVE),
        (0.40, 0.60, Verdict.INCONCLUSIVE),  # wider than the band
        (0.55, 0.60, Verdict.INCONCLUSIVE),  # touches the band
    ],
)
def test_band_verdict(lo, hi, expected):
    assert band_verdict(Interval(lo, hi), 0.5, 0.05) is expected


def test_band_verdict_rejects_non_positive_margin():
    with pytest.raises(ValueError, match="margin must be positive"):
        band_verdict(Interval(0.4, 0.6), 0.5, 0.0)


def test_samples_to_settle():
    # slope on the prediction, half-width 0.08, band half-width 0.05: (0.08/0.05)^2 = 2.56x the draws
    assert samples_to_settle(Interval(0.42, 0.58), 0.5, 100, 0.5, 0.05) == 256
    # slope outside the band by 0.02, half-width 0.04: (0.04/0.02)^2 = 4x
    assert samples_to_settle(Interval(0.53, 0.61), 0.57, 50, 0.5, 0.05) == 200
    assert samples_to_settle(Interval(0.46, 0.54), 0.5, 100, 0.5, 0.05) is None  # already settled
    assert samples_to_settle(Interval(0.5, 0.6), 0.55, 100, 0.5, 0.05) is None  # on the edge


def test_holm_matches_the_step_down_definition():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005*4, 0.01*3, 0.03*2, 0.04*1, then the running maximum
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]).size == 0
    assert rejection_verdict(holm(p), 0.05) is Verdict.INCONSISTENT
    assert rejection_verdict(holm(p), 0.01) is Verdict.CONSISTENT


def test_t_interval_of_a_normal_mean_covers():
    rng = np.random.default_rng(1)
    covered = sum(t_interval(rng.normal(3.0, 2.0, 30))[1].contains(3.0) for _ in range(400))
    assert 0.92 <= covered / 400 <= 0.98
    m, iv = t_interval([1.0])
    assert m == 1.0
    assert not iv.finite


def test_paired_bootstrap_is_narrower_for_a_ratio_of_correlated_means():
    rng = np.random.default_rng(2)
    common = rng.lognormal(0, 0.5, 200)
    num, den = common * rng.lognormal(0, 0.1, 200), common * rng.lognormal(0, 0.1, 200)

    def ratio(a, b, axis=-1):
        return a.mean(axis=axis) / b.mean(axis=axis)

    paired = bootstrap_interval([num, den], ratio, paired=True, n_boot=999, seed=0)
    unpaired = bootstrap_interval([num, den], ratio, paired=False, n_boot=999, seed=0)
    assert paired.contains(1.0)
    assert paired.half_width < unpaired.half_width / 2
    assert "paired" in paired.method


def test_ols_slope_is_vectorised():
    x = np.log([1.0, 2.0, 4.0])
    y = np.stack([2 * x + 1, -x])
    slope, intercept = ols_slope(x, y)
    assert slope == pytest.approx([2.0, -1.0])
    assert intercept == pytest.approx([1.0, 0.0])
