"""Calibration: do the toolkit's 95% intervals cover, and are planted violations caught?

``check_calibrate(config)`` repeats the statistical steps of the checks over many seeds on
nets whose truth is known exactly, and counts:

Coverage cases (the truth is exact, so every "inconsistent" verdict is a false one):

- ``dense-mean``: dense ReLU nets. ``E||d_x f_c||_2^2 = 2`` at every width and d, exactly, not
  only under (H) (``graphs.moments``: flipping the sign of the weights into a neuron leaves
  their law unchanged, so E[1{h > 0} (d_x h)^2] is half of E[(d_x h)^2]). Target: the 95% BCa
  interval of the per-size mean (``verify.checks.second_moments``), one trial per seed and size.
- ``dense-slope``: the slope of ``log E||d_x f_c||_2^2`` against ``log d`` is therefore exactly 0:
  the paired BCa interval of ``verify.stats.fit_power_law``, one trial per seed.
- ``dense-asymptotic``: the same with the finite-size fit ``fit_asymptotic_power_law`` (beta
  exactly 0; the correction term is fitted though its true amplitude is 0).
- ``pooled-slope`` and ``pooled-coord``: ``avgpool-cnn`` with circular padding, stride-1
  convolutions and non-overlapping average pooling, where (S) holds exactly (every input is
  read by the same number of windows at every layer: stride 1, or a window equal to its
  stride; THEOREMS.md). Here H1 fails (Monte Carlo sits above Eq. 13), so the *value* of
  E||d_x f_c||^2 is not known, but two slopes are, exactly, for a reason stronger than (S):
  with circular padding the net commutes with shifts by J pixels (J the product of the
  windows), and once the side n is at least twice the receptive field R, no unit's cone wraps
  around the image. The last dense layer's weights are independent of the features h_p at
  the P = (n/J)^2 final positions, with variance 2/(C P); so E||d_x f_c||^2 = (2/C) sum_c
  E||d_x h_{c,0}||^2, the same at every n (slope 0), and, conditionally on everything but that
  layer, each coordinate of d_x f_c is a centred Gaussian whose variance is the same function
  of a fixed-size neighbourhood divided by P, so E mean_i |(d_x f_c)_i| is a constant times
  1/sqrt(P) = J/n, i.e. exactly d^(-1/2).
- ``lemma9``: Lemma 9 under He initialisation (true: the Holm family rejects with probability
  at most alpha; its t-tests are conservative on symmetric heavy-tailed products).

The goal for an interval's coverage is [0.92, 0.98]; a false "inconsistent" needs the interval
to miss the whole band around the truth, so its rate should stay below (1 - level) / 2. Each
rate gets its exact binomial (Clopper-Pearson) interval (``verify.stats.binomial_interval``).

Planted violations (must be flagged in every seed; the detection rate is reported):

- ``variance-grows``: a dense net whose first layer is initialised with variance
  2/isqrt(d) instead of 2/d (``graphs.layers.MiscountedLinear``), so E||d_x f_c||^2 grows like
  sqrt(d): flagged when the slope's verdict against 0 is "inconsistent".
- ``fan-in-miscounted``: a dense net whose first layer divides by d/3 (pixels, not the
  coordinates of a 3-channel image): E||d_x f_c||^2 = 6 at every d, so no slope sees it; flagged
  when Monte Carlo against Eq. 13 with E[w^2] = 2/in-degree is "inconsistent" (and the exact
  side flags H3 on every neuron of the layer, deterministically).
- ``shared-layers``: two layers of a random DAG drawn with a common Gaussian component
  (``verify lemma9 --init shared``, H4 and H5 fail): flagged when Lemma 9 is rejected.

Seeds are the independent replications: seed s runs the whole check with the streams
``(s, i)``; the records (one row per seed, target and size) come first, the proportions and
claims are computed from them.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from graphs.errors import InputError
from graphs.spec import Spec
from verify.progress import Progress, as_progress
from verify.results import Claim, Interval, Verdict
from verify.stats import (
    ASYMPTOTIC_MIN_SIZES,
    DEFAULT_LEVEL,
    Proportion,
    band_verdict,
    binomial_interval,
    bound_verdict,
)

__all__ = [
    "COVERAGE_CASES",
    "COVERAGE_GOAL",
    "PLANTED_CASES",
    "RECORD_COLUMNS",
    "CalibrateConfig",
    "CalibrateResult",
    "CoverageCase",
    "DetectionCase",
    "check_calibrate",
    "dense_nets",
    "measure_calibrate",
    "planted_dense_nets",
    "pooled_nets",
    "receptive_field",
    "summarise",
]

COVERAGE_CASES = ("dense-mean", "dense-slope", "dense-asymptotic", "pooled-slope", "pooled-coord", "lemma9")
PLANTED_CASES = ("variance-grows", "fan-in-miscounted", "shared-layers")
COVERAGE_GOAL = (0.92, 0.98)
RECORD_COLUMNS = ("case", "seed", "dim", "target", "truth", "estimate", "low", "high", "verdict", "covered", "flagged")

_SQ = "logit_grad_l2_sq"


def receptive_field(spec: Spec) -> tuple[int, int]:
    """``(R, J)`` of an image net's convolution and pooling trunk: the side of the input patch a
    unit of the last feature map reads, and the product of its strides and windows."""
    from graphs.layers import AvgPool2d, Conv2d

    rf, jump = 1, 1
    for layer in spec.layers:
        if isinstance(layer, Conv2d):
            rf += (layer.kernel - 1) * jump
            jump *= layer.stride
        elif isinstance(layer, AvgPool2d):
            rf += (layer.window - 1) * jump
            jump *= layer.window
    return rf, jump


def dense_nets(dims: Sequence[int], widths: Sequence[int]) -> tuple[Spec, ...]:
    from graphs.spec import build_spec

    return tuple(build_spec("dense", d, widths=tuple(widths)) for d in dims)


def pooled_nets(dims: Sequence[int], channels: int) -> tuple[Spec, ...]:
    """``avgpool-cnn`` with circular padding, strides 1,2,2 (so stride-1 convolutions and two
    2x2 poolings): (S) exact, and the slopes of the module docstring exact from n >= 2R."""
    from graphs.spec import build_spec

    return tuple(build_spec("avgpool-cnn", n, channels=channels, strides=(1, 2, 2), padding="circular") for n in dims)


def planted_dense_nets(dims: Sequence[int], widths: Sequence[int], violation: str) -> tuple[Spec, ...]:
    """Dense nets whose first layer miscounts its fan-in: ``isqrt(d)`` (``variance-grows``) or
    ``d // 3`` (``fan-in-miscounted``)."""
    from graphs.layers import Linear, MiscountedLinear

    out = []
    for d in dims:
        counted = math.isqrt(d) if violation == "variance-grows" else max(1, d // 3)
        sizes = (d, *widths)
        layers: list = [MiscountedLinear(d, sizes[1], relu=True, counted=counted)]
        layers += [Linear(a, b, relu=True) for a, b in itertools.pairwise(sizes[1:])]
        layers.append(Linear(sizes[-1], 10, relu=False))
        out.append(Spec("dense", d, (d,), tuple(layers), {"widths": tuple(widths), "planted": violation}))
    return tuple(out)


@dataclass(frozen=True)
class CalibrateConfig:
    """How many replications of what (module docstring). ``seeds`` runs of the dense coverage
    cases (seeds ``first_seed``, ``first_seed + 1``, ...), ``pooled_seeds`` of the pooled ones
    (a pooled run costs about 2.5 dense ones), ``lemma9_seeds`` of Lemma 9 under He,
    ``planted_seeds`` of each planted violation.

    The defaults are the committed report's: about 600 s of CPU time (dense 1 s, pooled 2.5 s,
    a Lemma 9 or planted run about 1 s each, measured on this machine's cores)."""

    seeds: int = 250
    pooled_seeds: int = 80
    planted_seeds: int = 20
    lemma9_seeds: int = 40
    first_seed: int = 0
    draws: int = 100
    batch: int = 2
    dense_dims: tuple[int, ...] = (32, 64, 128, 256, 512)
    dense_widths: tuple[int, ...] = (32, 32)
    pooled_dims: tuple[int, ...] = (24, 32, 48, 64)
    pooled_channels: int = 4
    lemma9_dim: int = 6
    lemma9_hidden: tuple[int, ...] = (16, 16)
    lemma9_draws: int = 1000
    cases: tuple[str, ...] = (*COVERAGE_CASES, *PLANTED_CASES)
    margin: float = 0.05
    alpha: float = 0.05
    n_boot: int = 2000
    level: float = DEFAULT_LEVEL

    def __post_init__(self) -> None:
        from graphs.rng import check_seed

        for name in (
            "seeds",
            "pooled_seeds",
            "planted_seeds",
            "lemma9_seeds",
            "draws",
            "batch",
            "pooled_channels",
            "lemma9_dim",
            "lemma9_draws",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise InputError(f"--{name.replace('_', '-')}: {value!r} is not a positive integer; give e.g. 10")
        check_seed(self.first_seed)
        if self.draws < 2:
            raise InputError(f"--draws: {self.draws} is too small (an interval needs two draws); give e.g. 100")
        cases = tuple(dict.fromkeys(self.cases))
        unknown = [c for c in cases if c not in (*COVERAGE_CASES, *PLANTED_CASES)]
        if unknown or not cases:
            raise InputError(
                f"--cases: unknown {', '.join(map(repr, unknown)) or 'empty list'}; choose from "
                f"{', '.join((*COVERAGE_CASES, *PLANTED_CASES))}"
            )
        object.__setattr__(self, "cases", cases)
        for name in ("dense_dims", "pooled_dims"):
            dims = tuple(sorted(int(v) for v in getattr(self, name)))
            object.__setattr__(self, name, dims)
            if len(set(dims)) != len(dims) or len(dims) < 2:
                raise InputError(f"--{name.replace('_', '-')}: give at least two distinct sizes")
        if any(c in cases for c in ("dense-asymptotic",)) and len(self.dense_dims) < ASYMPTOTIC_MIN_SIZES:
            raise InputError(
                f"--dense-dims: the case dense-asymptotic needs at least {ASYMPTOTIC_MIN_SIZES} sizes; give more sizes"
            )
        if min(self.dense_dims) < 2:
            raise InputError("--dense-dims: sizes must be at least 2")
        if any(c.startswith("pooled") for c in cases):
            probe = pooled_nets([64], self.pooled_channels)[0]  # any valid side: R and J do not depend on it
            rf, jump = receptive_field(probe)
            bad = [n for n in self.pooled_dims if n < 2 * rf or n % jump]
            if bad:
                raise InputError(
                    f"--pooled-dims: sizes {bad} are below twice the receptive field ({2 * rf}) or not multiples of "
                    f"{jump}; the pooled slopes are exact only there; give e.g. {2 * rf},{2 * rf + 2 * jump}"
                )
        if not (math.isfinite(self.margin) and self.margin > 0):
            raise InputError(f"--margin: {self.margin} is not positive; give e.g. --margin 0.05")
        if not (0.0 < self.alpha < 1.0):
            raise InputError(f"--alpha: {self.alpha} is not in (0, 1); give e.g. 0.05")
        if self.n_boot < 100:
            raise InputError(f"--n-boot: {self.n_boot} is too small for a 95% interval; give an integer >= 100")
        if self.lemma9_draws < 20:
            raise InputError(f"--lemma9-draws: {self.lemma9_draws} is too small for a t-test; give at least 20")

    def seed_list(self, n: int) -> list[int]:
        return list(range(self.first_seed, self.first_seed + n))

    def settings(self) -> dict[str, Any]:
        """Every setting that changes the numbers (for the JSON ``run`` and the report)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out


# ----------------------------------------------------------------------------- measuring


def _row(case, seed, dim, target, truth, estimate, interval: Interval, verdict, covered, flagged) -> dict:
    return {
        "case": case,
        "seed": int(seed),
        "dim": math.nan if dim is None else float(dim),
        "target": target,
        "truth": float(truth),
        "estimate": float(estimate),
        "low": float(interval.low),
        "high": float(interval.high),
        "verdict": verdict.value if isinstance(verdict, Verdict) else verdict,
        "covered": covered,
        "flagged": flagged,
    }


def _squared_records(specs: Sequence[Spec], config: CalibrateConfig, seed: int, rt) -> pd.DataFrame:
    from verify.checks.scaling import with_squares
    from verify.engine import measure

    rec = measure(specs, draws=config.draws, batch=config.batch, seed=seed, rt=rt)
    return with_squares(rec)


def _slope_rows(case, seed, rec, quantity, truth, predicted, margin, config, *, asymptotic=False, exponent=-1.0):
    from verify.stats import fit_asymptotic_power_law, fit_power_law

    kw = {"n_boot": config.n_boot, "seed": seed, "level": config.level}
    if asymptotic:
        fit = fit_asymptotic_power_law(rec, quantity, "d", exponent=exponent, **kw)
    else:
        fit = fit_power_law(rec, quantity, "d", **kw)
    verdict = band_verdict(fit.interval, predicted, margin)
    covered = fit.interval.contains(truth) if math.isfinite(truth) else None
    target = f"{'beta' if asymptotic else 'slope'} of {quantity}"
    return _row(case, seed, None, target, truth, fit.slope, fit.interval, verdict, covered, None)


def _dense_case_rows(config: CalibrateConfig, seed: int, rt) -> list[dict]:
    """``dense-mean``, ``dense-slope`` and ``dense-asymptotic`` share their Monte Carlo."""
    from verify.checks.second_moments import second_moment_agreement
    from verify.theory import SECOND_MOMENT_UNDER_H, finite_size_exponent

    specs = dense_nets(config.dense_dims, config.dense_widths)
    rec = _squared_records(specs, config, seed, rt)
    rows = []
    tol = 2 * config.margin
    if "dense-mean" in config.cases:
        exact = {"he": SECOND_MOMENT_UNDER_H, "init": SECOND_MOMENT_UNDER_H}
        for spec in specs:
            m = second_moment_agreement(
                spec, rec.loc[rec["dim"] == spec.dim], exact=exact, tolerance=tol, n_boot=config.n_boot, seed=seed
            )
            verdict = band_verdict(m.rel_init_interval, 0.0, tol)
            covered = m.mc_sq_interval.contains(SECOND_MOMENT_UNDER_H)
            rows.append(
                _row(
                    "dense-mean",
                    seed,
                    spec.dim,
                    "E||d_x f_c||_2^2",
                    SECOND_MOMENT_UNDER_H,
                    m.mc_sq,
                    m.mc_sq_interval,
                    verdict,
                    covered,
                    None,
                )
            )
    if "dense-slope" in config.cases:
        rows.append(_slope_rows("dense-slope", seed, rec, _SQ, 0.0, 0.0, tol, config))
    if "dense-asymptotic" in config.cases:
        exponent = finite_size_exponent(specs[0])[0]
        rows.append(
            _slope_rows("dense-asymptotic", seed, rec, _SQ, 0.0, 0.0, tol, config, asymptotic=True, exponent=exponent)
        )
    return rows


def _pooled_rows(config: CalibrateConfig, seed: int, rt) -> list[dict]:
    from verify.theory import SCALING_PREDICTIONS

    specs = pooled_nets(config.pooled_dims, config.pooled_channels)
    rec = _squared_records(specs, config, seed, rt)
    rows = []
    if "pooled-slope" in config.cases:
        rows.append(_slope_rows("pooled-slope", seed, rec, _SQ, 0.0, 0.0, 2 * config.margin, config))
    if "pooled-coord" in config.cases:
        slope = SCALING_PREDICTIONS["logit_grad_coord"].slope
        rows.append(_slope_rows("pooled-coord", seed, rec, "logit_grad_coord", slope, slope, config.margin, config))
    return rows


def _lemma9_rows(case: str, config: CalibrateConfig, seed: int, rt) -> list[dict]:
    from graphs.spec import build_spec
    from verify.checks.lemma9 import Lemma9Config, check_lemma9

    spec = build_spec("random-dag", config.lemma9_dim, hidden=config.lemma9_hidden)
    init = "shared" if case == "shared-layers" else "he"
    cfg = Lemma9Config(spec, draws=config.lemma9_draws, seed=seed, init=init, alpha=config.alpha, mc_draws=0)
    size = check_lemma9(cfg, rt=rt).sizes[0]
    claim = size.lemma9
    # the claim's estimate is the smallest Holm-adjusted p-value of the family
    flagged = size.rejected
    return [
        _row(
            case,
            seed,
            spec.dim,
            "Lemma 9: smallest Holm-adjusted p-value",
            math.nan,
            claim.estimate if claim.estimate is not None else math.nan,
            Interval.none("Holm"),
            claim.verdict,
            (not flagged) if init == "he" else None,
            flagged if init == "shared" else None,
        )
    ]


def _planted_dense_rows(case: str, config: CalibrateConfig, seed: int, rt) -> list[dict]:
    from verify.checks.second_moments import (
        agreement_claim,
        exact_second_moments,
        mean_relative_difference,
        per_draw_squares,
    )
    from verify.stats import ols_slope

    specs = planted_dense_nets(config.dense_dims, config.dense_widths, case)
    rec = _squared_records(specs, config, seed, rt)
    tol = 2 * config.margin
    exact = [exact_second_moments(s) for s in specs]
    if case == "variance-grows":
        logd = np.log([s.d for s in specs])
        truth = float(ols_slope(logd, np.log([e["init"] for e in exact]))[0])
        row = _slope_rows(case, seed, rec, _SQ, truth, 0.0, tol, config)
        row["flagged"] = row["verdict"] == Verdict.INCONSISTENT.value
        return [row]
    squares = [per_draw_squares(rec.loc[rec["dim"] == s.dim]) for s in specs]
    he = mean_relative_difference(squares, [e["he"] for e in exact], variance="he", n_boot=config.n_boot, seed=seed)
    init = mean_relative_difference(
        squares, [e["init"] for e in exact], variance="init", n_boot=config.n_boot, seed=seed
    )
    claim = agreement_claim(he, tolerance=tol)
    truth = float(np.mean([e["init"] / e["he"] for e in exact]) - 1.0)
    return [
        _row(
            case,
            seed,
            None,
            "mean over sizes of MC / Eq. 13 (he) - 1",
            truth,
            he.estimate,
            he.interval,
            claim.verdict,
            he.interval.contains(truth),
            claim.verdict is Verdict.INCONSISTENT,
        ),
        _row(
            case,
            seed,
            None,
            "mean over sizes of MC / Eq. 13 (init) - 1",
            0.0,
            init.estimate,
            init.interval,
            band_verdict(init.interval, 0.0, tol),
            init.interval.contains(0.0),
            None,
        ),
    ]


def measure_calibrate(config: CalibrateConfig, *, rt=None, progress: bool | Progress = False) -> pd.DataFrame:
    """Every replication: one row per case, seed, target (and size for ``dense-mean``)."""
    from tqdm import tqdm

    jobs: list[tuple[str, int]] = []
    cases = config.cases
    dense = [c for c in ("dense-mean", "dense-slope", "dense-asymptotic") if c in cases]
    if dense:
        jobs += [("dense", s) for s in config.seed_list(config.seeds)]
    if "pooled-slope" in cases or "pooled-coord" in cases:
        jobs += [("pooled", s) for s in config.seed_list(config.pooled_seeds)]
    if "lemma9" in cases:
        jobs += [("lemma9", s) for s in config.seed_list(config.lemma9_seeds)]
    for case in PLANTED_CASES:
        if case in cases:
            jobs += [(case, s) for s in config.seed_list(config.planted_seeds)]
    rows: list[dict] = []
    prog = as_progress(progress, "calibrate")
    with (
        prog.phase(f"{len(jobs)} replications of {len(cases)} cases", bars=True),
        tqdm(
            total=len(jobs), desc="calibrate", unit="run", disable=not prog.enabled, file=sys.stderr, leave=False
        ) as bar,
    ):
        for kind, seed in jobs:
            if kind == "dense":
                rows += _dense_case_rows(config, seed, rt)
            elif kind == "pooled":
                rows += _pooled_rows(config, seed, rt)
            elif kind in ("lemma9", "shared-layers"):
                rows += _lemma9_rows(kind, config, seed, rt)
            else:
                rows += _planted_dense_rows(kind, config, seed, rt)
            bar.update(1)
    return pd.DataFrame(rows, columns=list(RECORD_COLUMNS))


# ----------------------------------------------------------------------------- summaries


_COVERAGE_TEXT = {
    "dense-mean": (
        "dense",
        "95% BCa interval of the per-size mean E||d_x f_c||_2^2",
        "2 at every size (exact)",
        "one trial per seed and size",
    ),
    "dense-slope": (
        "dense",
        "95% paired BCa interval of the slope of log E||d_x f_c||_2^2 against log d",
        "0 (exact)",
        "one trial per seed",
    ),
    "dense-asymptotic": (
        "dense",
        "95% paired BCa interval of beta in log E||d_x f_c||_2^2 = beta log d + alpha + c/d",
        "beta = 0 (exact)",
        "one trial per seed",
    ),
    "pooled-slope": (
        "avgpool-cnn, circular, (S) exact",
        "95% paired BCa interval of the slope of log E||d_x f_c||_2^2 against log d",
        "0 (exact by translation, n >= 2R)",
        "one trial per seed",
    ),
    "pooled-coord": (
        "avgpool-cnn, circular, (S) exact",
        "95% paired BCa interval of the slope of log E mean_i |(d_x f_c)_i| against log d",
        "-1/2 (exact by translation, n >= 2R)",
        "one trial per seed",
    ),
    "lemma9": (
        "random-dag, He initialisation",
        "Lemma 9's Holm family of t-tests at level alpha (not rejected = covered)",
        "Lemma 9 holds (every product centred and uncorrelated)",
        "one trial per seed",
    ),
}

_PLANTED_TEXT = {
    "variance-grows": (
        "dense, first layer initialised with variance 2/isqrt(d)",
        "slope of log E||d_x f_c||_2^2 against 0 (verify scaling's claim, band +-2 margin)",
    ),
    "fan-in-miscounted": (
        "dense, first layer divides by d/3 (pixels, not coordinates)",
        "Monte Carlo E||d_x f_c||_2^2 against Eq. 13 with 2/in-degree, averaged over sizes (band +-2 margin)",
    ),
    "shared-layers": (
        "random-dag, two layers share a Gaussian component (rho 0.9)",
        "Lemma 9's Holm family of t-tests (verify lemma9 --init shared)",
    ),
}


@dataclass(frozen=True)
class CoverageCase:
    """One net with an exact truth: how often the interval covers it and how often the verdict
    is a false "inconsistent", each with its Clopper-Pearson interval, and the claims."""

    name: str
    net: str
    target: str
    truth: str
    unit: str
    coverage: Proportion
    false_inconsistent: Proportion
    goal: tuple[float, float]
    coverage_claim: Claim
    false_claim: Claim
    verdicts: dict[str, int]


@dataclass(frozen=True)
class DetectionCase:
    """One planted violation: how often its check flagged it."""

    name: str
    net: str
    detector: str
    detection: Proportion
    claim: Claim
    estimates: tuple[float, float]  # smallest and largest estimate over the seeds
    truth: float
    extra: Proportion | None = None  # fan-in-miscounted: coverage of MC against Eq. 13 with the init's variances


@dataclass(frozen=True)
class CalibrateResult:
    config: CalibrateConfig
    coverage: tuple[CoverageCase, ...]
    detection: tuple[DetectionCase, ...]
    records: pd.DataFrame = field(repr=False)

    @property
    def claims(self) -> list[Claim]:
        out = []
        for c in self.coverage:
            out += [c.coverage_claim, c.false_claim]
        out += [d.claim for d in self.detection]
        return out


def _coverage_case(name: str, rows: pd.DataFrame, config: CalibrateConfig) -> CoverageCase:
    net, target, truth, unit = _COVERAGE_TEXT[name]
    n = len(rows)
    covered = int(rows["covered"].astype(bool).sum())
    false = int((rows["verdict"] == Verdict.INCONSISTENT.value).sum())
    cov = binomial_interval(covered, n, config.level)
    fal = binomial_interval(false, n, config.level)
    if name == "lemma9":
        goal = (1.0 - config.alpha, 1.0)
        false_bound = config.alpha
    else:
        goal = COVERAGE_GOAL
        false_bound = (1.0 - config.level) / 2
    centre, half = (goal[0] + goal[1]) / 2, (goal[1] - goal[0]) / 2
    cov_claim = Claim(
        name=f"coverage {name}",
        statement=f"{net}: the {target} covers the truth ({truth}) with a rate within [{goal[0]:g}, {goal[1]:g}]",
        predicted=centre,
        estimate=cov.estimate,
        interval=cov.interval,
        verdict=band_verdict(cov.interval, centre, half),
        note=f"{covered} of {n} trials ({unit}); Clopper-Pearson interval",
    )
    false_claim = Claim(
        name=f"false inconsistent {name}",
        statement=(
            f"{net}: the rate of false 'inconsistent' verdicts stays below {false_bound:g}"
            + (
                " (the family-wise level)"
                if name == "lemma9"
                else " ((1 - level) / 2: the interval must miss the band)"
            )
        ),
        predicted=false_bound,
        estimate=fal.estimate,
        interval=fal.interval,
        verdict=bound_verdict(fal.interval, false_bound, above=False),
        note=f"{false} of {n} trials",
    )
    verdicts = {v.value: int((rows["verdict"] == v.value).sum()) for v in Verdict}
    return CoverageCase(name, net, target, truth, unit, cov, fal, goal, cov_claim, false_claim, verdicts)


def _detection_case(name: str, rows: pd.DataFrame, config: CalibrateConfig) -> DetectionCase:
    net, detector = _PLANTED_TEXT[name]
    main = rows.loc[rows["flagged"].notna()]
    n = len(main)
    flagged = int(main["flagged"].astype(bool).sum())
    det = binomial_interval(flagged, n, config.level)
    claim = Claim(
        name=f"detection {name}",
        statement=f"{net}: the planted violation is flagged in every seed by the {detector}",
        predicted=1.0,
        estimate=det.estimate,
        interval=det.interval,
        verdict=Verdict.CONSISTENT if flagged == n else Verdict.INCONSISTENT,
        hypotheses_broken={"variance-grows": ("H3",), "fan-in-miscounted": ("H3",), "shared-layers": ("H4", "H5")}[
            name
        ],
        note=f"flagged in {flagged} of {n} seeds",
    )
    extra = None
    other = rows.loc[rows["flagged"].isna()]
    if not other.empty:
        extra = binomial_interval(int(other["covered"].astype(bool).sum()), len(other), config.level)
    est = main["estimate"].to_numpy(dtype=np.float64)
    truth = float(main["truth"].iloc[0]) if n else math.nan
    return DetectionCase(name, net, detector, det, claim, (float(est.min()), float(est.max())), truth, extra)


def summarise(records: pd.DataFrame, config: CalibrateConfig) -> CalibrateResult:
    """Proportions and claims from the records of ``measure_calibrate``."""
    coverage = tuple(
        _coverage_case(c, records.loc[records["case"] == c], config)
        for c in COVERAGE_CASES
        if c in config.cases and (records["case"] == c).any()
    )
    detection = tuple(
        _detection_case(c, records.loc[records["case"] == c], config)
        for c in PLANTED_CASES
        if c in config.cases and (records["case"] == c).any()
    )
    return CalibrateResult(config, coverage, detection, records)


def check_calibrate(
    config: CalibrateConfig, *, rt=None, progress: bool | Progress = False, records: pd.DataFrame | None = None
) -> CalibrateResult:
    """Run the calibration (``records`` from an earlier ``measure_calibrate`` skip the runs);
    ``progress``: one stderr line per phase (``verify.progress``)."""
    prog = as_progress(progress, "calibrate")
    if records is None:
        records = measure_calibrate(config, rt=rt, progress=prog)
    with prog.phase("coverage and detection rates (Clopper-Pearson)"):
        return summarise(records, config)
