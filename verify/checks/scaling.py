"""Theorems 4, 5 and Corollary 6: how input gradients and vulnerability grow with d.

``check_scaling(config)`` samples He-initialised nets at several input sizes, measures the
per-sample input-gradient norms (``verify.engine``), fits the exponent of each quantity
against d (``verify.stats``) and compares it with the prediction (``verify.theory``), next to
the exact hypotheses of every sampled net (``graphs``), so that no verdict is read without
them:

- (S) exactly, or by the randomised identity test whose "fails" is a certificate;
- (S-bounded), what Corollary 6's slopes need: the range of ``d * P(x, o)`` stable in d (it
  is judged on the two largest sizes, ``verify.theory.DP_BOUND_RATIO``);
- H3 as the fraction of random-weight neurons whose in-degree differs from the fan-in the
  initialisation divides by (zero padding's border);
- H5 and the others that a layer kind breaks by construction (reflect padding puts one
  weight on two out-edges of a border node).

Two sharper readings of the same records:

- **The exact finite-size curve.** E||d_x f_c||_2^2 is the one measured quantity whose value
  (H) fixes at every size (Eq. 13, ``graphs.moments``), with the variances the
  initialisation really draws, so a zero-padded border is included. It is added as the
  quantity ``logit_grad_l2_sq`` (the square of ``logit_grad_l2``) whenever ``logit_grad_l2``
  is fitted, and compared with Monte Carlo size by size (``verify.checks.second_moments``:
  relative difference, its interval, a verdict and the hypothesis a gap points to), and over
  the sizes (the slope of the exact curve next to the fitted one). No other quantity has an
  exact (H) value: the loss gradient ``d_x L = sum_k (q_k - 1[k = c]) d_x f_k`` weighs the
  logit gradients by the softmax, which depends on the logits, and for these bias-free ReLU
  nets the logits are ``f_k = <d_x f_k, x>`` (positive homogeneity), so the weights and the
  gradients are dependent and Eq. 13 does not carry over; the l_1 and l_inf norms and the
  unsquared l_2 norm are not second moments. ``logit_grad_l2`` gets the root of the exact
  curve, an upper bound of E||d_x f_c||_2 by Jensen's inequality, whose slope is half the
  squared one.
- **The asymptotic exponent.** With at least ``ASYMPTOTIC_MIN_SIZES`` sizes, each quantity is
  also fitted as ``log E[Q] = beta log d + alpha + c d^e`` with the family's leading
  finite-size correction ``e`` (``verify.theory.finite_size_exponent``: -1/2 for a padded
  border, -1 without), and ``beta`` gets a verdict of its own beside the plain slope's; the
  same fit of the exact curve (no noise) shows the beta the hypotheses imply for the net.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from graphs.errors import InputError
from graphs.spec import Spec
from verify.checks.common import check_fit, check_sampling, spec_settings
from verify.checks.second_moments import QUANTITY as SECOND_MOMENT_SOURCE
from verify.checks.second_moments import (
    RelativeDifference,
    SecondMomentAgreement,
    agreement_claim,
    mean_relative_difference,
    per_draw_squares,
    second_moment_agreement,
)
from verify.progress import Progress, as_progress
from verify.results import Claim, Verdict
from verify.stats import (
    ASYMPTOTIC_MIN_SIZES,
    AsymptoticFit,
    SlopeFit,
    asymptotic_coefficients,
    band_verdict,
    fit_asymptotic_power_law,
    fit_power_law,
    ols_slope,
    samples_to_settle,
)
from verify.theory import (
    EPS_INF,
    SCALING_PREDICTIONS,
    SCALING_QUANTITIES,
    SECOND_MOMENT_PREDICTION,
    Prediction,
    dp_bounded,
    finite_size_exponent,
)

if TYPE_CHECKING:
    from verify.engine import PrecisionError

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_DRAWS",
    "INPUT_KINDS",
    "SQUARED",
    "ExactCurve",
    "HypothesisStatus",
    "QuantityResult",
    "ScalingConfig",
    "ScalingResult",
    "SizeStatus",
    "check_scaling",
    "hypothesis_status",
    "size_status",
    "with_squares",
]

# Chosen from a profile of the main command on 2 CPU cores. One sample (forward + two
# backward passes) of the 3x256x256 net costs ~110 ms of one core (~57 ms on two), ~3/4 of
# the per-sample cost over 32,64,128,256; the exact (S)/H3 checks, fits and plot add a few
# seconds. 160 draws x 2 inputs keep the run near half a minute on an idle machine and give
# 95% intervals about +-0.01 wide.
# Draws, not inputs, set the interval: measured on this net, a draw's mean over B inputs has
# relative variance ~0.085^2 + 0.19^2 / B, so extra inputs per draw buy little once B = 2.
DEFAULT_DRAWS = 160
DEFAULT_BATCH = 2
INPUT_KINDS = ("normal", "upsampled")
SQUARED = SECOND_MOMENT_PREDICTION.quantity  # E||d_x f_c||_2^2, derived from logit_grad_l2


@dataclass(frozen=True)
class ScalingConfig:
    """What to sample: ``specs`` (one family, several sizes) and how."""

    specs: tuple[Spec, ...]
    draws: int = DEFAULT_DRAWS
    batch: int = DEFAULT_BATCH
    seed: int = 0
    inputs: str = "normal"
    quantities: tuple[str, ...] = SCALING_QUANTITIES
    eps_inf: float = EPS_INF
    margin: float = 0.05
    n_boot: int = 2000
    # the nets' arithmetic (``--precision``): the runtime applies it (``verify.runtime``); it is
    # here so that the settings (the JSON's, the results store's manifest) name it
    precision: str = "fp32"

    def __post_init__(self) -> None:
        from verify.settings import PRECISIONS

        if self.precision not in PRECISIONS:
            raise InputError(f"--precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        specs = tuple(sorted(self.specs, key=lambda s: s.d))
        object.__setattr__(self, "specs", specs)
        if len(specs) < 2:
            raise InputError("a slope needs at least two sizes; give e.g. --dims 32,64,128")
        if len({s.family for s in specs}) != 1:
            raise InputError("every spec of a scaling check must come from one family")
        if len({s.d for s in specs}) != len(specs):
            raise InputError("two sizes give the same d; give distinct sizes")
        if specs[0].d < 2:
            raise InputError(
                f"--dims: size {specs[0].dim} has d = 1, which leaves no dimension to scale (the maximum of one "
                "coordinate is no maximum); give sizes with d >= 2"
            )
        if specs[0].num_classes < 2:
            raise InputError(
                f"--classes: {specs[0].num_classes} class(es) make the cross-entropy identically 0; give --classes 2 or more"
            )
        unknown = [q for q in self.quantities if q not in SCALING_PREDICTIONS]
        if unknown or not self.quantities:
            raise InputError(
                f"--quantities: unknown {', '.join(map(repr, unknown)) or 'empty list'}; choose from {', '.join(SCALING_QUANTITIES)}"
            )
        object.__setattr__(self, "quantities", tuple(dict.fromkeys(self.quantities)))
        check_sampling(self.draws, self.batch, self.seed)
        if self.inputs not in INPUT_KINDS:
            raise InputError(f"--inputs {self.inputs!r}: choose one of {', '.join(INPUT_KINDS)}")
        if self.inputs == "upsampled":
            base = specs[0].dim
            bad = [s.dim for s in specs if s.dim % base]
            if bad:
                raise InputError(
                    f"--inputs upsampled: sizes {bad} are not multiples of the smallest size {base}; use e.g. --dims 32,64,128"
                )
        if not (math.isfinite(self.eps_inf) and self.eps_inf > 0):
            raise InputError(f"--eps-inf: {self.eps_inf} is not positive; give e.g. --eps-inf 0.005")
        check_fit(self.margin, self.n_boot)

    @property
    def family(self) -> str:
        return self.specs[0].family

    def settings(self) -> dict:
        """Every setting that changes the numbers (for the JSON ``run`` and the report)."""
        return {
            **spec_settings(self.specs),
            "draws": self.draws,
            "batch": self.batch,
            "seed": self.seed,
            "inputs": self.inputs,
            "quantities": list(self.quantities),
            "eps_inf": self.eps_inf,
            "margin": self.margin,
            "n_boot": self.n_boot,
            "precision": self.precision,
        }


@dataclass(frozen=True)
class SizeStatus:
    """The exact side at one size: (S), H3, the range of d * P(x, o), structural breaks."""

    dim: int
    d: int
    symmetric: bool
    symmetry_method: str  # "dag-polynomial" (exact) or "randomised"
    false_positive_bound: float
    h3_fraction: float
    dp_min: float
    dp_max: float
    structural: tuple[str, ...]  # hypotheses the layer kinds break by construction
    exact: bool = True  # False: no exact side (a module outside the layer kinds); the fields above are moot
    obstacles: tuple[str, ...] = ()  # what keeps the net from the exact side
    # Eq. 13: E||d_x f_c||_2^2 under (H) with E[w^2] = 2/in-degree, and with the init's variances
    # (NaN where the exact side has no second moments: no view, or a layer kind outside (H)'s model)
    he_sq: float = math.nan
    init_sq: float = math.nan

    @property
    def has_exact(self) -> bool:
        return math.isfinite(self.he_sq) and math.isfinite(self.init_sq)


def exact_moments(spec: Spec, *, progress: bool = False) -> tuple[float, float]:
    """Eq. 13's ``E||d_x f_c||_2^2`` under (H), (2/in-degree, the init's variances), on the
    spec's exact view; NaNs where there is none or a layer kind has no second-moment model."""
    from graphs.moments import moment_obstacles
    from graphs.spec import exact_view
    from verify.checks.second_moments import exact_second_moments

    view, _ = exact_view(spec)
    if view is None or moment_obstacles(view):
        return math.nan, math.nan
    exact = exact_second_moments(view, progress=progress)
    return float(exact["he"]), float(exact["init"])


def size_status(spec: Spec, *, progress: bool = False) -> SizeStatus:
    """(S), H3, d * P(x, o) range, structural breaks and the exact (H) second moments of one
    spec (exact side, full size); for a net without an exact side
    (``graphs.spec.exact_view``), what keeps it from one.

    Large nets go in row bands (``graphs.streaming``): bounded memory at 4096 x 4096 pixels,
    with a progress bar per pass when ``progress``.
    """
    from graphs.hypotheses import h3_violation_fraction
    from graphs.pathsums import path_sum_summary
    from graphs.spec import exact_view
    from graphs.symmetry import symmetry_verdict

    structural = tuple(sorted({h for layer in spec.layers for h in layer.hypotheses_broken()}))
    view, obstacles = exact_view(spec)
    if view is None:
        nan = math.nan
        return SizeStatus(spec.dim, spec.d, False, "none", nan, nan, nan, nan, structural, False, obstacles)
    spec = view
    paths = path_sum_summary(spec, progress=progress)
    sym = symmetry_verdict(spec, progress=progress)
    return SizeStatus(
        spec.dim,
        spec.d,
        bool(sym.symmetric),
        sym.method,
        float(sym.false_positive_bound),
        float(h3_violation_fraction(spec)),
        float(paths.scaled_min),
        float(paths.scaled_max),
        structural,
        True,
        (),
        *exact_moments(spec, progress=progress),
    )


def _with_exact(status: SizeStatus, spec: Spec) -> SizeStatus:
    """``status`` with its exact second moments (computed when a stored status lacks them)."""
    if status.has_exact:
        return status
    from dataclasses import replace

    he, init = exact_moments(spec)
    return replace(status, he_sq=he, init_sq=init)


@dataclass(frozen=True)
class HypothesisStatus:
    """The hypotheses over all sizes: which fail, and whether the weak (S) holds."""

    symmetric: bool
    bounded: bool  # (S-bounded) on the two largest sizes
    h3_fraction: float  # largest over the sizes
    structural: tuple[str, ...]
    exact: bool = True  # every size has an exact side (else (S), (S-bounded) and H3 are unknown)
    obstacles: tuple[str, ...] = ()

    @property
    def broken(self) -> tuple[str, ...]:
        out = list(self.structural)
        if not self.exact:
            return tuple(sorted(set(out)))
        if not self.symmetric:
            out.append("(S)")
        if not self.bounded:
            out.append("(S-bounded)")
        if self.h3_fraction > 0:
            out.append("H3")
        return tuple(sorted(set(out)))


def hypothesis_status(status: Sequence[SizeStatus]) -> HypothesisStatus:
    """Summarise the per-size exact side (``verify.theory.DP_BOUND_RATIO`` for (S-bounded))."""
    if not all(s.exact for s in status):
        obstacles = tuple(dict.fromkeys(o for s in status for o in s.obstacles))
        structural = tuple(sorted({h for s in status for h in s.structural}))
        return HypothesisStatus(False, False, math.nan, structural, False, obstacles)
    symmetric = all(s.symmetric for s in status)
    if symmetric:
        bounded = True
    elif len(status) < 2:
        bounded = False
    else:
        a, b = status[-2], status[-1]
        bounded = dp_bounded((a.dp_min, a.dp_max), (b.dp_min, b.dp_max))
    structural = tuple(sorted({h for s in status for h in s.structural}))
    return HypothesisStatus(symmetric, bounded, max(s.h3_fraction for s in status), structural)


@dataclass(frozen=True)
class ExactCurve:
    """The exact (H) value of a quantity at every size (Eq. 13 with the init's variances; the
    ideal 2/in-degree ones in ``he``), its slope over the sizes and, with enough sizes, the
    beta of the same finite-size fit as the Monte Carlo's (no noise, so no interval)."""

    label: str
    values: np.ndarray = field(repr=False)
    he: np.ndarray = field(repr=False)
    slope: float
    asymptotic_slope: float | None


@dataclass(frozen=True)
class QuantityResult:
    """One quantity: the prediction, the fitted power law, and the claim made of it; the
    finite-size fit and its claim when there are enough sizes; the exact (H) curve where
    the quantity has one."""

    prediction: Prediction
    fit: SlopeFit
    claim: Claim
    draws_to_settle: int | None
    asymptotic: AsymptoticFit | None = None
    asymptotic_claim: Claim | None = None
    exact: ExactCurve | None = None


@dataclass(frozen=True)
class ScalingResult:
    """Everything ``check_scaling`` measured and concluded.

    ``moments``: per size, Monte Carlo E||d_x f_c||_2^2 against Eq. 13 (empty when
    ``logit_grad_l2`` is not fitted); ``moments_mean``/``moments_claim``: MC/init - 1 averaged
    over the sizes (draw ids paired); ``finite_size``: the correction exponent of the
    asymptotic fits and why; ``asymptotic_note``: why there are none, when there are none.
    """

    config: ScalingConfig
    status: tuple[SizeStatus, ...]
    hypotheses: HypothesisStatus
    quantities: tuple[QuantityResult, ...]
    records: pd.DataFrame = field(repr=False)
    moments: tuple[SecondMomentAgreement, ...] = ()
    moments_mean: RelativeDifference | None = None
    moments_claim: Claim | None = None
    finite_size: tuple[float, str] = (math.nan, "")
    asymptotic_note: str = ""
    # the run's arithmetic against float64 on draw 0 of the largest size (None: not measured)
    precision: PrecisionError | None = None

    @property
    def claims(self) -> list[Claim]:
        out = [q.claim for q in self.quantities]
        out += [q.asymptotic_claim for q in self.quantities if q.asymptotic_claim is not None]
        if self.moments_claim is not None:
            out.append(self.moments_claim)
        return out

    def fits(self) -> dict[str, SlopeFit]:
        return {q.prediction.quantity: q.fit for q in self.quantities}

    def quantity(self, name: str) -> QuantityResult:
        for q in self.quantities:
            if q.prediction.quantity == name:
                return q
        raise KeyError(name)


def quantity_margin(quantity: str, margin: float) -> float:
    """The band's half-width for ``quantity``: a squared norm's slope is twice its norm's, so its band is too."""
    return 2 * margin if quantity == SQUARED else margin


def _claim(
    pred: Prediction,
    fit: SlopeFit | AsymptoticFit,
    hyp: HypothesisStatus,
    config: ScalingConfig,
    *,
    asymptotic: bool = False,
    exact: ExactCurve | None = None,
) -> tuple[Claim, int | None]:
    margin = quantity_margin(pred.quantity, config.margin)
    verdict = band_verdict(fit.interval, pred.slope, margin)
    # Corollary 6's slopes need only d * P(x, o) bounded uniformly in d, not exact (S).
    needed = tuple("(S-bounded)" if h == "(S)" else h for h in pred.hypotheses)
    broken = tuple(h for h in hyp.broken if h in needed)
    notes = []
    if not hyp.exact:
        notes.append("no exact side: (S), (S-bounded) and H3 are unchecked for this net")
    elif pred.needs_symmetry and not hyp.symmetric:
        if hyp.bounded:
            notes.append("(S) fails, but d*P(x,o) stays bounded, which is all Cor. 6 needs")
        else:
            notes.append("(S) fails and d*P(x,o) is not stable in d: not implied")
    settle = None
    if verdict is Verdict.INCONCLUSIVE:
        settle = samples_to_settle(fit.interval, fit.slope, int(fit.draws.min()), pred.slope, margin)
        notes.append(
            f"~{settle} draws per size would likely settle it"
            if settle
            else "slope on the band's edge: >100x the draws needed"
        )
    if isinstance(fit, AsymptoticFit):
        notes.append(f"finite-size fit with c d^({fit.exponent:g})")
        if exact is not None and exact.asymptotic_slope is not None:
            notes.append(f"the same fit of the exact (H) curve gives {exact.asymptotic_slope:+.3f}")
    else:
        if fit.correction:
            notes.append(f"fit of E[Q] / E max|Z_i| over d normals; raw slope {fit.raw_slope:+.3f}")
        if exact is not None:
            notes.append(f"exact (H) curve: slope {exact.slope:+.3f}")
    if margin != config.margin:
        notes.append(f"band +-{margin:g}, twice the norm's")
    what = "the exponent beta of log E[Q] = beta log d + alpha + c d^e" if asymptotic else "slope"
    claim = Claim(
        name=f"{pred.quantity}_asymptotic" if asymptotic else pred.quantity,
        statement=f"{pred.statement} ({what} {pred.slope:+g} against log d)",
        predicted=pred.slope,
        estimate=fit.slope,
        interval=fit.interval,
        verdict=verdict,
        hypotheses_needed=needed,
        hypotheses_broken=broken,
        note="; ".join(notes),
    )
    return claim, settle


def check_scaling(
    config: ScalingConfig,
    *,
    rt=None,
    progress: bool | Progress = False,
    records: pd.DataFrame | None = None,
    status: Sequence[SizeStatus] | None = None,
) -> ScalingResult:
    """Run the scaling check. ``records`` (long format, e.g. from a store) skips the Monte
    Carlo; ``status`` skips the exact side. ``rt`` is a ``verify.runtime.Runtime``; with
    one, draw 0 of the largest size is also evaluated in float64 to measure what the run's
    precision costs (``verify.engine.precision_error``, stated in the report). ``progress``:
    one stderr line per phase (``verify.progress``)."""
    from verify.engine import measure, precision_error

    prog = as_progress(progress, "scaling")
    specs = config.specs
    pending = None
    if status is None and records is None and rt is not None and rt.device.type != "cpu":
        # The exact side runs on the CPU and the Monte Carlo on the GPU: side by side.
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1, thread_name_prefix="exact-side")
        pending = pool.submit(lambda: [size_status(s) for s in specs])
        pool.shutdown(wait=False)
    elif status is None:
        status = []
        with prog.phase(f"exact side: (S), H3, d*P(x,o), Eq. 13 at {len(specs)} sizes") as ph:
            for i, s in enumerate(specs, start=1):
                ph.step(f"size {i}/{len(specs)}, dim {s.dim}")
                status.append(size_status(s, progress=prog.enabled))
    if records is None:
        what = f"Monte Carlo, {config.draws} draws x {config.batch} inputs at {len(specs)} sizes"
        with prog.phase(what, bars=True):
            records = measure(
                specs,
                draws=config.draws,
                batch=config.batch,
                seed=config.seed,
                inputs=config.inputs,
                eps_inf=config.eps_inf,
                rt=rt,
                progress=prog.enabled,
            )
    if pending is not None:
        status = pending.result()
    assert status is not None
    hyp = hypothesis_status(status)
    precision = None
    if rt is not None:
        from verify.engine import QUANTITIES

        big = specs[-1]
        mine = records[(records["dim"] == big.dim) & (records["draw"] == 0)]
        values = None
        if len(mine) == len(QUANTITIES) * config.batch:
            table = mine.pivot(index="quantity", columns="input", values="value")
            values = table.loc[list(QUANTITIES)].to_numpy()
        precision = precision_error(
            specs[-1],
            seed=config.seed,
            batch=config.batch,
            rt=rt,
            inputs=config.inputs,
            base_dim=specs[0].dim if config.inputs == "upsampled" else None,
            eps_inf=config.eps_inf,
            values=values,
        )
    _check_alive(records, config.quantities)
    with_square = SECOND_MOMENT_SOURCE in config.quantities
    if with_square:
        status = [_with_exact(st, spec) for st, spec in zip(status, specs)]
    exponent, why = finite_size_exponent(specs[0])
    enough = len(specs) >= ASYMPTOTIC_MIN_SIZES
    note = (
        ""
        if enough
        else (
            f"the asymptotic exponent needs at least {ASYMPTOTIC_MIN_SIZES} sizes to identify the finite-size term "
            f"(got {len(specs)}); give more --dims"
        )
    )
    fit_records = with_squares(records) if with_square else records
    names = list(config.quantities)
    if with_square:
        names.insert(names.index(SECOND_MOMENT_SOURCE) + 1, SQUARED)
    results = []
    fits = "plain and finite-size fits" if enough else "fits"
    with prog.phase(f"bootstrap {fits} of {len(names)} quantities ({config.n_boot} resamples)") as ph:
        for i, q in enumerate(names, start=1):
            ph.step(f"{i}/{len(names)}, {q}")
            pred = SECOND_MOMENT_PREDICTION if q == SQUARED else SCALING_PREDICTIONS[q]
            kw = {"n_boot": config.n_boot, "seed": config.seed, "correction": pred.correction}
            fit = fit_power_law(fit_records, q, "d", **kw)
            exact = _exact_curve(q, status, exponent if enough else None)
            claim, settle = _claim(pred, fit, hyp, config, exact=exact)
            asym = asym_claim = None
            if enough:
                asym = fit_asymptotic_power_law(fit_records, q, "d", exponent=exponent, **kw)
                asym_claim, _ = _claim(pred, asym, hyp, config, asymptotic=True, exact=exact)
            results.append(QuantityResult(pred, fit, claim, settle, asym, asym_claim, exact))
    moments: tuple[SecondMomentAgreement, ...] = ()
    mean = moments_claim = None
    if with_square and all(st.has_exact for st in status):
        with prog.phase(f"Monte Carlo against Eq. 13 at {len(specs)} sizes"):
            moments, mean, moments_claim = _moments(specs, status, records, hyp, config)
    return ScalingResult(
        config,
        tuple(status),
        hyp,
        tuple(results),
        records,
        moments=moments,
        moments_mean=mean,
        moments_claim=moments_claim,
        finite_size=(exponent, why),
        asymptotic_note=note,
        precision=precision,
    )


def with_squares(records: pd.DataFrame) -> pd.DataFrame:
    """The records plus ``logit_grad_l2_sq``, the square of every ``logit_grad_l2`` value."""
    src = records.loc[records["quantity"] == SECOND_MOMENT_SOURCE]
    return pd.concat([records, src.assign(quantity=SQUARED, value=src["value"] ** 2)], ignore_index=True)


def _exact_curve(quantity: str, status: Sequence[SizeStatus], exponent: float | None) -> ExactCurve | None:
    """The exact (H) curve of ``quantity`` (the squared logit-gradient norm, or its root)."""
    if quantity not in (SQUARED, SECOND_MOMENT_SOURCE) or not all(s.has_exact for s in status):
        return None
    power = 1.0 if quantity == SQUARED else 0.5
    d = np.array([s.d for s in status], dtype=np.float64)
    values = np.array([s.init_sq for s in status]) ** power
    he = np.array([s.he_sq for s in status]) ** power
    slope = float(ols_slope(np.log(d), np.log(values))[0])
    beta = None if exponent is None else float(asymptotic_coefficients(d, np.log(values), exponent)[0])
    label = (
        "Eq. 13 under (H), the init's variances"
        if power == 1.0
        else "sqrt of Eq. 13 (an upper bound of E||d_x f_c||_2, Jensen)"
    )
    return ExactCurve(label, values, he, slope, beta)


def _moments(
    specs: Sequence[Spec],
    status: Sequence[SizeStatus],
    records: pd.DataFrame,
    hyp: HypothesisStatus,
    config: ScalingConfig,
) -> tuple[tuple[SecondMomentAgreement, ...], RelativeDifference, Claim]:
    """Monte Carlo E||d_x f_c||_2^2 against Eq. 13, size by size and averaged over the sizes."""
    tolerance = 2 * config.margin  # the squared norm's band, as for its slope
    kw = {"n_boot": config.n_boot, "seed": config.seed}
    frames = [records.loc[records["dim"] == spec.dim] for spec in specs]
    agreements = tuple(
        second_moment_agreement(spec, frame, exact={"he": st.he_sq, "init": st.init_sq}, tolerance=tolerance, **kw)
        for spec, st, frame in zip(specs, status, frames)
    )
    squares = [per_draw_squares(frame) for frame in frames]
    mean = mean_relative_difference(squares, [st.init_sq for st in status], variance="init", **kw)
    claim = agreement_claim(
        mean, tolerance=tolerance, name="second_moments", what="the sizes", hypotheses_broken=hyp.broken
    )
    return agreements, mean, claim


def _check_alive(records: pd.DataFrame, quantities: Sequence[str]) -> None:
    """A size whose every draw has a zero gradient (every ReLU path dead) has no log-mean."""
    sub = records[records["quantity"].isin(list(quantities))]
    means = sub.groupby(["quantity", "dim"])["value"].mean()
    dead = sorted({int(dim) for (_, dim), m in means.items() if not m > 0})
    if dead:
        raise InputError(
            f"at size(s) {dead} every weight draw has a zero input gradient (every ReLU path dead), so there is no "
            "power law to fit; use wider layers (--widths, --channels) or more --draws"
        )
