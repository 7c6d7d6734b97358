"""Theorems 10 and 11: exact (H) values of pooled nets, the sweep's specs, and the Monte Carlo slope."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest

from graphs.errors import SpecError
from graphs.moments import predicted_logit_grad_sq
from graphs.spec import build_spec
from verify.commands.pooling import pooling_setup, ratio_interval
from verify.engine import measure
from verify.fit import fit_power_law, verdict
from verify.options import add_arch_arguments


def _args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arch_arguments(parser, default_arch="avgpool-cnn")
    args = parser.parse_args([])
    defaults = dict(pools="1,2,4", dim=32)
    for k, v in {**defaults, **kw}.items():
        setattr(args, k, v)
    return args


@pytest.mark.parametrize("padding", ["zeros", "circular", "reflect"])
def test_h_value_of_the_sweep_is_two_over_prod_a(padding):
    """With E[w^2] = 2/in-degree, every padding gives exactly 2/prod a_i: slope -1/2 for the norm."""
    setup = pooling_setup(_args(padding=padding, channels=2, strides="1,2,2"))
    values = np.array([predicted_logit_grad_sq(s) for s in setup.sweep])
    assert np.allclose(values * np.array(setup.prod_a), 2.0, rtol=1e-12, atol=0)


def test_sweep_varies_only_the_first_window():
    setup = pooling_setup(_args(channels=2, strides="1,2,2,2", pools="1,2,4", dim=64))
    assert setup.windows == [(1, 2, 2), (2, 2, 2), (4, 2, 2)]
    assert setup.prod_a == [16, 64, 256]
    assert setup.pooled_index == 1 and setup.pooled is setup.sweep[1]
    assert setup.strided.family == "strided-cnn" and setup.strided.options["strides"] == (1, 2, 2, 2)


def test_pool_windows_option_sets_the_other_windows():
    setup = pooling_setup(_args(channels=2, strides="1,2,2", pools="1,2", pool_windows="2,4", dim=32))
    assert setup.windows == [(1, 4), (2, 4)]
    assert setup.pooled_index is None  # pools = strides is not in the sweep: measured on its own


def test_a_window_that_does_not_fit_is_a_spec_error():
    with pytest.raises(SpecError, match="--pools 3"):
        pooling_setup(_args(channels=2, strides="1,2,2", pools="1,3", dim=32))


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
    r, lo, hi = ratio_interval(num, den, n_boot=2000, seed=1)
    assert r == pytest.approx(num.mean() / den.mean(), rel=1e-12)
    # delta method: relative s.e. of a ratio of independent means = sqrt(cv_num^2/n + cv_den^2/n)
    rel_se = math.sqrt((num.std() / num.mean()) ** 2 / num.size + (den.std() / den.mean()) ** 2 / den.size)
    assert lo < r < hi
    assert (hi - lo) / r == pytest.approx(2 * 1.96 * rel_se, rel=0.15)


def test_paired_ratio_interval_uses_the_pairing():
    """Draw i of the strided and the pooled net shares inputs and weights: paired resampling.

    For correlated pairs the delta-method s.e. of the ratio uses the per-draw difference of
    relative deviations; the independent bootstrap ignores the covariance and is far wider."""
    rng = np.random.default_rng(2)
    common = rng.exponential(1.0, 4000)
    num = 0.25 * common + rng.exponential(0.02, 4000)
    den = common + rng.exponential(0.08, 4000)
    r, lo, hi = ratio_interval(num, den, n_boot=2000, seed=1, paired=True)
    _, lo_ind, hi_ind = ratio_interval(num, den, n_boot=2000, seed=1)
    rel_se = np.std(num / num.mean() - den / den.mean()) / math.sqrt(num.size)
    assert lo < r < hi
    assert (hi - lo) / r == pytest.approx(2 * 1.96 * rel_se, rel=0.15)
    assert (hi_ind - lo_ind) > 3 * (hi - lo)


def test_monte_carlo_pooling_slope_is_minus_one_half():
    """Fixed seed, circular padding (H3 exact): the slope of E||d_x f_k||_2 against prod a_i.

    H1 fails mildly for pooled nets (Monte Carlo exceeds Eq. 13 by a few % that grow with the
    window), so the slope sits near -0.49; the band is the command's default margin."""
    setup = pooling_setup(_args(channels=8, strides="1,2,2", pools="1,2,4", padding="circular"))
    frames = []
    for spec, pa in zip(setup.sweep, setup.prod_a):
        rec = measure([spec], samples=300, batch=2, seed=0, progress=False)
        frames.append(rec[rec["quantity"] == "logit_grad_l2"].assign(prod_a=pa))
    import pandas as pd

    fit = fit_power_law(pd.concat(frames), "logit_grad_l2", "prod_a", n_boot=500, seed=0)
    assert abs(fit.slope + 0.5) < 0.03
    assert verdict(fit, -0.5, 0.05) == "consistent", fit
