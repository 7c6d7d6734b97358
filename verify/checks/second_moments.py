"""Eq. 13: Monte Carlo ``E||d_x f_c||_2^2`` against its exact value under (H), and which hypothesis fails.

Two exact values come from ``graphs.moments``: ``he`` (E[w^2] = 2/in-degree, the ideal H3)
and ``init`` (2/nominal fan-in, the variance the initialisation really draws). The Monte
Carlo estimate is the mean of the engine's ``logit_grad_l2`` squared (label uniform over the
logits, as the exact value averages them), one value per weight draw (its inputs averaged
first): draws are independent, inputs of one draw are not.

``second_moment_agreement(spec, records)`` compares one net: the Monte Carlo mean with its
95% BCa interval over draws, both exact values, the relative differences ``MC/exact - 1``
with their intervals (the mean's interval mapped through the increasing ``v/exact - 1``), and
the likely culprit. ``mean_relative_difference`` pools several nets: the mean over nets of
``MC/exact - 1``, with a bootstrap interval *paired over draw ids* whenever the nets share
their draws (draw i of every net uses the streams ``(seed, i)``, so a CNN's kernels and
inputs are the same numbers in every net: per-draw values of pooled nets that differ only in
one window correlate at 0.9 and more, and treating them as independent, as a Stouffer sum of
per-net z scores does, overstates the evidence about twofold). ``agreement_claim`` makes the
pooled difference a ``Claim`` under the toolkit's one verdict rule.

Attribution (``likely_culprit``), on the intervals with the band ``0 +- tolerance``:

* MC agrees with ``init`` but ``init != he`` and MC misses ``he``: H3 fails (zero padding:
  border neurons have fewer in-edges than the fan-in the initialisation divides by); H1 is
  fine.
* MC misses ``init``: H1 fails. A ReLU gate is a function of its neuron's weights (and of
  the input), so ``E[s_p s_p' w_p w_p'] != 0`` for two paths whose weights are *not*
  independent of each other's gates. Random next-layer weights cancel such cross terms
  (sign symmetry), a pooling node's constant ``1/a`` does not: neighbours averaged by one
  pooling node read overlapping inputs, their gates and weights co-vary, and Monte Carlo
  exceeds Eq. 13. On a DAG where one weight sits on two out-edges of a node (reflect
  padding), H5 fails as well. For nets without weight sharing or pooling (dense, random-dag)
  Eq. 13 is exact in expectation (``graphs.moments``), so a miss there is a bug.
* The interval straddles the band's edge: undecided, more draws needed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from graphs.spec import Spec
from verify.results import Claim, Interval, Verdict
from verify.stats import DEFAULT_LEVEL, DEFAULT_N_BOOT, band_verdict, bootstrap_interval, same_draws, samples_to_settle

__all__ = [
    "DEFAULT_TOLERANCE",
    "QUANTITY",
    "VARIANCES",
    "RelativeDifference",
    "SecondMomentAgreement",
    "agreement_claim",
    "exact_second_moments",
    "likely_culprit",
    "mean_relative_difference",
    "per_draw_norms",
    "per_draw_squares",
    "second_moment_agreement",
]

VARIANCES = ("he", "init")
QUANTITY = "logit_grad_l2"
# Band of MC/exact - 1 inside which Monte Carlo agrees with Eq. 13: a relative gap of a
# squared norm below 10% is a gap below ~5% on the norm, the scale of the slope bands.
DEFAULT_TOLERANCE = 0.10
# Hypotheses Eq. 13 with the init's variances relies on: (H) with H3 replaced by the
# variances really drawn.
_NEEDED_INIT = ("H1", "H2", "H4", "H5")
_NEEDED_HE = ("H1", "H2", "H3", "H4", "H5")


def _values(records: pd.DataFrame, quantity: str = QUANTITY) -> pd.Series:
    sub = records[records["quantity"] == quantity]
    if sub.empty:
        raise ValueError(f"no {quantity} records")
    keys = [c for c in ("arch", "dim", "d") if c in sub.columns]
    if keys and len(sub.groupby(keys).size()) > 1:
        raise ValueError("records of several nets: pass the records of one net")
    return sub.set_index("draw")["value"]


def per_draw_squares(records: pd.DataFrame, quantity: str = QUANTITY) -> pd.Series:
    """Per weight draw, the mean over its inputs of ``quantity ** 2`` (indexed by draw, sorted)."""
    values = _values(records, quantity)
    return (values**2).groupby(level="draw").mean()


def per_draw_norms(records: pd.DataFrame, quantity: str = QUANTITY) -> pd.Series:
    """Per weight draw, the mean over its inputs of ``quantity`` (indexed by draw, sorted)."""
    # pandas infers GroupBy.mean's return from the implementation it shares with DataFrameGroupBy;
    # on a SeriesGroupBy it is a Series
    return _values(records, quantity).groupby(level="draw").mean()  # pyright: ignore[reportReturnType]


def exact_second_moments(spec: Spec, *, progress: bool = False) -> dict[str, float]:
    """``E||d_x f_c||_2^2`` under (H) for a uniform label: ``{"he": ..., "init": ...}`` (Eq. 13);
    large nets in row bands (``graphs.moments.predicted_logit_grad_sq``), with a progress bar
    per pass when ``progress``."""
    from graphs.moments import predicted_logit_grad_sq

    return {v: predicted_logit_grad_sq(spec, variance=v, progress=progress) for v in VARIANCES}


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return x.mean(axis=axis)


@dataclass(frozen=True)
class SecondMomentAgreement:
    """One net: Monte Carlo ``E||d_x f_c||^2`` (and ``E||d_x f_c||``) against Eq. 13.

    ``rel_he``/``rel_init``: ``MC/exact - 1`` with their intervals; ``z_he``/``z_init``:
    ``(MC - exact)/s.e.``, kept for scripts, never used for a verdict.
    """

    spec: str
    draws: int
    mc_sq: float
    mc_sq_se: float
    mc_sq_interval: Interval
    mc_norm: float
    mc_norm_se: float
    he: float
    init: float
    rel_he: float
    rel_he_interval: Interval
    rel_init: float
    rel_init_interval: Interval
    z_he: float
    z_init: float
    tolerance: float
    culprit: str

    def as_dict(self) -> dict:
        out = asdict(self)
        for key in ("mc_sq_interval", "rel_he_interval", "rel_init_interval"):
            out[key] = getattr(self, key).to_dict()
        return out


def likely_culprit(spec: Spec, rel_he: Interval, rel_init: Interval, he: float, init: float, tolerance: float) -> str:
    """Which hypothesis a gap between Monte Carlo and Eq. 13 points to (module docstring)."""
    conv = any(layer.shares_weights for layer in spec.layers)
    pool = any(layer.constant_weight is not None for layer in spec.layers)
    h3_gap = not math.isclose(he, init, rel_tol=1e-12)
    v_init = band_verdict(rel_init, 0.0, tolerance)
    v_he = band_verdict(rel_he, 0.0, tolerance)
    band = f"+-{tolerance:.0%}"
    if v_init is Verdict.CONSISTENT:
        if not h3_gap:
            return "agrees with (H)"
        if v_he is Verdict.INCONSISTENT:
            return "H3: agrees with the init's variances, not with 2/in-degree (zero-padded border)"
        return f"agrees with the init's variances; the H3 gap to 2/in-degree ({init / he - 1:+.0%}) is not resolved"
    if v_init is Verdict.INCONCLUSIVE:
        text = f"undecided: the interval of MC/init - 1 reaches past {band}; more draws needed to judge H1"
        if h3_gap and v_he is Verdict.INCONSISTENT:
            text = "H3 fails at the zero-padded border (MC misses 2/in-degree); " + text
        return text
    if not conv and not pool:
        return "UNEXPECTED: Eq. 13 is exact for nets without weight sharing or pooling (a bug?)"
    above = rel_init.low > 0
    if pool:
        what = (
            "H1: neurons averaged by one pooling node read overlapping inputs, so their gates and weights co-vary "
            "and the constant 1/a leaves the cross terms E[s_p s_p' w_p w_p'] that (H) drops"
        )
    else:
        what = "H1: ReLU gates correlate with the shared convolution weights"
    what += " (MC above Eq. 13)" if above else " (MC below Eq. 13)"
    if spec.padding == "reflect":
        what += "; H5 too (reflect padding puts one weight on two out-edges of a node)"
    if h3_gap:
        what += "; H3 also fails at the border"
    return what


def second_moment_agreement(
    spec: Spec,
    records: pd.DataFrame,
    *,
    exact: dict[str, float] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> SecondMomentAgreement:
    """Compare the engine's records of one net (``logit_grad_l2`` per input) with Eq. 13.

    ``exact``: the two (H) values when already computed (``exact_second_moments``).
    """
    if not tolerance > 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    sq = per_draw_squares(records).to_numpy(dtype=np.float64)
    norms = per_draw_norms(records).to_numpy(dtype=np.float64)
    n = int(sq.size)
    mc, norm = float(sq.mean()), float(norms.mean())
    se = float(sq.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    norm_se = float(norms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    interval = bootstrap_interval([sq], _mean, paired=False, n_boot=n_boot, seed=seed, level=level)
    exact = exact or exact_second_moments(spec)
    he, init = float(exact["he"]), float(exact["init"])
    rel_he = interval.map(lambda v: v / he - 1)
    rel_init = interval.map(lambda v: v / init - 1)
    return SecondMomentAgreement(
        spec=spec.describe(),
        draws=n,
        mc_sq=mc,
        mc_sq_se=se,
        mc_sq_interval=interval,
        mc_norm=norm,
        mc_norm_se=norm_se,
        he=he,
        init=init,
        rel_he=mc / he - 1,
        rel_he_interval=rel_he,
        rel_init=mc / init - 1,
        rel_init_interval=rel_init,
        z_he=(mc - he) / se if se > 0 else math.inf,
        z_init=(mc - init) / se if se > 0 else math.inf,
        tolerance=tolerance,
        culprit=likely_culprit(spec, rel_he, rel_init, he, init, tolerance),
    )


@dataclass(frozen=True)
class RelativeDifference:
    """The mean over nets of ``MC/exact - 1`` for one variance, with its bootstrap interval.

    ``paired``: the nets share their draw ids and were resampled jointly; ``correlation``:
    the smallest and largest correlation of per-draw values between two nets (NaN when not
    paired or for one net), the reason the pairing matters.
    """

    variance: str
    estimate: float
    interval: Interval
    paired: bool
    correlation: tuple[float, float]
    draws: int

    def as_dict(self) -> dict:
        return {
            "variance": self.variance,
            "estimate": self.estimate,
            "interval": self.interval.to_dict(),
            "paired": self.paired,
            "correlation": list(self.correlation),
            "draws": self.draws,
        }


def mean_relative_difference(
    per_draw: Sequence[pd.Series],
    exact: Sequence[float] | np.ndarray,
    *,
    variance: str = "init",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> RelativeDifference:
    """Mean over nets k of ``mean(per_draw[k]) / exact[k] - 1``; BCa bootstrap over draws.

    ``per_draw[k]``: net k's per-draw squared norms indexed by draw id (``per_draw_squares``).
    When every net holds the same draw ids, ids are resampled jointly across nets.
    """
    if len(per_draw) != len(exact) or not per_draw:
        raise ValueError("give one exact value per net, and at least one net")
    series = [s.sort_index() for s in per_draw]
    samples = [s.to_numpy(dtype=np.float64) for s in series]
    scale = np.asarray(exact, dtype=np.float64)
    if not (scale > 0).all():
        raise ValueError("exact second moments must be positive")
    paired = len(series) > 1 and same_draws([s.index.to_numpy() for s in series])

    def statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        ratios = np.stack([r.mean(axis=axis) / c for r, c in zip(resampled, scale)], axis=-1)
        return ratios.mean(axis=-1) - 1.0

    estimate = float(statistic(*samples))
    interval = bootstrap_interval(samples, statistic, paired=paired, n_boot=n_boot, seed=seed, level=level)
    if paired:
        corr = np.corrcoef(np.stack(samples))[np.triu_indices(len(samples), 1)]
        correlation = (float(corr.min()), float(corr.max()))
    else:
        correlation = (math.nan, math.nan)
    return RelativeDifference(variance, estimate, interval, paired, correlation, int(min(s.size for s in samples)))


def agreement_claim(
    diff: RelativeDifference,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    name: str = "second_moments",
    what: str = "the nets",
    hypotheses_broken: Sequence[str] = (),
) -> Claim:
    """The claim "Eq. 13 gives E||d_x f_c||_2^2 exactly", judged on ``diff``'s interval with the
    band ``0 +- tolerance``; an undecided verdict notes the draws that would likely settle it."""
    needed = _NEEDED_INIT if diff.variance == "init" else _NEEDED_HE
    verdict = band_verdict(diff.interval, 0.0, tolerance)
    variances = "the init's variances 2/fan-in" if diff.variance == "init" else "E[w^2] = 2/in-degree"
    notes = []
    if diff.paired and math.isfinite(diff.correlation[0]):
        notes.append(
            f"draws shared by the nets (per-draw values correlate at {diff.correlation[0]:.2f}..{diff.correlation[1]:.2f}), "
            "resampled jointly"
        )
    if verdict is Verdict.INCONCLUSIVE:
        settle = samples_to_settle(diff.interval, diff.estimate, diff.draws, 0.0, tolerance)
        notes.append(
            f"~{settle} draws would likely settle it" if settle else "on the band's edge: >100x the draws needed"
        )
    return Claim(
        name=name,
        statement=(
            f"Eq. 13 under (H) with {variances} gives E||d_x f_c||_2^2 exactly: Monte Carlo/exact - 1 = 0, "
            f"averaged over {what} (band +-{tolerance:g})"
        ),
        predicted=0.0,
        estimate=diff.estimate,
        interval=diff.interval,
        verdict=verdict,
        hypotheses_needed=needed,
        hypotheses_broken=tuple(h for h in hypotheses_broken if h in needed),
        note="; ".join(notes),
    )
