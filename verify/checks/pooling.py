"""Theorems 10 and 11: average pooling dampens input gradients.

Theorem 10: if every path crosses average-pooling nodes of degrees a_1..a_n (constant weights
1/a_i), ``||d_x f_k||_2 ~ 1/prod sqrt(a_i)``. ``check_pooling(config)`` varies the window k of
the *first* pooling layer of ``avgpool-cnn`` (a = k^2, the other layers unchanged) at one
input size, fits the slope of ``E||d_x f_k||_2`` against ``prod a_i`` (predicted -1/2) and of
its square (-1), and puts the exact (H) values of Eq. 13 (``graphs.moments``) beside the
Monte Carlo ones: both the slope they imply and, per window, the agreement
(``verify.checks.second_moments``).

Theorem 11 (our reading of Appendix B): the strided net against the same net with every
stride s replaced by ``conv(stride 1) -> ReLU -> avgpool(s)``: the ratio pooled/strided of
``E||d_x f_k||_2`` is predicted to be ``1/prod sqrt(a_i) = 1/prod s_i``. The prediction is a
factor, not a rate, so it is judged on the ratio itself: consistent when the ratio's whole
interval lies within a factor ``exp(+-margin)`` of the prediction. (Reading the ratio as
``prod a^e`` and putting the slope band on e would allow a factor ``prod a^(+-margin)``,
+-41% at prod a = 1024, far wider than any Monte Carlo interval, so it could not fail.)

Draw i of every net uses the streams ``(seed, i)``: the inputs and, the convolution kernels
having the same shapes in every net, the weights are the same numbers, so per-draw values of
different nets are strongly correlated and every interval resamples draw ids jointly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from graphs.errors import InputError
from graphs.families import PAPER_STRIDES
from graphs.spec import AvgPool2d, Spec, build_spec
from verify.checks.common import check_fit, check_sampling
from verify.checks.second_moments import (
    QUANTITY,
    RelativeDifference,
    SecondMomentAgreement,
    agreement_claim,
    exact_second_moments,
    mean_relative_difference,
    per_draw_norms,
    per_draw_squares,
    second_moment_agreement,
)
from verify.progress import Progress, as_progress
from verify.results import Claim, Interval, Verdict
from verify.stats import (
    SlopeFit,
    band_verdict,
    bootstrap_interval,
    fit_power_law,
    ols_slope,
    same_draws,
    samples_to_settle,
)
from verify.theory import THEOREM10_SLOPE, THEOREM10_SQ_SLOPE, theorem11_ratio

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_CHANNELS",
    "DEFAULT_DIM",
    "DEFAULT_DRAWS",
    "DEFAULT_POOLS",
    "SQUARED",
    "PoolingConfig",
    "PoolingResult",
    "PoolingSetup",
    "SlopeResult",
    "Theorem11Result",
    "check_pooling",
    "measure_pooling",
    "ratio_interval",
]

DEFAULT_DIM = 128
DEFAULT_POOLS = (1, 2, 4, 8)
# Theorem 10 does not depend on the width, nor does the exact (H) value; at 128 px one draw
# (4 inputs) of the 64-channel net costs about 1 s on 2 CPU cores, of the 16-channel one ~0.05 s.
DEFAULT_CHANNELS = 16
# The per-draw squared norm is right-skewed (coefficient of variation 0.6-0.8 for the pooled
# nets) and the bootstrap intervals are calibrated from about 100 draws on (verify.stats):
# with 64 draws the default command read the pooled net +42% above Eq. 13, with 256 +31%
# (the first 64 draws' means sit 3-9% above those of all 256). The default command then
# costs ~90 s of CPU time: about a minute on 2 idle cores, 2.5 minutes on 2 loaded ones.
DEFAULT_DRAWS = 256
DEFAULT_BATCH = 4
SQUARED = "logit_grad_l2_sq"


def _pool_windows(spec: Spec) -> tuple[int, ...]:
    return tuple(layer.window for layer in spec.layers if isinstance(layer, AvgPool2d))


@dataclass(frozen=True)
class PoolingSetup:
    """Every net of one run, built (hence validated) from the config before any Monte Carlo."""

    windows: tuple[tuple[int, ...], ...]  # pooling windows of each swept net
    sweep: tuple[Spec, ...]
    prod_a: tuple[int, ...]
    strided: Spec
    pooled: Spec  # pools = strides (Theorem 11)
    pooled_index: int | None  # position of ``pooled`` in ``sweep`` when it is one of them


@dataclass(frozen=True)
class PoolingConfig:
    """What to sample: ``avgpool-cnn`` at side ``dim`` with the first window in ``pools``.

    ``pool_windows``: every pooling window in order (default: each stride > 1); the first is
    replaced by each value of ``pools``. The strided net of Theorem 11 has the same size,
    channels, strides, kernel and padding.
    """

    dim: int = DEFAULT_DIM
    pools: tuple[int, ...] = DEFAULT_POOLS
    channels: int = DEFAULT_CHANNELS
    strides: tuple[int, ...] = PAPER_STRIDES
    kernel: int = 3
    padding: str = "zeros"
    pool_windows: tuple[int, ...] | None = None
    num_classes: int = 10
    draws: int = DEFAULT_DRAWS
    batch: int = DEFAULT_BATCH
    seed: int = 0
    margin: float = 0.05
    n_boot: int = 2000
    setup: PoolingSetup = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:

        pools = tuple(int(k) for k in self.pools)
        object.__setattr__(self, "pools", pools)
        object.__setattr__(self, "strides", tuple(self.strides))
        if self.pool_windows is not None:
            object.__setattr__(self, "pool_windows", tuple(self.pool_windows))
        if any(k < 1 for k in pools):
            raise InputError(f"--pools: windows must be positive, got {','.join(map(str, pools))}")
        if len(set(pools)) != len(pools):
            raise InputError(f"--pools: windows must be distinct, got {','.join(map(str, pools))}")
        if len(pools) < 2:
            raise InputError(
                f"--pools: give at least two windows to fit a slope, e.g. --pools 1,2,4,8; got {','.join(map(str, pools))}"
            )
        if self.dim < 1:
            raise InputError(f"--dims: {self.dim} is not a positive image side; give e.g. --dims 128")
        check_sampling(self.draws, self.batch, self.seed)
        check_fit(self.margin, self.n_boot, example=0.05)
        object.__setattr__(self, "setup", self._build())

    def family_options(self) -> dict:
        """The builder keywords shared by every net (the pooling windows aside)."""
        return {
            "channels": self.channels,
            "strides": self.strides,
            "kernel": self.kernel,
            "padding": self.padding,
            "num_classes": self.num_classes,
        }

    def _build(self) -> PoolingSetup:
        opts = self.family_options()
        try:
            base = build_spec("avgpool-cnn", self.dim, **opts)
        except InputError as exc:
            if str(exc).startswith("--"):  # it names its flag already
                raise
            raise type(exc)(f"--dims {self.dim}: {exc}") from None
        default_windows = _pool_windows(base)
        if not default_windows:
            raise InputError("the net has no pooling layer (every stride is 1); give --strides with a stride > 1")
        others = self.pool_windows or default_windows
        if len(others) != len(default_windows):
            # Named here: the spec builder's message would blame --pools for a --pool-windows mistake.
            raise InputError(
                f"--pool-windows gives {len(others)} window(s) for {len(default_windows)} strided layer(s); "
                "give one window per stride > 1"
            )
        sweep, windows = [], []
        for k in self.pools:
            w = (k, *others[1:])
            try:
                sweep.append(build_spec("avgpool-cnn", self.dim, **opts, pools=w))
            except InputError as exc:
                raise type(exc)(f"--pools {k} at --dims {self.dim}: {exc}") from None
            windows.append(w)
        strided = build_spec("strided-cnn", self.dim, **opts)
        pooled_index = next((i for i, w in enumerate(windows) if w == default_windows), None)
        pooled = sweep[pooled_index] if pooled_index is not None else base
        prod_a = tuple(math.prod(k * k for k in w) for w in windows)
        return PoolingSetup(tuple(windows), tuple(sweep), prod_a, strided, pooled, pooled_index)

    def settings(self) -> dict:
        """Every setting that changes the numbers (for the JSON ``run`` and the report)."""
        s = self.setup
        return {
            "arch": "avgpool-cnn",
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.family_options().items()},
            "dims": [self.dim],
            "d": [s.sweep[0].d],
            "pools": list(self.pools),
            "windows": [list(w) for w in s.windows],
            "draws": self.draws,
            "batch": self.batch,
            "seed": self.seed,
            "margin": self.margin,
            "n_boot": self.n_boot,
        }


@dataclass(frozen=True)
class SlopeResult:
    """One Theorem 10 quantity: the fit, the exact (H) values and slopes beside it, the claim."""

    fit: SlopeFit
    predicted: float
    margin: float
    h_values: np.ndarray = field(repr=False)  # (H) with E[w^2] = 2/in-degree, per window
    h_values_init: np.ndarray = field(repr=False)  # (H) with the init's variances
    h_slope: float
    h_slope_init: float
    claim: Claim
    draws_to_settle: int | None


@dataclass(frozen=True)
class Theorem11Result:
    """Pooled against strided: the ratio of ``E||d_x f_k||_2``, its interval and the claim."""

    strided: Spec
    pooled: Spec
    prod_a: int
    ratio: float
    interval: Interval
    predicted: float
    band: tuple[float, float]  # predicted * exp(-+margin)
    h_ratio_he: float
    h_ratio_init: float
    paired: bool
    strided_moments: SecondMomentAgreement
    pooled_moments: SecondMomentAgreement
    claim: Claim

    @property
    def exponent(self) -> float:
        """The ratio read as ``prod a^e`` (for scripts; the verdict is on the ratio)."""
        return math.log(self.ratio) / math.log(self.prod_a) if self.ratio > 0 and self.prod_a > 1 else math.nan

    @property
    def exponent_interval(self) -> Interval:
        if self.prod_a <= 1:
            return Interval.none()
        return self.interval.map(lambda r: math.log(r) / math.log(self.prod_a))


@dataclass(frozen=True)
class PoolingResult:
    """Everything ``check_pooling`` measured and concluded."""

    config: PoolingConfig
    h3_fraction: float  # largest over the swept nets
    structural: tuple[str, ...]  # hypotheses the layer kinds break by construction
    norm: SlopeResult
    squared: SlopeResult
    second_moments: tuple[SecondMomentAgreement, ...]  # one per swept net
    second_moments_mean: RelativeDifference  # MC/init - 1, averaged over the swept nets
    second_moments_mean_he: RelativeDifference
    second_moments_claim: Claim
    theorem11: Theorem11Result
    records: pd.DataFrame = field(repr=False)

    @property
    def setup(self) -> PoolingSetup:
        return self.config.setup

    @property
    def claims(self) -> list[Claim]:
        return [self.norm.claim, self.squared.claim, self.second_moments_claim, self.theorem11.claim]


def _broken(h3: float, structural: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({*structural, *(("H3",) if h3 > 0 else ())}))


def _slope_result(
    records: pd.DataFrame,
    quantity: str,
    predicted: float,
    margin: float,
    power: float,
    he: np.ndarray,
    init: np.ndarray,
    prod_a: np.ndarray,
    config: PoolingConfig,
    broken: tuple[str, ...],
) -> SlopeResult:
    fit = fit_power_law(records, quantity, "prod_a", n_boot=config.n_boot, seed=config.seed)
    logx = np.log(prod_a.astype(np.float64))
    h_slope = float(ols_slope(logx, power * np.log(he))[0])
    h_slope_init = float(ols_slope(logx, power * np.log(init))[0])
    verdict = band_verdict(fit.interval, predicted, margin)
    needed = ("H1", "H2", "H3", "H4", "H5")
    notes = [f"exact (H) slope {h_slope:+.3f}; with the init's variances {h_slope_init:+.3f}"]
    settle = None
    if verdict is Verdict.INCONCLUSIVE:
        settle = samples_to_settle(fit.interval, fit.slope, int(fit.draws.min()), predicted, margin)
        notes.append(f"~{settle} draws per net would likely settle it" if settle else "on the band's edge")
    what = "E||d_x f_k||_2" if power == 0.5 else "E||d_x f_k||_2^2"
    claim = Claim(
        name=quantity,
        statement=f"Thm 10: {what} ~ (prod a_i)^({predicted:g}) (slope {predicted:+g} against log prod a_i, band +-{margin:g})",
        predicted=predicted,
        estimate=fit.slope,
        interval=fit.interval,
        verdict=verdict,
        hypotheses_needed=needed,
        hypotheses_broken=tuple(h for h in broken if h in needed),
        note="; ".join(notes),
    )
    return SlopeResult(fit, predicted, margin, he**power, init**power, h_slope, h_slope_init, claim, settle)


def _ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return x.mean(axis=axis) / y.mean(axis=axis)


def ratio_interval(
    num: np.ndarray, den: np.ndarray, *, paired: bool, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, Interval]:
    """``mean(num) / mean(den)`` and its BCa bootstrap interval (``verify.stats``).

    ``paired``: ``num[i]`` and ``den[i]`` come from the same draw i and are resampled together
    (the strided and the pooled net of one draw share inputs and kernels, so their norms
    correlate at about 0.9 and independent resampling would widen the interval about threefold).
    """
    a, b = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    interval = bootstrap_interval([a, b], _ratio, paired=paired, n_boot=n_boot, seed=seed, level=level)
    return float(_ratio(a, b)), interval


def _theorem11(
    config: PoolingConfig,
    strided_rec: pd.DataFrame,
    pooled_rec: pd.DataFrame,
    pooled_moments: SecondMomentAgreement,
    broken: tuple[str, ...],
) -> Theorem11Result:
    s = config.setup
    num, den = per_draw_norms(pooled_rec), per_draw_norms(strided_rec)
    paired = num.size == den.size and same_draws([num.index.to_numpy(), den.index.to_numpy()])
    ratio, interval = ratio_interval(
        num.to_numpy(), den.to_numpy(), paired=paired, n_boot=config.n_boot, seed=config.seed
    )
    prod_a = math.prod(k * k for k in _pool_windows(s.pooled))
    predicted = theorem11_ratio(prod_a)
    m = config.margin
    log_interval = interval.map(lambda r: math.log(r / predicted))
    verdict = band_verdict(log_interval, 0.0, m)
    strided_exact = exact_second_moments(s.strided)
    pooled_exact = {"he": pooled_moments.he, "init": pooled_moments.init}
    h_he = math.sqrt(pooled_exact["he"] / strided_exact["he"])
    h_init = math.sqrt(pooled_exact["init"] / strided_exact["init"])
    strided_moments = second_moment_agreement(
        s.strided, strided_rec, exact=strided_exact, tolerance=2 * m, n_boot=config.n_boot, seed=config.seed
    )
    notes = [f"exact (H) ratio {h_he:.4g}; with the init's variances {h_init:.4g}"]
    if verdict is Verdict.INCONCLUSIVE:
        settle = samples_to_settle(log_interval, math.log(ratio / predicted), num.size, 0.0, m)
        notes.append(f"~{settle} draws would likely settle it" if settle else "on the band's edge")
    if pooled_moments.rel_init_interval.low > 2 * m:
        notes.append(
            f"the pooled net's E||d_x f_k||^2 sits {pooled_moments.rel_init:+.0%} above Eq. 13 (H1 approximate)"
        )
    needed = ("H1", "H2", "H3", "H4", "H5")
    claim = Claim(
        name="theorem11_ratio",
        statement=(
            "Thm 11: pooled/strided E||d_x f_k||_2 = 1/prod sqrt(a_i). The prediction is a factor, so the band is "
            f"on the ratio: within exp(+-{m:g}) of 1/prod sqrt(a_i), i.e. [{predicted * math.exp(-m):.4g}, "
            f"{predicted * math.exp(m):.4g}] (the slope band on the exponent e of prod a^e would allow a factor "
            f"prod a^(+-{m:g}) = {prod_a**m:.2f}, growing with prod a)"
        ),
        predicted=predicted,
        estimate=ratio,
        interval=interval,
        verdict=verdict,
        hypotheses_needed=needed,
        hypotheses_broken=tuple(h for h in broken if h in needed),
        note="; ".join(notes),
    )
    return Theorem11Result(
        strided=s.strided,
        pooled=s.pooled,
        prod_a=prod_a,
        ratio=ratio,
        interval=interval,
        predicted=predicted,
        band=(predicted * math.exp(-m), predicted * math.exp(m)),
        h_ratio_he=h_he,
        h_ratio_init=h_init,
        paired=paired,
        strided_moments=strided_moments,
        pooled_moments=pooled_moments,
        claim=claim,
    )


def _net_records(records: pd.DataFrame, net: str, window: int, prod_a: int) -> pd.DataFrame:
    """``logit_grad_l2`` and its square, with the check's key columns before ``value``."""
    rec = records.loc[records["quantity"] == QUANTITY]
    both = pd.concat([rec, rec.assign(quantity=SQUARED, value=rec["value"] ** 2)], ignore_index=True)
    both.insert(len(both.columns) - 1, "net", net)
    both.insert(len(both.columns) - 1, "window", window)
    both.insert(len(both.columns) - 1, "prod_a", prod_a)
    return both


def measure_pooling(config: PoolingConfig, *, rt=None, progress: bool = False) -> pd.DataFrame:
    """The Monte Carlo of a pooling check: long-format records of every net (``net`` is
    ``sweep``, ``strided`` or ``pooled``, the last only when pools = strides is not swept)."""
    from verify.engine import measure

    s = config.setup
    nets = [("sweep", spec, w[0], pa) for spec, w, pa in zip(s.sweep, s.windows, s.prod_a)]
    nets.append(("strided", s.strided, 0, 1))
    if s.pooled_index is None:
        w = _pool_windows(s.pooled)
        nets.append(("pooled", s.pooled, w[0], math.prod(k * k for k in w)))
    frames = []
    for net, spec, window, pa in nets:
        rec = measure([spec], draws=config.draws, batch=config.batch, seed=config.seed, rt=rt, progress=progress)
        frames.append(_net_records(rec, net, window, pa))
    return pd.concat(frames, ignore_index=True)


def _check_alive(frames: list[pd.DataFrame], names: list[str]) -> None:
    """A net whose every draw has a zero gradient (every ReLU path dead) has no log-mean."""
    dead = [n for f, n in zip(frames, names) if not f.loc[f["quantity"] == QUANTITY, "value"].mean() > 0]
    if dead:
        raise InputError(
            f"every weight draw of {', '.join(dead)} has a zero input gradient (every ReLU path dead); "
            "use more --channels or more --draws"
        )


def check_pooling(
    config: PoolingConfig,
    *,
    rt=None,
    progress: bool | Progress = False,
    records: pd.DataFrame | None = None,
) -> PoolingResult:
    """Run the pooling check. ``records`` (from ``measure_pooling``, e.g. stored) skips the
    Monte Carlo; ``rt`` is a ``verify.runtime.Runtime``; ``progress``: one stderr line per
    phase (``verify.progress``)."""
    from graphs.hypotheses import h3_violation_fraction

    prog = as_progress(progress, "pooling")
    s = config.setup
    if records is None:
        nets = len(s.sweep) + 1 + (s.pooled_index is None)
        with prog.phase(f"Monte Carlo, {config.draws} draws x {config.batch} inputs of {nets} nets", bars=True):
            records = measure_pooling(config, rt=rt, progress=prog.enabled)
    sweep_frames = [records.loc[(records["net"] == "sweep") & (records["prod_a"] == pa)] for pa in s.prod_a]
    strided_rec = records.loc[records["net"] == "strided"]
    pooled_rec = sweep_frames[s.pooled_index] if s.pooled_index is not None else records.loc[records["net"] == "pooled"]
    names = [f"--pools {k}" for k in config.pools] + ["the strided net", "the pooled net"]
    _check_alive([*sweep_frames, strided_rec, pooled_rec], names)
    exact = []
    with prog.phase(f"exact side: H3 and Eq. 13's second moments of {len(s.sweep)} nets") as ph:
        h3 = max(h3_violation_fraction(spec) for spec in s.sweep)
        for i, spec in enumerate(s.sweep, start=1):
            ph.step(f"net {i}/{len(s.sweep)}, windows {','.join(map(str, s.windows[i - 1]))}")
            exact.append(exact_second_moments(spec))
    structural = tuple(sorted({h for spec in s.sweep for layer in spec.layers for h in layer.hypotheses_broken()}))
    broken = _broken(h3, structural)
    with prog.phase(f"bootstrap fits ({config.n_boot} resamples)"):
        he = np.array([e["he"] for e in exact])
        init = np.array([e["init"] for e in exact])
        prod_a = np.array(s.prod_a)
        sweep = records.loc[records["net"] == "sweep"]
        m = config.margin
        norm = _slope_result(sweep, QUANTITY, THEOREM10_SLOPE, m, 0.5, he, init, prod_a, config, broken)
        squared = _slope_result(sweep, SQUARED, THEOREM10_SQ_SLOPE, 2 * m, 1.0, he, init, prod_a, config, broken)

        # The squared norm's band is twice the norm's, as for its slope.
        moments = tuple(
            second_moment_agreement(spec, f, exact=e, tolerance=2 * m, n_boot=config.n_boot, seed=config.seed)
            for spec, f, e in zip(s.sweep, sweep_frames, exact)
        )
        squares = [per_draw_squares(f) for f in sweep_frames]
        mean_init = mean_relative_difference(squares, init, variance="init", n_boot=config.n_boot, seed=config.seed)
        mean_he = mean_relative_difference(squares, he, variance="he", n_boot=config.n_boot, seed=config.seed)
        moments_claim = agreement_claim(
            mean_init, tolerance=2 * m, name="second_moments", what="the windows", hypotheses_broken=broken
        )
        if s.pooled_index is not None:
            pooled_moments = moments[s.pooled_index]
        else:
            pooled_moments = second_moment_agreement(
                s.pooled, pooled_rec, tolerance=2 * m, n_boot=config.n_boot, seed=config.seed
            )
        thm11 = _theorem11(config, strided_rec, pooled_rec, pooled_moments, broken)
    return PoolingResult(
        config=config,
        h3_fraction=float(h3),
        structural=structural,
        norm=norm,
        squared=squared,
        second_moments=moments,
        second_moments_mean=mean_init,
        second_moments_mean_he=mean_he,
        second_moments_claim=moments_claim,
        theorem11=thm11,
        records=records,
    )
