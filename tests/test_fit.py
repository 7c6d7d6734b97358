"""Power-law fits, bootstrap intervals over draws, verdicts and the log-log plot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from verify.fit import SlopeFit, draw_means, fit_power_law, samples_to_settle, verdict


def _synthetic(
    xs, slope, draws, inputs, *, sigma_draw=0.3, sigma_input=0.5, seed=0, scale=2.0, log_power=0.0, shared_draws=False
):
    """Long-format records with E[value] = scale * x^slope * (ln x)^log_power exactly.

    Each draw has a lognormal factor shared by its inputs (so inputs are not independent),
    each input a further lognormal factor; both have mean 1. ``shared_draws``: draw k has
    the same factor at every x, as CNN kernels of draw k are the same at every input size.
    """
    rng = np.random.default_rng(seed)
    frames = []
    common = rng.lognormal(-(sigma_draw**2) / 2, sigma_draw, size=(draws, 1))
    for x in xs:
        mean = scale * x**slope * math.log(x) ** log_power
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


def _fit(slope=0.5, lo=0.45, hi=0.55, draws=100) -> SlopeFit:
    xs = np.array([1.0, 2.0])
    return SlopeFit("q", "d", slope, 0.0, lo, hi, xs, np.ones(2), np.ones(2), np.array([draws, draws]))


def test_fit_recovers_a_known_slope():
    rec = _synthetic([100, 400, 1600, 6400], -0.5, 200, 2, seed=0)
    fit = fit_power_law(rec, "q", n_boot=1000, seed=0)
    assert fit.ci_low < -0.5 < fit.ci_high
    assert fit.ci_high - fit.ci_low < 0.1
    assert fit.slope == pytest.approx(-0.5, abs=0.03)
    assert list(fit.xs) == [100, 400, 1600, 6400]
    assert (fit.draws == 200).all()


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


def test_bootstrap_interval_covers_the_true_slope_about_95_percent():
    # With the draws the CLI uses (~100+) the BCa interval is calibrated; with few draws (~40)
    # it under-covers (about 0.85), as bootstrap intervals of skewed means do.
    covered = 0
    reps = 150
    for rep in range(reps):
        rec = _synthetic([50, 200, 800, 3200], 0.5, 128, 2, seed=100 + rep)
        fit = fit_power_law(rec, "q", n_boot=999, seed=rep)
        covered += fit.ci_low <= 0.5 <= fit.ci_high
    # nominal 0.95; binomial sd with 150 replicates is 1.8%: accept 0.89..0.99
    assert 0.89 <= covered / reps <= 0.99, covered / reps


def test_bootstrap_resamples_draw_ids_jointly_when_sizes_share_draws():
    # Draw k of every size shares one factor (common random numbers): the slope's spread is
    # much smaller than independent sizes would give. Resampling each size on its own ignores
    # that and covers the true slope nearly always (too wide); resampling draw ids jointly
    # is calibrated.
    covered = 0
    reps = 150
    for rep in range(reps):
        rec = _synthetic([50, 200, 800, 3200], 0.5, 128, 2, sigma_draw=0.6, sigma_input=0.3, seed=500 + rep, shared_draws=True)
        fit = fit_power_law(rec, "q", n_boot=999, seed=rep)
        assert fit.paired
        covered += fit.ci_low <= 0.5 <= fit.ci_high
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
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_log_correction_recovers_the_pure_power():
    rec = _synthetic([100, 1000, 10000, 100000], -0.5, 100, 2, seed=4, log_power=0.5)
    raw = fit_power_law(rec, "q", n_boot=500)
    corrected = fit_power_law(rec, "q", n_boot=500, log_power=0.5)
    assert corrected.ci_low < -0.5 < corrected.ci_high
    assert not raw.ci_low < -0.5 < raw.ci_high
    assert corrected.raw_slope == raw.slope
    assert corrected.predict(corrected.xs) == pytest.approx(np.exp(corrected.intercept) * corrected.xs**corrected.slope * np.log(corrected.xs) ** 0.5, rel=1e-12)


def test_other_x_columns_can_be_fitted():
    rec = _synthetic([1, 4, 16, 64], -0.5, 30, 1, seed=5, sigma_input=0.0).rename(columns={"d": "pool"})
    fit = fit_power_law(rec, "q", "pool", n_boot=300)
    assert fit.x == "pool"
    assert fit.ci_low < -0.5 < fit.ci_high


def test_fit_errors():
    rec = _synthetic([10], 1.0, 5, 1)
    with pytest.raises(ValueError):
        fit_power_law(rec, "q")
    with pytest.raises(ValueError):
        fit_power_law(_synthetic([10, 20], 1.0, 5, 1), "other")
    neg = _synthetic([10, 20], 1.0, 5, 1)
    neg.loc[0, "value"] = -1.0
    with pytest.raises(ValueError):
        fit_power_law(neg, "q")


def test_single_draw_gives_no_interval_and_an_inconclusive_verdict():
    fit = fit_power_law(_synthetic([10, 20, 40], 1.0, 1, 3), "q")
    assert math.isnan(fit.ci_low) and math.isnan(fit.ci_high)
    assert verdict(fit, 1.0, 0.05) == "inconclusive"


@pytest.mark.parametrize(
    "lo,hi,expected",
    [
        (0.46, 0.54, "consistent"),
        (0.45, 0.55, "consistent"),  # the band's edges belong to it
        (0.30, 0.44, "inconsistent"),
        (0.56, 0.70, "inconsistent"),
        (0.40, 0.52, "inconclusive"),
        (0.48, 0.60, "inconclusive"),
        (0.40, 0.60, "inconclusive"),  # wider than the band
        (0.55, 0.60, "inconclusive"),  # touches the band
    ],
)
def test_verdict_logic(lo, hi, expected):
    assert verdict(_fit(lo=lo, hi=hi, slope=(lo + hi) / 2), 0.5, 0.05) == expected


def test_verdict_rejects_non_positive_margin():
    with pytest.raises(ValueError):
        verdict(_fit(), 0.5, 0.0)


def test_samples_to_settle():
    # slope on the prediction, CI half-width 0.08, band half-width 0.05: (0.08/0.05)^2 = 2.56x the draws
    assert samples_to_settle(_fit(slope=0.5, lo=0.42, hi=0.58, draws=100), 0.5, 0.05) == 256
    # slope outside the band by 0.02, half-width 0.04: (0.04/0.02)^2 = 4x
    assert samples_to_settle(_fit(slope=0.57, lo=0.53, hi=0.61, draws=50), 0.5, 0.05) == 200
    assert samples_to_settle(_fit(lo=0.46, hi=0.54), 0.5, 0.05) is None  # already settled
    assert samples_to_settle(_fit(slope=0.55, lo=0.5, hi=0.6), 0.5, 0.05) is None  # on the edge


def test_loglog_plot_has_one_panel_per_fit(tmp_path):
    from verify.plots import loglog_plot
    from verify.reporting import atomic_save_figure

    rec = pd.concat([_synthetic([10, 100, 1000], s, 10, 2, seed=i).assign(quantity=f"q{i}") for i, s in enumerate([0.5, 0.0, -0.5])])
    fits = [fit_power_law(rec, f"q{i}", n_boot=200) for i in range(3)]
    fig = loglog_plot(fits, predicted={"q0": 0.5, "q1": 0.0}, verdicts={"q0": "consistent"}, records=rec, title="t", ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in visible)
    assert "consistent" in visible[0].get_title()
    # fitted and predicted lines in the first panel, only the fitted one in the third
    assert len(visible[0].get_lines()) >= 2 and len(visible[2].get_lines()) >= 1
    path = atomic_save_figure(fig, tmp_path / "p.png")
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError):
        loglog_plot([])
