"""Lemmas 7 and 8 exactly, with the symmetry (S), (S-bounded) and H3 of every size.

``check_paths(config)`` computes the path sums ``P(x, o) = sum over paths x -> o of prod
1/d_p`` (``d_p`` the in-degree of each node after the input, parallel edges counted) for
every input x and logit o of one family at several sizes, either

- in float64 through the operator form (one backward pass per class of logits with identical
  in-edges: full-size nets in seconds), (S) by the exact DAG polynomials when the DAG is
  small and by the randomised identity test otherwise; or
- exactly (``exact=True``): Fractions by dynamic programming on the networkx DAG, (S) by the
  exact path-degree polynomials (at most ``EXACT_MAX_EDGES`` edges),

and makes three claims of them (``lemma7_claim``, ``lemma8_claim``, ``bounded_claim``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Sequence

import numpy as np

from graphs.errors import InputError
from graphs.spec import Spec
from verify.checks.common import spec_settings
from verify.checks.scaling import HypothesisStatus, SizeStatus, hypothesis_status
from verify.progress import Progress, as_progress
from verify.results import Claim, Interval, Verdict
from verify.settings import EXACT_MAX_EDGES
from verify.theory import DP_BOUND_RATIO, LEMMA7_TOTAL, LEMMA8_SCALED_PATH_SUM, dp_range_ratios

__all__ = [
    "EXACT_MAX_EDGES",
    "FLOAT_RTOL",
    "MAX_TRIALS",
    "PathRow",
    "PathsConfig",
    "PathsResult",
    "bounded_claim",
    "check_paths",
    "lemma7_claim",
    "lemma8_claim",
    "path_row",
]


# An identity "holds to rounding" in float64 within this relative distance of its value: the
# operator form's sums of ~10^5 terms of size ~1/d drift by ~1e-15, a real failure (one path
# too many or too few) moves them by at least ~1/d^L >> 1e-9 for the nets checked here.
FLOAT_RTOL = 1e-9

# Each randomised (S) trial multiplies the false-positive bound by eps <= ~1e-10 (graphs.symmetry):
# beyond this many trials the bound is below any float and the test only costs time.
MAX_TRIALS = 64


@dataclass(frozen=True)
class PathsConfig:
    """What to compute: ``specs`` (one family, one or more sizes) and how."""

    specs: tuple[Spec, ...]
    exact: bool = False
    trials: int = 4  # of the randomised (S) test (operator form, large DAGs only)
    seed: int = 0  # of the randomised (S) test

    def __post_init__(self) -> None:
        from graphs.pathsums import spec_edge_count
        from graphs.rng import check_seed

        specs = tuple(sorted(self.specs, key=lambda s: s.d))
        object.__setattr__(self, "specs", specs)
        if not specs:
            raise InputError("no sizes to check; give e.g. --dims 16,32")
        if len({s.family for s in specs}) != 1:
            raise InputError("every spec of a paths check must come from one family")
        if len({s.d for s in specs}) != len(specs):
            raise InputError("two sizes give the same d; give distinct sizes")
        if isinstance(self.trials, bool) or int(self.trials) != self.trials or self.trials < 1:
            raise InputError(f"--trials: {self.trials!r} is not a positive integer; give e.g. --trials 4")
        if self.trials > MAX_TRIALS:
            raise InputError(
                f"--trials: {self.trials} trials; each one multiplies the false-positive bound by ~1e-10 or less, "
                f"so give at most --trials {MAX_TRIALS} (4 is plenty)"
            )
        check_seed(self.seed)
        from graphs.spec import exact_view, obstacles_text

        views = []
        for spec in specs:
            view, obstacles = exact_view(spec)
            if view is None:
                raise InputError(
                    f"paths needs the exact side, which {spec.family} at dim {spec.dim} lacks: {obstacles_text(obstacles)} "
                    "(verify scaling still runs its Monte Carlo)"
                )
            views.append(view)
        specs = tuple(views)
        object.__setattr__(self, "specs", specs)
        if self.exact:
            for spec in specs:
                edges = spec_edge_count(spec)
                if edges > EXACT_MAX_EDGES:
                    raise InputError(
                        f"--exact: the DAG of {spec.describe()} has {edges:.3g} edges (limit {EXACT_MAX_EDGES:.0e}); "
                        "drop --exact to use the operator form, or give smaller --dims or --channels"
                    )

    @property
    def family(self) -> str:
        return self.specs[0].family

    @property
    def method(self) -> str:
        if self.exact:
            return "exact Fractions by dynamic programming on the networkx DAG"
        return "operator form in float64 (one backward pass per class of logits with identical in-edges)"

    def settings(self) -> dict:
        """Every setting that changes the numbers (for the JSON ``run`` and the report)."""
        return {
            **spec_settings(self.specs),
            "exact": self.exact,
            "trials": self.trials,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class PathRow:
    """One size: path sums, (S), H3 and the breaks of its layer kinds."""

    dim: int
    d: int
    lemma7_total: float  # sum_x P(x, o) for the logit o where it is farthest from 1
    lemma7_exact: Fraction | None  # the same, exactly (exact mode)
    dp_min: float  # min over x and o of d * P(x, o)
    dp_max: float
    dp_exact: tuple[Fraction, Fraction] | None  # (min, max) exactly (exact mode)
    symmetric: bool  # (S) for every logit
    symmetry_method: str  # "dag-polynomial" (exact) or "randomised"
    symmetry_trials: int  # trials run by the randomised test (0 when exact)
    primes: tuple[int, ...]  # its moduli, one per trial
    false_positive_bound: float  # probability that "symmetric" is wrong; 0 when exact or failing
    witness: tuple[int, int] | None  # (logit, input) whose path-degrees differ from input 0's
    h3_fraction: float
    structural: tuple[str, ...]  # hypotheses the layer kinds break by construction
    # d * P(x, o_0) of logit 0 over the input, shape of the spec's input (the heatmap)
    scaled_first_logit: np.ndarray = field(repr=False, compare=False)

    @property
    def status(self) -> SizeStatus:
        """The same size as the scaling check sees it (for the shared (S-bounded) rule)."""
        return SizeStatus(
            self.dim,
            self.d,
            self.symmetric,
            self.symmetry_method,
            self.false_positive_bound,
            self.h3_fraction,
            self.dp_min,
            self.dp_max,
            self.structural,
        )

    @property
    def channels_identical(self) -> bool:
        """Whether every input channel carries the same d * P(x, o_0) (images only)."""
        img = self.scaled_first_logit
        if img.ndim != 3 or img.shape[0] < 2:
            return True
        return all(np.allclose(img[c], img[0], rtol=1e-12, atol=0.0) for c in range(1, img.shape[0]))


def _farthest_from_one(values):
    return max(values, key=lambda v: abs(v - 1))


def path_row(spec: Spec, *, exact: bool = False, trials: int = 4, seed: int = 0, progress: bool = False) -> PathRow:
    """Path sums, (S), H3 and structural breaks of one spec (see the module docstring).

    The operator form goes in row bands on large nets (``graphs.streaming``: bounded memory
    at 4096 x 4096 pixels), with a progress bar per pass when ``progress``.
    """
    from graphs.hypotheses import h3_violation_fraction
    from graphs.pathsums import path_sum_summary

    structural = tuple(sorted({h for layer in spec.layers for h in layer.hypotheses_broken()}))
    h3 = float(h3_violation_fraction(spec))
    if exact:
        return _exact_row(spec, h3, structural)
    from graphs.symmetry import symmetry_verdict

    paths = path_sum_summary(spec, progress=progress)
    sym = symmetry_verdict(spec, trials=trials, seed=seed, progress=progress)
    return PathRow(
        spec.dim,
        spec.d,
        float(_farthest_from_one(paths.totals)),
        None,
        float(paths.scaled_min),
        float(paths.scaled_max),
        None,
        bool(sym.symmetric),
        sym.method,
        int(sym.trials),
        tuple(int(p) for p in sym.primes),
        float(sym.false_positive_bound),
        None if sym.witness is None else (int(sym.witness[0]), int(sym.witness[1])),
        h3,
        structural,
        paths.first,
    )


def _exact_row(spec: Spec, h3: float, structural: tuple[str, ...]) -> PathRow:
    from graphs.dag import output_nodes, to_dag
    from graphs.pathsums import output_classes, path_sums_dp
    from graphs.symmetry import dag_symmetry_verdict

    g = to_dag(spec)
    outs = output_nodes(g)
    classes = output_classes(spec)
    totals, lows, highs = [], [], []
    first = None
    for members in classes:
        sums = path_sums_dp(g, outs[members[0]], exact=True)
        values = [sums[(0, i)] for i in range(spec.d)]
        totals.append(sum(values, Fraction(0)))
        scaled = [spec.d * v for v in values]
        lows.append(min(scaled))
        highs.append(max(scaled))
        if 0 in members:
            first = np.array([float(v) for v in scaled]).reshape(spec.input_shape)
    assert first is not None, "output_classes partitions the logits, so one class holds logit 0"
    sym = dag_symmetry_verdict(g, [outs[c[0]] for c in classes])
    # DAG nodes are (layer, index): the witness becomes (logit, input) indices as in the randomised test.
    witness = None if sym.witness is None else (int(sym.witness[0][1]), int(sym.witness[1][1]))
    worst = _farthest_from_one(totals)
    lo, hi = min(lows), max(highs)
    return PathRow(
        spec.dim,
        spec.d,
        float(worst),
        worst,
        float(lo),
        float(hi),
        (lo, hi),
        bool(sym.symmetric),
        sym.method,
        0,
        (),
        0.0,
        witness,
        h3,
        structural,
        first,
    )


def _is_one(value: float, exact_value: Fraction | None) -> bool:
    """Whether a path-sum identity's value is 1: exactly for Fractions, to rounding in float64."""
    if exact_value is not None:
        return exact_value == 1
    return abs(value - 1) <= FLOAT_RTOL


def lemma7_claim(rows: Sequence[PathRow], exact: bool) -> Claim:
    """Lemma 7 on every size: the total farthest from 1, consistent when it is 1 (to rounding)."""
    worst = max(rows, key=lambda r: abs(r.lemma7_total - 1))
    ok = all(_is_one(r.lemma7_total, r.lemma7_exact) for r in rows)
    method = "exact" if exact else "float64, rounding ~1e-15"
    bad = [r.dim for r in rows if not _is_one(r.lemma7_total, r.lemma7_exact)]
    if exact:
        note = f"exact total {worst.lemma7_exact} at dim {worst.dim}" if bad else "exactly 1 at every size"
    else:
        note = f"largest |total - 1| = {abs(worst.lemma7_total - 1):.1e} (dim {worst.dim})"
    if bad:
        note += f"; the total is not 1 at dims {bad}"
    return Claim(
        name="Lemma 7",
        statement=(
            "sum_x P(x, o) = 1 for every logit o of every DAG (a random walk up from o ends at an input). "
            "Consistent when the total farthest from 1 over logits and sizes is 1 "
            + ("exactly (Fractions)" if exact else f"to float64 rounding (within {FLOAT_RTOL:g} relative)")
            + ", inconsistent otherwise."
        ),
        predicted=LEMMA7_TOTAL,
        estimate=worst.lemma7_total,
        interval=Interval(worst.lemma7_total, worst.lemma7_total, 1.0, method),
        verdict=Verdict.CONSISTENT if ok else Verdict.INCONSISTENT,
        hypotheses_needed=(),
        hypotheses_broken=(),
        note=note,
    )


def _range_is_one(row: PathRow) -> bool:
    if row.dp_exact is not None:
        return row.dp_exact[0] == 1 == row.dp_exact[1]
    return _is_one(row.dp_min, None) and _is_one(row.dp_max, None)


def lemma8_claim(rows: Sequence[PathRow], exact: bool) -> Claim:
    """Lemma 8 on the sizes where (S) holds (rule in the claim's statement)."""
    holding = [r for r in rows if r.symmetric]
    failing = [r.dim for r in rows if not r.symmetric]
    judged = holding or list(rows)  # the range shown: over the sizes Lemma 8 speaks of, if any
    lo = min(r.dp_min for r in judged)
    hi = max(r.dp_max for r in judged)
    estimate = _farthest_from_one([lo, hi])
    contradictions = [r for r in holding if not _range_is_one(r)]
    notes = []
    if contradictions:
        verdict = Verdict.INCONSISTENT
        r = contradictions[0]
        notes.append(f"(S) holds at dim {r.dim} but d*P(x,o) ranges over [{r.dp_min:.6g}, {r.dp_max:.6g}]")
        if r.symmetry_method == "randomised":
            notes.append(
                f"either the randomised (S) test erred (p_fp <= {r.false_positive_bound:.1e}) or Lemma 8 fails"
            )
    elif holding:
        verdict = Verdict.CONSISTENT
        notes.append(f"(S) holds at dims {[r.dim for r in holding]} and d*P(x,o) = 1 there for every x and o")
    else:
        verdict = Verdict.INCONCLUSIVE
        notes.append(
            "(S) fails at every size, so Lemma 8 predicts nothing here; "
            "a net with (S), e.g. --arch dense or a strided-cnn with kernel = stride and circular padding, tests it"
        )
    if failing and holding:
        notes.append(f"(S) fails at dims {failing}, which the verdict leaves out")
    return Claim(
        name="Lemma 8 / (S)",
        statement=(
            "Under (S), d * P(x, o) = 1 for every input x and logit o. Inconsistent when (S) holds at some size "
            "while d*P(x,o) differs from 1 there ("
            + ("exactly, Fractions" if exact else f"beyond float64 rounding, {FLOAT_RTOL:g} relative")
            + "); consistent when (S) holds at one size at least and d*P(x,o) = 1 at each of them; inconclusive when "
            "(S) fails at every size (the lemma then says nothing: d*P(x,o) may take any value)."
        ),
        predicted=LEMMA8_SCALED_PATH_SUM,
        estimate=estimate,
        interval=Interval(
            lo, hi, 1.0, "exact range over inputs and logits" if exact else "float64 range over inputs and logits"
        ),
        verdict=verdict,
        hypotheses_needed=("(S)",),
        hypotheses_broken=("(S)",) if failing else (),
        note="; ".join(notes),
    )


def bounded_claim(rows: Sequence[PathRow], hyp: HypothesisStatus) -> Claim:
    """(S-bounded) on the two largest sizes, by the rule the scaling check uses (``verify.theory.dp_bounded``)."""
    statement = (
        "d*P(x,o) bounded above and below uniformly in d (what Corollary 6's slopes need). Judged on the "
        f"two largest sizes: consistent when both ends of its range agree within a factor {DP_BOUND_RATIO:g} and the "
        "minimum is positive (or (S) holds at every size, which gives 1 everywhere); inconsistent when they do not; "
        "inconclusive with one size only. Estimate: the ratio (larger size / smaller) farthest from 1."
    )
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        ratios = dp_range_ratios((a.dp_min, a.dp_max), (b.dp_min, b.dp_max))
        estimate = max(ratios, key=lambda r: abs(math.log(r)) if 0 < r < math.inf else math.inf)
        interval = Interval(min(ratios), max(ratios), 1.0, f"ratios of the ranges at dims {b.dim} / {a.dim}")
        if hyp.symmetric:
            verdict, note = Verdict.CONSISTENT, "(S) holds at every size"
        elif hyp.bounded:
            verdict = Verdict.CONSISTENT
            note = f"(S) fails, but [min, max] of d*P(x,o) moves by a factor {estimate:.4g} from dim {a.dim} to {b.dim}"
        else:
            verdict = Verdict.INCONSISTENT
            note = (
                f"[min, max] of d*P(x,o) moves from [{a.dp_min:.4g}, {a.dp_max:.4g}] at dim {a.dim} to "
                f"[{b.dp_min:.4g}, {b.dp_max:.4g}] at dim {b.dim}: Corollary 6's slopes are not implied"
                + ("" if b.dp_min > 0 else " (the minimum is 0: some input has no path to the logits)")
            )
    else:
        estimate, interval = None, Interval.none("one size")
        if hyp.symmetric:
            verdict, note = Verdict.CONSISTENT, "(S) holds, so d*P(x,o) = 1"
        else:
            verdict, note = Verdict.INCONCLUSIVE, "one size only: give two sizes or more to judge the trend"
    return Claim(
        name="(S-bounded)",
        statement=statement,
        predicted=1.0,
        estimate=estimate,
        interval=interval,
        verdict=verdict,
        note=note,
    )


@dataclass(frozen=True)
class PathsResult:
    """Everything ``check_paths`` computed and concluded."""

    config: PathsConfig
    rows: tuple[PathRow, ...]
    hypotheses: HypothesisStatus
    lemma7: Claim
    lemma8: Claim
    bounded: Claim

    @property
    def claims(self) -> list[Claim]:
        return [self.lemma7, self.lemma8, self.bounded]


def check_paths(config: PathsConfig, *, progress: bool | Progress = False) -> PathsResult:
    """Run the paths check on the CPU in float64 or Fractions (the randomised (S) test needs
    exact float64 integer arithmetic). ``progress``: one stderr line for the phase, updated
    per size (``verify.progress``)."""
    prog = as_progress(progress, "paths")
    rows = []
    n = len(config.specs)
    what = "exact DAG, Fractions" if config.exact else "operator form"
    with prog.phase(f"path sums, (S) and H3 at {n} size(s) ({what})") as ph:
        for i, spec in enumerate(config.specs, start=1):
            ph.step(f"size {i}/{n}, dim {spec.dim} (d = {spec.d:,})")
            rows.append(
                path_row(spec, exact=config.exact, trials=config.trials, seed=config.seed, progress=prog.enabled)
            )
    hyp = hypothesis_status([r.status for r in rows])
    return PathsResult(
        config,
        tuple(rows),
        hyp,
        lemma7_claim(rows, config.exact),
        lemma8_claim(rows, config.exact),
        bounded_claim(rows, hyp),
    )
