"""The toolkit's statistics, in one place: bootstrap, t interval, least squares, Holm, verdicts.

Every interval a report prints comes from here, and every verdict from ``band_verdict`` (or,
for a family of hypothesis tests, ``rejection_verdict``; for a one-sided prediction such as
"above 1", ``bound_verdict``), so there is one method per job:

- ``bootstrap_interval``: ``scipy.stats.bootstrap`` with BCa (percentile where BCa is
  undefined, e.g. a constant sample), *paired* whenever the samples share their draws. The
  independent unit of every Monte Carlo here is the weight draw: inputs of one draw share its
  weights, and draw i of every size (or of two nets) comes from the same stream
  ``(seed, i)``, so a CNN's kernels, which have the same shape at every size, are the very
  same numbers (the per-draw means of the 16 and 32 pixel strided CNN correlate at about
  0.47; a strided and a pooled net at about 0.9). Draws with equal ids are resampled jointly.
- ``t_interval``: the mean of independent per-draw values.
- ``ols_slope``: least squares along the last axis, vectorised over bootstrap resamples.
- ``holm``: step-down adjusted p-values (family-wise error, any dependence).
- ``band_verdict``: consistent when the whole interval lies in ``predicted +- margin``,
  inconsistent when it misses that band, inconclusive otherwise or without an interval.
- ``binomial_interval``: a proportion (coverage, a false-verdict or detection rate) with its
  exact Clopper-Pearson interval.

Power laws. ``fit_power_law`` fits ``log E[Q]`` against ``log x`` through the per-x means of
the per-draw means; the 95% interval of the slope is the paired BCa bootstrap over draw ids.
It is calibrated from about 100 draws per size on (``tests/verify/test_stats.py`` measures
the coverage); with ~40 draws it under-covers (about 85%), as bootstrap intervals of skewed
means do. A prediction that holds up to a known factor (``||g||_inf``: the maximum of d
coordinates, see ``expected_max_abs_normal``) is fitted after dividing the means by that
factor (``correction``).

Finite-size scaling. ``fit_asymptotic_power_law`` fits
``log E[Q] = beta log x + alpha + c x^e`` (``e < 0``, e.g. -1/2 where a border's share of the
neurons falls like ``1/n = d^(-1/2)``): ``beta`` is the exponent the data imply once the
leading finite-size correction is removed. Three coefficients need at least
``ASYMPTOTIC_MIN_SIZES`` sizes (two degrees of freedom left to see the correction is right);
the interval is the same paired BCa bootstrap over draw ids. ``asymptotic_coefficients``
gives the same least squares for noise-free values (an exact curve).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from verify.results import Interval, Verdict

__all__ = [
    "ASYMPTOTIC_MIN_SIZES",
    "DEFAULT_LEVEL",
    "DEFAULT_N_BOOT",
    "AsymptoticFit",
    "Proportion",
    "SlopeFit",
    "asymptotic_coefficients",
    "band_verdict",
    "binomial_interval",
    "bootstrap_interval",
    "bound_verdict",
    "draw_means",
    "expected_max_abs_normal",
    "fit_asymptotic_power_law",
    "fit_power_law",
    "holm",
    "ols_slope",
    "power_law_constant",
    "rejection_verdict",
    "same_draws",
    "samples_to_settle",
    "slope_difference",
    "t_interval",
]

DEFAULT_LEVEL = 0.95
DEFAULT_N_BOOT = 2000
# Sizes a finite-size fit (three coefficients) needs: four would fit a wrong correction as
# well as the right one with a single residual degree of freedom.
ASYMPTOTIC_MIN_SIZES = 5


# ----------------------------------------------------------------------------- primitives


def ols_slope(logx: np.ndarray, logy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope and intercept of ``logy`` on ``logx`` along the last axis
    (vectorised over leading axes, e.g. bootstrap resamples)."""
    logx = np.asarray(logx, dtype=np.float64)
    logy = np.asarray(logy, dtype=np.float64)
    xc = logx - logx.mean()
    slope = (logy * xc).sum(-1) / (xc**2).sum()
    intercept = logy.mean(-1) - slope * logx.mean()
    return slope, intercept


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control under any dependence)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def t_interval(values: Sequence[float] | np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, Interval]:
    """Mean of independent values and its Student t interval (NaN bounds below two values)."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64).ravel()
    m = float(v.mean()) if v.size else math.nan
    if v.size < 2:
        return m, Interval(math.nan, math.nan, level, "t")
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return m, Interval(m - half, m + half, level, "t")


def bootstrap_interval(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    *,
    paired: bool,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    method: str = "BCa",
) -> Interval:
    """Bootstrap interval of ``statistic(*samples, axis=-1)`` (vectorised over resamples).

    ``paired``: value k of every sample comes from the same draw, and draws are resampled
    jointly (one index set for all samples). BCa by default; where BCa is undefined (a
    constant sample, too few distinct values) the percentile interval; NaN bounds when
    neither exists. Resampling is seeded by ``seed`` (the ``BOOTSTRAP`` stream of
    ``graphs.rng``).
    """
    from scipy import stats

    from graphs.rng import Stream, numpy_rng

    arrays = [np.asarray(s, dtype=np.float64) for s in samples]
    if any(a.size < 2 for a in arrays):
        return Interval(math.nan, math.nan, level, f"{method} bootstrap")
    methods = (method, "percentile") if method != "percentile" else ("percentile",)
    for m in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(
                arrays,
                statistic,
                n_resamples=int(n_boot),
                confidence_level=level,
                method=m,
                vectorized=True,
                paired=paired,
                rng=numpy_rng(Stream.BOOTSTRAP, seed),
            )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return Interval(
                lo, hi, level, f"{m} bootstrap" + (", paired over draws" if paired and len(arrays) > 1 else "")
            )
    return Interval(math.nan, math.nan, level, f"{method} bootstrap")


def band_verdict(interval: Interval, predicted: float, margin: float) -> Verdict:
    """The one verdict rule for an estimate against a prediction (module docstring)."""
    if not margin > 0:
        raise ValueError(f"margin must be positive, got {margin}")
    if not interval.finite:
        return Verdict.INCONCLUSIVE
    band_lo, band_hi = predicted - margin, predicted + margin
    if band_lo <= interval.low and interval.high <= band_hi:
        return Verdict.CONSISTENT
    if interval.high < band_lo or interval.low > band_hi:
        return Verdict.INCONSISTENT
    return Verdict.INCONCLUSIVE


def rejection_verdict(adjusted_pvalues: Sequence[float] | np.ndarray, alpha: float) -> Verdict:
    """A family of tests of a null that the theory predicts: inconsistent when any Holm-adjusted
    p-value is below ``alpha``, else consistent (the family-wise level is ``alpha``)."""
    p = np.asarray(adjusted_pvalues, dtype=np.float64)
    return Verdict.INCONSISTENT if (p < alpha).any() else Verdict.CONSISTENT


def bound_verdict(interval: Interval, bound: float, *, above: bool = True) -> Verdict:
    """The verdict rule for a one-sided prediction, ``estimate > bound`` (``< bound`` when
    ``above`` is False), such as "an order in eps above 1": consistent when the whole interval
    lies strictly on the predicted side, inconsistent when it lies strictly on the other side,
    inconclusive otherwise (the bound inside the interval) or without an interval."""
    if not interval.finite:
        return Verdict.INCONCLUSIVE
    low, high = (interval.low, interval.high) if above else (-interval.high, -interval.low)
    b = bound if above else -bound
    if low > b:
        return Verdict.CONSISTENT
    if high < b:
        return Verdict.INCONSISTENT
    return Verdict.INCONCLUSIVE


@dataclass(frozen=True)
class Proportion:
    """``successes`` out of ``trials`` with its exact (Clopper-Pearson) interval."""

    successes: int
    trials: int
    interval: Interval

    @property
    def estimate(self) -> float:
        return self.successes / self.trials

    def to_dict(self) -> dict:
        return {
            "successes": self.successes,
            "trials": self.trials,
            "estimate": self.estimate,
            "interval": self.interval.to_dict(),
        }


def binomial_interval(successes: int, trials: int, level: float = DEFAULT_LEVEL) -> Proportion:
    """A proportion and its exact Clopper-Pearson interval (``scipy.stats.binomtest``): the
    interval covers the true rate with probability at least ``level`` whatever the rate, also
    at 0 or ``trials`` successes, where a normal approximation collapses to a point."""
    from scipy import stats

    k, n = int(successes), int(trials)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"a proportion needs 0 <= successes <= trials and trials >= 1, got {k} of {n}")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return Proportion(k, n, Interval(float(ci.low), float(ci.high), level, "Clopper-Pearson"))


def expected_max_abs_normal(d: int | float | np.ndarray) -> np.ndarray | float:
    """``E max_{i <= d} |Z_i|`` for d independent standard normals, by quadrature.

    ``E max = int_0^inf 1 - P(|Z| <= t)^d dt`` with ``P(|Z| <= t) = 1 - erfc(t / sqrt 2)``;
    the integrand is evaluated as ``-expm1(d log1p(-erfc(t/sqrt 2)))`` so it stays accurate
    for d in the millions. It grows like ``sqrt(2 ln d)`` only asymptotically; between
    d = 3 * 32^2 and 3 * 256^2 its log-log slope differs from that of ``sqrt(ln d)`` by 0.004,
    a bias that more draws never remove.
    """
    from scipy import integrate, special

    def one(n: float) -> float:
        if n < 1:
            raise ValueError(f"the maximum of {n} variables is undefined")

        def integrand(t: float) -> float:
            return float(-np.expm1(n * np.log1p(-special.erfc(t / math.sqrt(2.0)))))

        centre = math.sqrt(2.0 * math.log(n)) if n > 1 else 1.0
        # Split where the integrand falls from 1 to 0, so quad sees both regimes.
        a, _ = integrate.quad(integrand, 0.0, centre, limit=200, epsabs=1e-12, epsrel=1e-10)
        b, _ = integrate.quad(integrand, centre, math.inf, limit=200, epsabs=1e-12, epsrel=1e-10)
        return a + b

    arr = np.asarray(d, dtype=np.float64)
    out = np.vectorize(one, otypes=[np.float64])(arr)
    return float(out) if out.ndim == 0 else out


# ----------------------------------------------------------------------------- power laws


@dataclass(frozen=True)
class SlopeFit:
    """A fitted power law ``E[Q] ~ C x^slope`` (times the ``correction`` factor when set).

    ``xs`` ascending; ``means``/``stderr``: mean of Q per x and its standard error over
    draws; ``draws``: weight draws per x; ``raw_slope``: slope of the uncorrected means;
    ``correction_values``: the factor each mean was divided by before fitting (ones when
    ``correction`` is None); ``paired``: whether draw ids were resampled jointly across x.
    """

    quantity: str
    x: str
    slope: float
    intercept: float
    interval: Interval
    xs: np.ndarray = field(repr=False)
    means: np.ndarray = field(repr=False)
    stderr: np.ndarray = field(repr=False)
    draws: np.ndarray = field(repr=False)
    raw_slope: float = math.nan
    correction: str | None = None
    correction_values: np.ndarray | None = field(default=None, repr=False)
    n_boot: int = DEFAULT_N_BOOT
    paired: bool = False

    @property
    def ci_low(self) -> float:
        return self.interval.low

    @property
    def ci_high(self) -> float:
        return self.interval.high

    def factor(self, x) -> np.ndarray:
        """The correction factor at ``x`` (1 without a correction)."""
        x = np.asarray(x, dtype=np.float64)
        if self.correction is None:
            return np.ones_like(x)
        from verify.theory import correction_factor

        return np.asarray(correction_factor(self.correction, x), dtype=np.float64)

    def predict(self, x) -> np.ndarray:
        """The fitted curve at ``x`` (correction factor included)."""
        x = np.asarray(x, dtype=np.float64)
        return np.exp(self.intercept) * x**self.slope * self.factor(x)

    def local_slopes(self) -> np.ndarray:
        """Slopes between consecutive x (point estimates, same correction as the fit)."""
        corrected = np.log(self.means) - np.log(self._corr())
        return np.diff(corrected) / np.diff(np.log(self.xs))

    def _corr(self) -> np.ndarray:
        return np.ones_like(self.means) if self.correction_values is None else self.correction_values


def draw_means(records: pd.DataFrame, quantity: str, x: str = "d") -> pd.DataFrame:
    """One value per (x, draw): the mean of ``quantity`` over the inputs of that draw."""
    sub = records[records["quantity"] == quantity]
    if sub.empty:
        raise ValueError(f"no records of quantity {quantity!r}")
    return sub.groupby([x, "draw"], sort=True)["value"].mean().reset_index()


def same_draws(ids: Sequence[np.ndarray]) -> bool:
    """Whether every group holds the same draw ids in the same order (then pair them)."""
    ids = [np.asarray(i) for i in ids]
    return all(np.array_equal(ids[0], i) for i in ids[1:])


@dataclass(frozen=True)
class _PerX:
    """What every power-law fit starts from: the per-draw means of one quantity grouped by x."""

    xs: np.ndarray
    samples: list[np.ndarray]
    paired: bool  # value k of every x is draw k's (draw_means sorts by (x, draw))
    correction: np.ndarray  # the factor the means are divided by (ones without one)

    @property
    def log_correction(self) -> np.ndarray:
        return np.log(self.correction)

    @property
    def means(self) -> np.ndarray:
        return np.array([s.mean() for s in self.samples])

    @property
    def counts(self) -> np.ndarray:
        return np.array([s.size for s in self.samples])

    @property
    def stderr(self) -> np.ndarray:
        return np.array([s.std(ddof=1) / math.sqrt(s.size) if s.size > 1 else math.nan for s in self.samples])


def _per_x(records: pd.DataFrame, quantity: str, x: str, correction: str | None, *, at_least: int, what: str) -> _PerX:
    per_draw = draw_means(records, quantity, x)
    grouped = list(per_draw.groupby(x, sort=True))
    if len(grouped) < at_least:
        words = {2: "two"}  # the messages read as before the fits shared this
        raise ValueError(f"{what} needs at least {words.get(at_least, at_least)} values of {x!r}, got {len(grouped)}")
    xs = np.array([v for v, _ in grouped], dtype=np.float64)
    samples = [g["value"].to_numpy(dtype=np.float64) for _, g in grouped]
    paired = same_draws([g["draw"].to_numpy() for _, g in grouped])
    if (xs <= 0).any() or any((s < 0).any() or s.mean() <= 0 for s in samples):
        raise ValueError(f"{quantity}: a power law needs positive {x}, non-negative values and positive means")
    corr = np.ones_like(xs)
    if correction is not None:
        from verify.theory import correction_factor

        corr = np.asarray(correction_factor(correction, xs), dtype=np.float64)
    return _PerX(xs, samples, paired, corr)


def fit_power_law(
    records: pd.DataFrame,
    quantity: str,
    x: str = "d",
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    correction: str | None = None,
    level: float = DEFAULT_LEVEL,
) -> SlopeFit:
    """Fit ``log E[quantity]`` against ``log x``; BCa bootstrap interval over draws.

    ``records`` are long-format (columns ``x, draw, quantity, value``; the inputs of one draw
    are averaged first). Needs two values of ``x`` at least; sizes with a single draw give
    no interval (NaN bounds). ``correction`` names a factor of ``verify.theory`` that the
    means are divided by before fitting.
    """
    px = _per_x(records, quantity, x, correction, at_least=2, what="fitting a slope")
    xs, samples, paired, logc = px.xs, px.samples, px.paired, px.log_correction
    means, counts, stderr, corr = px.means, px.counts, px.stderr, px.correction
    logx = np.log(xs)
    slope, intercept = ols_slope(logx, np.log(means) - logc)
    raw_slope, _ = ols_slope(logx, np.log(means))

    def statistic(*resampled, axis=-1):
        m = np.stack([np.log(r.mean(axis=axis)) for r in resampled], axis=-1)
        return ols_slope(logx, m - logc)[0]

    if counts.min() >= 2:
        interval = bootstrap_interval(samples, statistic, paired=paired, n_boot=n_boot, seed=seed, level=level)
    else:
        interval = Interval(math.nan, math.nan, level, "BCa bootstrap")
    return SlopeFit(
        quantity=quantity,
        x=x,
        slope=float(slope),
        intercept=float(intercept),
        interval=interval,
        xs=xs,
        means=means,
        stderr=stderr,
        draws=counts,
        raw_slope=float(raw_slope),
        correction=correction,
        correction_values=None if correction is None else corr,
        n_boot=int(n_boot),
        paired=paired,
    )


def _asymptotic_design(logx: np.ndarray, xs: np.ndarray, exponent: float) -> np.ndarray:
    return np.stack([logx, np.ones_like(logx), xs**exponent], axis=1)


def asymptotic_coefficients(xs, logy, exponent: float) -> np.ndarray:
    """Least squares of ``logy = beta log x + alpha + c x^exponent`` along the last axis of
    ``logy`` (vectorised over leading axes); returns ``(..., 3)``: beta, alpha, c."""
    xs = np.asarray(xs, dtype=np.float64)
    design = _asymptotic_design(np.log(xs), xs, exponent)
    return np.asarray(logy, dtype=np.float64) @ np.linalg.pinv(design).T


@dataclass(frozen=True)
class AsymptoticFit:
    """``E[Q] ~ C x^beta (1 + ...)``: ``log E[Q] = beta log x + alpha + c x^exponent`` fitted to
    the per-x means (divided by the ``correction`` factor when set).

    ``slope`` is beta, the exponent once the finite-size term ``c x^exponent`` is removed, with
    its paired BCa ``interval``; ``residuals``: log mean minus the fitted curve per x (their
    size against the means' standard errors says whether one correction term suffices).
    """

    quantity: str
    x: str
    exponent: float
    slope: float
    intercept: float
    amplitude: float
    interval: Interval
    xs: np.ndarray = field(repr=False)
    means: np.ndarray = field(repr=False)
    stderr: np.ndarray = field(repr=False)
    draws: np.ndarray = field(repr=False)
    residuals: np.ndarray = field(repr=False)
    correction: str | None = None
    n_boot: int = DEFAULT_N_BOOT
    paired: bool = False

    @property
    def ci_low(self) -> float:
        return self.interval.low

    @property
    def ci_high(self) -> float:
        return self.interval.high

    def predict(self, x) -> np.ndarray:
        """The fitted curve at ``x`` (correction factor included)."""
        x = np.asarray(x, dtype=np.float64)
        factor = np.ones_like(x)
        if self.correction is not None:
            from verify.theory import correction_factor

            factor = np.asarray(correction_factor(self.correction, x), dtype=np.float64)
        return np.exp(self.intercept + self.amplitude * x**self.exponent) * x**self.slope * factor


def fit_asymptotic_power_law(
    records: pd.DataFrame,
    quantity: str,
    x: str = "d",
    *,
    exponent: float = -0.5,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    correction: str | None = None,
    level: float = DEFAULT_LEVEL,
) -> AsymptoticFit:
    """Finite-size scaling: fit ``log E[quantity] = beta log x + alpha + c x^exponent``.

    Same records, per-draw means and paired BCa bootstrap over draw ids as ``fit_power_law``;
    needs ``ASYMPTOTIC_MIN_SIZES`` values of ``x`` at least (a ``ValueError`` otherwise) and a
    negative ``exponent`` (the correction must vanish as x grows).
    """
    if not exponent < 0:
        raise ValueError(f"the finite-size exponent must be negative, got {exponent}")
    px = _per_x(records, quantity, x, correction, at_least=ASYMPTOTIC_MIN_SIZES, what="a finite-size fit")
    xs, samples, paired, logc = px.xs, px.samples, px.paired, px.log_correction
    means, counts, stderr = px.means, px.counts, px.stderr
    logy = np.log(means) - logc
    beta, alpha, amp = asymptotic_coefficients(xs, logy, exponent)
    residuals = logy - _asymptotic_design(np.log(xs), xs, exponent) @ np.array([beta, alpha, amp])
    weights = np.linalg.pinv(_asymptotic_design(np.log(xs), xs, exponent))[0]

    def statistic(*resampled, axis=-1):
        m = np.stack([np.log(r.mean(axis=axis)) for r in resampled], axis=-1)
        return (m - logc) @ weights

    if counts.min() >= 2:
        interval = bootstrap_interval(samples, statistic, paired=paired, n_boot=n_boot, seed=seed, level=level)
    else:
        interval = Interval(math.nan, math.nan, level, "BCa bootstrap")
    return AsymptoticFit(
        quantity=quantity,
        x=x,
        exponent=float(exponent),
        slope=float(beta),
        intercept=float(alpha),
        amplitude=float(amp),
        interval=interval,
        xs=xs,
        means=means,
        stderr=stderr,
        draws=counts,
        residuals=residuals,
        correction=correction,
        n_boot=int(n_boot),
        paired=paired,
    )


def power_law_constant(
    records: pd.DataFrame,
    quantity: str,
    x: str = "d",
    *,
    slope: float,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, Interval]:
    """The constant C of ``E[quantity] = C x^slope`` at a given slope: the geometric mean over x
    of ``mean(x) / x^slope``, with the same paired BCa bootstrap over draws as the fits."""
    per_draw = draw_means(records, quantity, x)
    grouped = list(per_draw.groupby(x, sort=True))
    xs = np.array([v for v, _ in grouped], dtype=np.float64)
    samples = [g["value"].to_numpy(dtype=np.float64) for _, g in grouped]
    paired = same_draws([g["draw"].to_numpy() for _, g in grouped])
    if (xs <= 0).any() or any(s.mean() <= 0 for s in samples):
        raise ValueError(f"{quantity}: a power law needs positive {x} and positive means")
    shift = slope * np.log(xs)

    def statistic(*resampled, axis=-1):
        m = np.stack([np.log(r.mean(axis=axis)) for r in resampled], axis=-1)
        return np.exp((m - shift).mean(axis=-1))

    estimate = float(statistic(*samples))
    if min(s.size for s in samples) < 2:
        return estimate, Interval(math.nan, math.nan, level, "BCa bootstrap")
    return estimate, bootstrap_interval(samples, statistic, paired=paired, n_boot=n_boot, seed=seed, level=level)


def slope_difference(
    records_a: pd.DataFrame,
    records_b: pd.DataFrame,
    quantity: str,
    x: str = "d",
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, Interval]:
    """Power-law slope of ``quantity`` in ``records_a`` minus that in ``records_b`` (as
    ``fit_power_law`` fits them) and its BCa interval, paired over draw ids: the draws shared by
    every x of both record sets are resampled jointly (two arms trained from the same runs)."""
    a = draw_means(records_a, quantity, x)
    b = draw_means(records_b, quantity, x)
    xs = sorted(set(a[x]) & set(b[x]))
    if len(xs) < 2:
        raise ValueError(f"a slope difference needs two values of {x!r} common to both record sets")
    ids = set(a["draw"]) & set(b["draw"])
    for frame in (a, b):
        for v in xs:
            ids &= set(frame.loc[frame[x] == v, "draw"])
    ids = sorted(ids)

    def column(frame: pd.DataFrame, v) -> np.ndarray:
        sub = frame.loc[(frame[x] == v) & frame["draw"].isin(ids)].sort_values(by="draw")
        return sub["value"].to_numpy(dtype=np.float64)

    samples = [column(a, v) for v in xs] + [column(b, v) for v in xs]
    if any(s.mean() <= 0 for s in samples):
        raise ValueError(f"{quantity}: a power law needs positive means")
    logx = np.log(np.asarray(xs, dtype=np.float64))
    k = len(xs)

    def statistic(*resampled, axis=-1):
        m = np.stack([np.log(r.mean(axis=axis)) for r in resampled], axis=-1)
        return ols_slope(logx, m[..., :k])[0] - ols_slope(logx, m[..., k:])[0]

    estimate = float(statistic(*[s[None, :] for s in samples])[0])
    if len(ids) < 2:
        return estimate, Interval(math.nan, math.nan, level, "BCa bootstrap")
    return estimate, bootstrap_interval(samples, statistic, paired=True, n_boot=n_boot, seed=seed, level=level)


def samples_to_settle(
    interval: Interval, estimate: float, draws: int, predicted: float, margin: float, *, limit: float = 100.0
) -> int | None:
    """Draws per size that would likely settle an inconclusive verdict; None when it is
    settled, or when more than ``limit`` times the current draws would be needed (the
    estimate sits on the band's edge, or there is no interval).

    The interval's half-width shrinks like 1/sqrt(draws); the verdict settles once it is
    below the distance from the estimate to the nearer edge of the band.
    """
    if band_verdict(interval, predicted, margin) is not Verdict.INCONCLUSIVE:
        return None
    h = interval.half_width
    needed = abs(margin - abs(estimate - predicted))
    if not math.isfinite(h) or needed <= 0:
        return None
    factor = (h / needed) ** 2
    if factor > limit:
        return None
    return max(draws + 1, math.ceil(draws * factor - 1e-9))  # tolerate rounding in h / needed
