"""Theorems 10 and 11: the config's nets, exact (H) values, the ratio interval and the check itself."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graphs.errors import InputError, SpecError
from graphs.moments import predicted_logit_grad_sq
from graphs.spec import build_spec
from verify.checks.pooling import DEFAULT_CHANNELS, DEFAULT_DRAWS, PoolingConfig, check_pooling, ratio_interval
from verify.results import Verdict

SMALL = {"dim": 32, "pools": (1, 2, 4), "channels": 8, "strides": (1, 2, 2), "batch": 2, "draws": 24, "n_boot": 500}


@pytest.fixture(scope="module")
def small():
    return check_pooling(PoolingConfig(**SMALL))


def test_defaults():
    cfg = PoolingConfig()
    assert (cfg.dim, cfg.pools, cfg.channels, cfg.draws, cfg.batch) == (128, (1, 2, 4, 8), 16, 256, 4)
    assert DEFAULT_CHANNELS == 16
    assert DEFAULT_DRAWS == 256


@pytest.mark.parametrize("padding", ["zeros", "circular", "reflect"])
def test_h_value_of_the_sweep_is_two_over_prod_a(padding):
    """With E[w^2] = 2/in-degree, every padding gives exactly 2/prod a_i: slope -1/2 for the norm."""
    setup = PoolingConfig(dim=32, pools=(1, 2, 4), padding=padding, channels=2, strides=(1, 2, 2)).setup
    values = np.array([predicted_logit_grad_sq(s) for s in setup.sweep])
    assert np.allclose(values * np.array(setup.prod_a), 2.0, rtol=1e-12, atol=0)


def test_sweep_varies_only_the_first_window():
    setup = PoolingConfig(dim=64, pools=(1, 2, 4), channels=2, strides=(1, 2, 2, 2)).setup
    assert setup.windows == ((1, 2, 2), (2, 2, 2), (4, 2, 2))
    assert setup.prod_a == (16, 64, 256)
    assert setup.pooled_index == 1
    assert setup.pooled is setup.sweep[1]
    assert setup.strided.family == "strided-cnn"
    assert setup.strided.options["strides"] == (1, 2, 2, 2)


def test_pool_windows_set_the_other_windows():
    setup = PoolingConfig(dim=32, pools=(1, 2), channels=2, strides=(1, 2, 2), pool_windows=(2, 4)).setup
    assert setup.windows == ((1, 4), (2, 4))
    assert setup.pooled_index is None  # pools = strides is not in the sweep: measured on its own


def test_a_window_that_does_not_fit_is_a_spec_error():
    with pytest.raises(SpecError, match="--pools 3 at --dims 32"):
        PoolingConfig(dim=32, pools=(1, 3), channels=2, strides=(1, 2, 2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pools": (2,)}, "at least two windows"),
        ({"pools": (1, 1)}, "distinct"),
        ({"pools": (0, 1)}, "positive"),
        ({"dim": 0}, "--dims"),
        ({"draws": 1}, "--draws"),
        ({"batch": 0}, "--batch"),
        ({"seed": -1}, "--seed"),
        ({"margin": 0.0}, "--margin"),
        ({"n_boot": 10}, "--n-boot"),
        ({"pool_windows": (2,)}, "--pool-windows gives 1 window(s) for 2 strided layer(s)"),
        ({"strides": (1, 1)}, "no pooling layer"),
    ],
)
def test_bad_config_is_one_line_input_error(kwargs, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        PoolingConfig(**{"dim": 32, "channels": 2, "strides": (1, 2, 2), **kwargs})
    assert "\n" not in str(info.value)


def test_theorem11_h_ratio_is_one_over_prod_sqrt_a():
    for padding in ("zeros", "circular"):
        strided = build_spec("strided-cnn", 32, channels=3, padding=padding)
        pooled = build_spec("avgpool-cnn", 32, channels=3, padding=padding)
        ratio = math.sqrt(predicted_logit_grad_sq(pooled) / predicted_logit_grad_sq(strided))
        assert ratio == pytest.approx(1 / 32, rel=1e-12)


def test_ratio_interval_covers_a_known_ratio():
    rng = np.random.default_rng(0)
    num = rng.exponential(2.0, 4000)
    den = rng.exponential(8.0, 4000)
    r, iv = ratio_interval(num, den, paired=False, n_boot=2000, seed=1)
    assert r == pytest.approx(num.mean() / den.mean(), rel=1e-12)
    # delta method: relative s.e. of a ratio of independent means = sqrt(cv_num^2/n + cv_den^2/n)
    rel_se = math.sqrt((num.std() / num.mean()) ** 2 / num.size + (den.std() / den.mean()) ** 2 / den.size)
    assert iv.low < r < iv.high
    assert iv.method == "BCa bootstrap"
    assert (iv.high - iv.low) / r == pytest.approx(2 * 1.96 * rel_se, rel=0.15)


def test_paired_ratio_interval_uses_the_pairing():
    """Draw i of the strided and the pooled net shares inputs and weights: paired resampling.

    For correlated pairs the delta-method s.e. of the ratio uses the per-draw difference of
    relative deviations; the independent bootstrap ignores the covariance and is far wider."""
    rng = np.random.default_rng(2)
    common = rng.exponential(1.0, 4000)
    num = 0.25 * common + rng.exponential(0.02, 4000)
    den = common + rng.exponential(0.08, 4000)
    r, iv = ratio_interval(num, den, paired=True, n_boot=2000, seed=1)
    _, ind = ratio_interval(num, den, paired=False, n_boot=2000, seed=1)
    rel_se = np.std(num / num.mean() - den / den.mean()) / math.sqrt(num.size)
    assert iv.low < r < iv.high
    assert iv.method == "BCa bootstrap, paired over draws"
    assert (iv.high - iv.low) / r == pytest.approx(2 * 1.96 * rel_se, rel=0.15)
    assert (ind.high - ind.low) > 3 * (iv.high - iv.low)


def test_check_result_claims_and_records(small):
    r = small
    assert [c.name for c in r.claims] == ["logit_grad_l2", "logit_grad_l2_sq", "second_moments", "theorem11_ratio"]
    # fixed seed: the verdicts of this small zero-padded net
    assert [c.verdict for c in r.claims] == [
        Verdict.CONSISTENT,
        Verdict.CONSISTENT,
        Verdict.INCONCLUSIVE,
        Verdict.INCONCLUSIVE,
    ]
    cols = list(r.records.columns)
    assert cols == ["arch", "dim", "d", "draw", "input", "quantity", "net", "window", "prod_a", "value"]
    assert set(r.records["net"]) == {"sweep", "strided"}  # pools = strides is the sweep's k = 2
    assert set(r.records["quantity"]) == {"logit_grad_l2", "logit_grad_l2_sq"}
    sweep = r.records[(r.records["net"] == "sweep") & (r.records["quantity"] == "logit_grad_l2")]
    assert len(sweep) == 3 * SMALL["draws"] * SMALL["batch"]
    sq = r.records[r.records["quantity"] == "logit_grad_l2_sq"]["value"].to_numpy()
    norm = r.records[r.records["quantity"] == "logit_grad_l2"]["value"].to_numpy()
    assert np.array_equal(sq, norm**2)
    # the squared norm's band is twice the norm's
    assert r.norm.margin == 0.05
    assert r.squared.margin == 0.1
    assert r.h3_fraction > 0
    assert "H3" in r.norm.claim.hypotheses_broken
    # exact (H) slopes by least squares: -1/2 with 2/in-degree
    assert r.norm.h_slope == pytest.approx(-0.5, abs=1e-12)
    assert r.squared.h_slope == pytest.approx(-1.0, abs=1e-12)
    assert r.norm.fit.paired
    assert r.norm.fit.interval.method == "BCa bootstrap, paired over draws"


def test_theorem11_one_claim_one_rule(small):
    t = small.theorem11
    assert t.prod_a == 16
    assert t.predicted == pytest.approx(0.25)
    assert t.h_ratio_he == pytest.approx(0.25, rel=1e-12)
    assert t.paired
    assert t.interval.low <= t.ratio <= t.interval.high
    assert t.band == pytest.approx((0.25 * math.exp(-0.05), 0.25 * math.exp(0.05)))
    # the verdict is the band on the ratio: recompute it from the interval
    inside = t.band[0] <= t.interval.low and t.interval.high <= t.band[1]
    outside = t.interval.high < t.band[0] or t.interval.low > t.band[1]
    expected = Verdict.CONSISTENT if inside else Verdict.INCONSISTENT if outside else Verdict.INCONCLUSIVE
    assert t.claim.verdict is expected
    assert t.claim.estimate == t.ratio
    assert t.claim.predicted == t.predicted
    assert t.pooled_moments is small.second_moments[1]


def test_second_moments_mean_is_paired_over_windows(small):
    mean = small.second_moments_mean
    assert mean.paired
    assert mean.correlation[0] > 0.5
    rel = [c.rel_init for c in small.second_moments]
    assert mean.estimate == pytest.approx(np.mean(rel), rel=1e-12)
    assert small.second_moments_claim.estimate == mean.estimate


def test_stored_records_give_the_same_result(small):
    again = check_pooling(small.config, records=small.records)
    assert [c.estimate for c in again.claims] == [c.estimate for c in small.claims]
    assert [c.interval for c in again.claims] == [c.interval for c in small.claims]


@pytest.mark.slow
def test_monte_carlo_pooling_slope_is_minus_one_half():
    """Fixed seed, circular padding (H3 exact): the slope of E||d_x f_k||_2 against prod a_i.

    H1 fails mildly for pooled nets (Monte Carlo exceeds Eq. 13 by a few % that grow with the
    window), so the slope sits near -0.49; the band is the command's default margin."""
    cfg = PoolingConfig(
        dim=32, pools=(1, 2, 4), channels=8, strides=(1, 2, 2), padding="circular", draws=300, batch=2, n_boot=500
    )
    r = check_pooling(cfg)
    assert abs(r.norm.fit.slope + 0.5) < 0.03
    assert r.norm.claim.verdict is Verdict.CONSISTENT, r.norm.claim
    assert r.h3_fraction == 0.0
    assert r.norm.claim.hypotheses_broken == ()
