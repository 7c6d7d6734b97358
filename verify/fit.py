"""Power-law fits with bootstrap confidence intervals, and verdicts against a predicted slope.

The slope of ``log E[Q]`` against ``log x`` (x = d by default) is fitted by least squares
through the per-size means. Its 95% confidence interval comes from a bootstrap that
resamples *weight draws*: the inputs of one draw share its weights, so they are not
independent samples and are first averaged into one value per draw.

Draw i of every size comes from the same stream ``generator_for(seed, i)``, so draws with
the same id are NOT independent across sizes: a CNN's convolution kernels have the same
shape at every input size, hence the very same numbers (measured: the per-draw means of
the 16 and 32 pixel strided CNN correlate at about 0.47). The independent unit is the draw
id, so when every size holds the same draw ids the bootstrap resamples ids jointly across
sizes (``paired=True``); otherwise (draw ids that differ between sizes) it resamples each
size on its own. ``scipy.stats.bootstrap`` does both (BCa interval). The interval is
calibrated from about 100 draws per size on (tests/test_fit.py measures 95% coverage with
128); with ~40 draws it under-covers (about 85%), as bootstrap intervals of skewed means do.

Some predictions hold up to a logarithmic factor (``||g||_inf`` ~ sqrt(log d) / sqrt(d), the
maximum of d roughly Gaussian coordinates of size 1/sqrt(d)); ``log_power`` divides the means
by ``(ln x)^log_power`` before fitting so the pure power can be compared with the theorem.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "VERDICTS",
    "SlopeFit",
    "draw_means",
    "fit_power_law",
    "verdict",
    "interval_verdict",
    "ols_slope",
    "samples_to_settle",
]

VERDICTS = ("consistent", "inconsistent", "inconclusive")


@dataclass(frozen=True)
class SlopeFit:
    """A fitted power law ``E[Q] ~ C * x^slope`` (times ``(ln x)^log_power`` when set).

    ``xs``: the x values (ascending); ``means``/``stderr``: mean of Q per x and its standard
    error over draws; ``draws``: number of weight draws per x; ``raw_slope``: the slope of the
    uncorrected means (equal to ``slope`` when ``log_power`` is 0); ``paired``: whether the
    bootstrap resampled draw ids jointly across x.
    """

    quantity: str
    x: str
    slope: float
    intercept: float
    ci_low: float
    ci_high: float
    xs: np.ndarray = field(repr=False)
    means: np.ndarray = field(repr=False)
    stderr: np.ndarray = field(repr=False)
    draws: np.ndarray = field(repr=False)
    raw_slope: float = math.nan
    log_power: float = 0.0
    level: float = 0.95
    n_boot: int = 2000
    paired: bool = False  # the bootstrap resampled draw ids jointly across x (module docstring)

    @property
    def ci_half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    def predict(self, x) -> np.ndarray:
        """The fitted curve at ``x`` (log factor included)."""
        x = np.asarray(x, dtype=np.float64)
        return np.exp(self.intercept) * x**self.slope * np.log(x) ** self.log_power


def draw_means(records: pd.DataFrame, quantity: str, x: str = "d") -> pd.DataFrame:
    """One value per (x, draw): the mean of ``quantity`` over the inputs of that draw."""
    if quantity not in set(records["quantity"]):
        raise ValueError(f"no records of quantity {quantity!r}")
    sub = records[records["quantity"] == quantity]
    return sub.groupby([x, "draw"], sort=True)["value"].mean().reset_index()


def ols_slope(logx: np.ndarray, logy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope and intercept along the last axis (vectorised over leading axes)."""
    xc = logx - logx.mean()
    slope = (logy * xc).sum(-1) / (xc**2).sum()
    intercept = logy.mean(-1) - slope * logx.mean()
    return slope, intercept


def fit_power_law(
    records: pd.DataFrame,
    quantity: str,
    x: str = "d",
    *,
    n_boot: int = 2000,
    seed: int = 0,
    log_power: float = 0.0,
    level: float = 0.95,
) -> SlopeFit:
    """Fit ``log E[quantity]`` against ``log x`` by least squares; bootstrap CI over draws.

    ``records`` are long-format (columns ``x, draw, quantity, value``; several inputs per draw
    are averaged first). Needs at least two x values; sizes with a single draw give no CI
    (nan bounds). The bootstrap is seeded by ``seed``.
    """
    per_draw = draw_means(records, quantity, x)
    grouped = list(per_draw.groupby(x, sort=True))
    groups = [(float(v), g["value"].to_numpy(dtype=np.float64)) for v, g in grouped]
    # draw_means sorts by (x, draw), so equal id arrays mean value k of every size is draw k's.
    ids = [g["draw"].to_numpy() for _, g in grouped]
    paired = all(np.array_equal(ids[0], i) for i in ids[1:])
    if len(groups) < 2:
        raise ValueError(f"fitting a slope needs at least two values of {x!r}, got {len(groups)}")
    xs = np.array([v for v, _ in groups])
    samples = [s for _, s in groups]
    # A draw can be exactly 0 (every ReLU path dead in a narrow net); only the means need logs.
    if (xs <= 0).any() or any((s < 0).any() or s.mean() <= 0 for s in samples):
        raise ValueError(f"{quantity}: a power law needs positive {x}, non-negative values and positive means")
    if log_power and (xs <= 1).any():
        raise ValueError(f"a log correction needs {x} > 1")
    means = np.array([s.mean() for s in samples])
    counts = np.array([s.size for s in samples])
    stderr = np.array([s.std(ddof=1) / math.sqrt(s.size) if s.size > 1 else math.nan for s in samples])
    logx = np.log(xs)
    correction = log_power * np.log(logx) if log_power else np.zeros_like(logx)
    slope, intercept = ols_slope(logx, np.log(means) - correction)
    raw_slope, _ = ols_slope(logx, np.log(means))

    def statistic(*resampled, axis=-1):
        m = np.stack([np.log(r.mean(axis=axis)) for r in resampled], axis=-1)
        return ols_slope(logx, m - correction)[0]

    lo = hi = math.nan
    if counts.min() >= 2:
        lo, hi = _bootstrap_ci(samples, statistic, n_boot=n_boot, seed=seed, level=level, paired=paired)
    return SlopeFit(
        quantity=quantity,
        x=x,
        slope=float(slope),
        intercept=float(intercept),
        ci_low=lo,
        ci_high=hi,
        xs=xs,
        means=means,
        stderr=stderr,
        draws=counts,
        raw_slope=float(raw_slope),
        log_power=float(log_power),
        level=level,
        n_boot=n_boot,
        paired=paired,
    )


def _bootstrap_ci(samples, statistic, *, n_boot: int, seed: int, level: float, paired: bool) -> tuple[float, float]:
    """BCa interval; the percentile interval when BCa is undefined (e.g. a constant sample).

    ``paired``: resample one set of indices for all samples (draw k of every size together)."""
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(
                samples,
                statistic,
                n_resamples=n_boot,
                confidence_level=level,
                method=method,
                vectorized=True,
                paired=paired,
                rng=np.random.default_rng(seed),
            )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return lo, hi
    return math.nan, math.nan


def verdict(fit: SlopeFit, predicted: float, margin: float) -> str:
    """``consistent`` when the whole CI lies in ``predicted +- margin``, ``inconsistent`` when it
    misses that band entirely, ``inconclusive`` otherwise (or when there is no CI)."""
    return interval_verdict(fit.ci_low, fit.ci_high, predicted, margin)


def interval_verdict(lo: float, hi: float, predicted: float, margin: float) -> str:
    """The verdict rule of ``verdict`` for any interval ``[lo, hi]`` of an exponent."""
    if margin <= 0:
        raise ValueError(f"margin must be positive, got {margin}")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    band_lo, band_hi = predicted - margin, predicted + margin
    if band_lo <= lo and hi <= band_hi:
        return "consistent"
    if hi < band_lo or lo > band_hi:
        return "inconsistent"
    return "inconclusive"


def samples_to_settle(fit: SlopeFit, predicted: float, margin: float, *, limit: float = 100.0) -> int | None:
    """Draws per size that would likely settle an inconclusive verdict; None if it is settled,
    or if more than ``limit`` times the current draws would be needed (the slope sits on the
    band's edge, or there is no CI).

    The CI half-width shrinks like 1/sqrt(draws); the verdict settles once it is below the
    distance from the fitted slope to the nearer edge of the band.
    """
    if verdict(fit, predicted, margin) != "inconclusive":
        return None
    h = fit.ci_half_width
    needed = abs(margin - abs(fit.slope - predicted))
    n = int(fit.draws.min())
    if not math.isfinite(h) or needed <= 0:
        return None
    factor = (h / needed) ** 2
    if factor > limit:
        return None
    return max(n + 1, math.ceil(n * factor - 1e-9))  # tolerate rounding in h / needed
