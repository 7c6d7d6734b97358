"""Lemma 9 by Monte Carlo, with the exact (H) second moments of Eq. 13 beside it.

``check_lemma9(config)`` does three things per size:

1. **Lemma 9.** Under (H), two distinct paths p != p' from one input have ``E[w_p w_p'] = 0``,
   and a path with at least one random weight has ``E[w_p] = 0``; a path made of pooling
   weights only has the constant product ``prod 1/a`` instead. Paths of the explicit DAG are
   sampled (``verify.path_products``, the ``PATH_SAMPLE`` stream), the weights they carry are
   drawn ``draws`` times through the one Monte Carlo loop (``verify.montecarlo``; records of
   quantity ``weight``, ``input`` = the weight's column), and each moment is t-tested against 0.

   Path products are products of up to L Gaussians: heavy-tailed (kurtosis 3^L for L
   independent factors, 3^(2L) for a pair product). Under (H) each tested product is
   *symmetric* about 0 (flip the sign of a weight that lies on p but not on p'), and for
   symmetric heavy-tailed data the one-sample t-test is conservative, so its level holds; its
   power is what the tails cost, hence many draws. One t-test per path and per pair, then
   Holm's step-down correction over all of them together (``verify.stats.holm``), and the
   verdict of the family (``verify.stats.rejection_verdict``): *inconsistent* when some test
   rejects at family-wise level ``alpha``.

   The planted failure. ``init="shared"`` draws the weights of two layers with a common
   Gaussian component: every weight of those layers is ``sd * (sqrt(1 - rho) z + sqrt(rho) s)``
   with one scalar ``s`` per draw (the ``SHARED_COMPONENT`` stream) shared by both layers. Each
   weight keeps mean 0 and variance ``sd^2`` but the two layers are dependent (H4 fails, and so
   does H5). A local pair rerouted across those two layers then has
   ``E[w_p w_p'] = 3 rho^2 sd_1^2 sd_2^2 E[(rest)^2] != 0``, which the test must detect.

2. **Eq. 13 exactly.** ``E||d_x f_0||_2^2`` of logit 0 by dynamic programming on the DAG in
   exact fractions and by the operator form in float64 (``graphs.moments``), for both
   variances: equal up to float64 rounding.

3. **Monte Carlo against Eq. 13.** The engine's ``E||d_x f_c||_2^2`` (He weights whatever
   ``init``) against the exact value (``mc_draws`` draws; 0 skips it).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import pandas as pd

from graphs.errors import InputError
from graphs.spec import Spec
from verify.checks.common import spec_settings
from verify.checks.second_moments import DEFAULT_TOLERANCE, SecondMomentAgreement
from verify.path_products import random_layers
from verify.progress import Progress, as_progress
from verify.results import Claim, Interval, Verdict
from verify.stats import DEFAULT_N_BOOT, holm, rejection_verdict
from verify.theory import LEMMA9_HYPOTHESES

__all__ = [
    "INITS",
    "MAX_EDGES",
    "MC_BATCH",
    "MIN_DRAWS",
    "ROUNDING_RTOL",
    "TEST_COLUMNS",
    "ExactSecondMoment",
    "Lemma9Config",
    "Lemma9Result",
    "Lemma9Size",
    "check_lemma9",
    "draw_weights",
    "exact_two_ways",
    "sample_shared_params",
    "weight_matrix",
]

INITS = ("he", "shared")

# Paths are enumerated or sampled on the explicit DAG: keep it small.
MAX_EDGES = 200_000

# Fewer draws leave a t-test of heavy-tailed products without meaning.
MIN_DRAWS = 20

# Inputs per draw of the Monte Carlo against Eq. 13 (draws, not inputs, set its interval).
MC_BATCH = 2

# DP (exact) and operator form (float64) agree to rounding: the operator form is a chain of
# float64 products and sums whose relative error is ~1e-16 per operation, ~1e-15 in all on these
# small nets; a real disagreement (a wrong factor, a missed edge) is of order 1.
ROUNDING_RTOL = 1e-12

# One row per test: kind (mean|pair), input (the DAG node), edges (random weights on the path
# for a mean test; edges on exactly one of the two paths for a pair), estimate and its standard
# error, t, p, local (pairs: whether p' reroutes p through one other node), p_adj (Holm over
# every row of the size), reject (p_adj < alpha).
TEST_COLUMNS = ("kind", "input", "edges", "estimate", "stderr", "t", "p", "local", "p_adj", "reject")


@dataclass(frozen=True)
class Lemma9Config:
    """What to test: ``specs`` (one spec or several sizes of one family) and how.

    ``shared_layers`` (1-based, ``init="shared"`` only) default to the first two layers with
    random weights; ``max_pairs`` is split evenly over the ``max_inputs`` inputs;
    ``mc_draws`` = 0 skips the Monte Carlo against Eq. 13.
    """

    specs: Spec | tuple[Spec, ...]  # a single spec is wrapped in a tuple: read ``spec_tuple``
    draws: int = 4000
    seed: int = 0
    init: str = "he"
    shared_layers: tuple[int, ...] | None = None  # exactly two layers; __post_init__ checks
    rho: float = 0.9
    max_inputs: int = 4
    max_paths: int = 60
    max_pairs: int = 1500
    alpha: float = 0.05
    mc_draws: int = 400

    def __post_init__(self) -> None:
        from graphs.pathsums import spec_edge_count
        from graphs.rng import check_seed

        specs = (self.specs,) if isinstance(self.specs, Spec) else tuple(self.specs)
        object.__setattr__(self, "specs", specs)
        if not specs:
            raise InputError("give at least one size, e.g. --dims 6")
        if len({s.family for s in specs}) != 1:
            raise InputError("every spec of a Lemma 9 check must come from one family")
        if self.init not in INITS:
            raise InputError(f"--init {self.init!r}: choose one of {', '.join(INITS)}")
        for name in ("draws", "max_inputs", "max_paths", "max_pairs"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise InputError(f"--{name.replace('_', '-')}: {value} is not a positive integer; give e.g. 1")
        if self.draws < MIN_DRAWS:
            raise InputError(f"--draws {self.draws}: need at least {MIN_DRAWS} weight draws for a t-test")
        if self.mc_draws < 0 or self.mc_draws == 1 or int(self.mc_draws) != self.mc_draws:
            raise InputError(f"--mc-draws {self.mc_draws}: give 0 (skip) or at least 2 draws")
        if not (math.isfinite(self.alpha) and 0.0 < self.alpha < 1.0):
            raise InputError(f"--alpha {self.alpha}: give a level in (0, 1), e.g. 0.05")
        if not (math.isfinite(self.rho) and 0.0 < self.rho <= 1.0):
            raise InputError(f"--rho {self.rho}: the shared share of the variance must lie in (0, 1]")
        check_seed(self.seed)
        if self.shared_layers is not None:
            if self.init != "shared":
                raise InputError("--shared-layers applies to --init shared only; drop it or add --init shared")
            layers = tuple(int(v) for v in self.shared_layers)
            object.__setattr__(self, "shared_layers", layers)
            if len(layers) != 2:
                raise InputError(f"--shared-layers: give exactly two layers, like 1,2; got {self.shared_layers}")
        for spec in specs:
            edges = spec_edge_count(spec)
            if edges > MAX_EDGES:
                raise InputError(
                    f"{spec.describe()} has {edges} edges (limit {MAX_EDGES}): Lemma 9 works on the explicit DAG; "
                    "use smaller --dims, --hidden, --widths or --channels"
                )
            self.layers_shared(spec)

    def layers_shared(self, spec: Spec) -> tuple[int, int] | None:
        """The two layers that share a component in ``spec`` (None under He initialisation)."""
        if self.init != "shared":
            return None
        rand = random_layers(spec)
        layers = self.shared_layers
        if layers is None:
            if len(rand) < 2:
                raise InputError(
                    f"--init shared needs two layers with random weights; {spec.describe()} has {len(rand)}"
                )
            return (rand[0], rand[1])
        if any(layer not in rand for layer in layers) or layers[0] == layers[1]:
            raise InputError(
                f"--shared-layers {','.join(map(str, layers))}: give two distinct layers with random weights, "
                f"among {rand}"
            )
        return (layers[0], layers[1])

    @property
    def spec_tuple(self) -> tuple[Spec, ...]:
        """The sizes to test, as a tuple (``specs`` also accepts a single spec)."""
        return self.specs if isinstance(self.specs, tuple) else (self.specs,)

    @property
    def family(self) -> str:
        return self.spec_tuple[0].family

    def settings(self) -> dict[str, Any]:
        """Every setting that changes the numbers (for the JSON ``run`` and the report)."""
        s0 = self.spec_tuple[0]
        shared = self.layers_shared(s0)  # None exactly when init is not "shared"
        return {
            **spec_settings(self.spec_tuple),
            "draws": self.draws,
            "seed": self.seed,
            "init": self.init,
            # the layers really shared (the default resolved): they change the numbers
            "shared_layers": None if shared is None else list(shared),
            "rho": self.rho,
            "max_inputs": self.max_inputs,
            "max_paths": self.max_paths,
            "max_pairs": self.max_pairs,
            "alpha": self.alpha,
            "mc_draws": self.mc_draws,
            "mc_batch": MC_BATCH,
            "mc_tolerance": DEFAULT_TOLERANCE,
            "n_boot": DEFAULT_N_BOOT,
        }


@dataclass(frozen=True)
class ExactSecondMoment:
    """``E||d_x f_0||_2^2`` of logit 0 under (H) with one variance: DP (exact) and operator form."""

    variance: str
    dp: Fraction
    operator: float

    @property
    def difference(self) -> float:
        return abs(float(self.dp) - self.operator)

    @property
    def within_rounding(self) -> bool:
        return self.difference <= ROUNDING_RTOL * max(abs(float(self.dp)), abs(self.operator))

    def as_dict(self) -> dict[str, Any]:
        return {
            "dp": str(self.dp),
            "dp_float": float(self.dp),
            "operator": self.operator,
            "difference": self.difference,
        }


@dataclass(frozen=True)
class Lemma9Size:
    """One size: every test, what was tested, the exact and Monte Carlo second moments, the claims."""

    spec: Spec
    draws: int
    init: str
    alpha: float
    tests: pd.DataFrame = field(repr=False)  # columns TEST_COLUMNS
    weights: tuple[tuple, ...] = field(repr=False)  # column j of the weight records: param (layer, *index)
    inputs: int
    paths: int
    pure_pool_paths: int
    pure_pool_constant: bool
    shared_out_params: int
    shared_layers: tuple[int, int] | None
    notes: tuple[str, ...]
    exact: tuple[ExactSecondMoment, ...]
    monte_carlo: SecondMomentAgreement | None  # the engine's records against Eq. 13 (None when skipped)
    mc_records: pd.DataFrame | None = field(repr=False)
    claims: tuple[Claim, ...]  # Lemma 9, Eq. 13 DP = operator, and Eq. 13 Monte Carlo unless skipped

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def lemma9(self) -> Claim:
        return self.claims[0]

    @property
    def rejected(self) -> bool:
        return self.lemma9.verdict is Verdict.INCONSISTENT

    @property
    def expected_rejection(self) -> bool | None:
        """Whether the test should reject: yes for the planted failure, no under He
        initialisation, and no definite answer where the net itself breaks H5."""
        if self.init == "shared":
            return True
        return None if self.shared_out_params else False

    @property
    def as_expected(self) -> bool | None:
        expected = self.expected_rejection
        return None if expected is None else self.rejected == expected

    def counts(self) -> dict[str, int]:
        out = {k: int((self.tests["kind"] == k).sum()) for k in ("mean", "pair")}
        out["local"] = int((self.tests["local"] == True).sum())  # noqa: E712 - object column with None
        return out

    def smallest(self, kind: str) -> tuple[float, float]:
        """Smallest raw and Holm-adjusted p-value among the tests of ``kind`` (nan if none)."""
        t = self.tests[self.tests["kind"] == kind]
        if t.empty:
            return math.nan, math.nan
        return float(t["p"].min()), float(t["p_adj"].min())


@dataclass(frozen=True)
class Lemma9Result:
    """Everything ``check_lemma9`` measured and concluded; ``records`` are the weight draws."""

    config: Lemma9Config
    sizes: tuple[Lemma9Size, ...]
    records: pd.DataFrame = field(repr=False)

    @property
    def claims(self) -> list[Claim]:
        return [c for s in self.sizes for c in s.claims]

    @property
    def tests(self) -> pd.DataFrame:
        """Every test of every size, with its ``dim``."""
        return pd.concat([s.tests.assign(dim=s.dim) for s in self.sizes], ignore_index=True)

    @property
    def rejected(self) -> bool:
        return any(s.rejected for s in self.sizes)

    @property
    def as_expected(self) -> bool:
        return all(s.as_expected is not False for s in self.sizes)


# ----------------------------------------------------------------------------- weight draws


def sample_shared_params(spec: Spec, seed: int, draw: int, *, layers: tuple[int, int], rho: float) -> list:
    """He weights of draw ``draw``, except that ``layers`` share a common Gaussian component
    (module docstring); float64."""
    import torch

    from graphs.rng import Stream, generator_for
    from verify.model import init_params

    params = init_params(spec, generator_for(Stream.WEIGHTS, seed, draw), dtype=torch.float64)
    s = torch.randn((), generator=generator_for(Stream.SHARED_COMPONENT, seed, draw), dtype=torch.float64)
    for layer_id in layers:
        w = params[layer_id - 1]
        fan = torch.as_tensor(spec.layers[layer_id - 1].fan_in(), dtype=torch.float64)
        sd = torch.sqrt(2.0 / fan)
        if sd.dim():
            sd = sd.unsqueeze(1)
        nonzero = (w != 0).to(torch.float64)  # masked layers keep their zeros off the mask
        params[layer_id - 1] = math.sqrt(1.0 - rho) * w + math.sqrt(rho) * s * sd * nonzero
    return params


def draw_weights(
    spec: Spec,
    weights: Sequence[tuple],
    draws: int,
    seed: int,
    *,
    init: str = "he",
    shared_layers: tuple[int, int] | None = None,
    rho: float = 0.9,
    rt=None,
    progress: bool = False,
) -> pd.DataFrame:
    """The random weights ``weights`` (``(layer, *index)`` params of the DAG) in draws
    ``0..draws-1``, as long-format records (quantity ``weight``, ``input`` = index into
    ``weights``). Only these entries are kept, so memory does not grow with the net's size."""
    import torch

    from graphs.rng import Stream, generator_for
    from verify.model import init_params
    from verify.montecarlo import block_records, monte_carlo
    from verify.store import TaskKey

    if init not in INITS or (init == "shared" and shared_layers is None):
        raise ValueError(f"init {init!r}: give 'he', or 'shared' with the two shared layers")
    gather: list[tuple[int, np.ndarray, torch.Tensor]] = []
    for layer_id in sorted({p[0] for p in weights}):
        cols = np.array([j for j, p in enumerate(weights) if p[0] == layer_id])
        shape = spec.layers[layer_id - 1].weight_shape()
        flat = torch.as_tensor([int(np.ravel_multi_index(weights[j][1:], shape)) for j in cols])
        gather.append((layer_id, cols, flat))

    def sample(i: int) -> list:
        if init == "shared":
            assert shared_layers is not None, "checked on entry: init 'shared' comes with its layers"
            return sample_shared_params(spec, seed, i, layers=shared_layers, rho=rho)
        return init_params(spec, generator_for(Stream.WEIGHTS, seed, i), dtype=torch.float64)

    def block(ids: Sequence[int]) -> dict[str, np.ndarray]:
        values = np.empty((len(ids), 1, len(weights)), dtype=np.float64)
        for r, i in enumerate(ids):
            w = sample(i)
            for layer_id, cols, flat in gather:
                values[r, 0, cols] = w[layer_id - 1].reshape(-1)[flat].numpy()
        return block_records(ids, ("weight",), values)

    # Drawing a net's weights costs about one operation per weight: far below the runtime's
    # single-thread threshold, so the draws run on one thread. Blocks of 64 draws amortise the
    # loop's per-block cost; draw i is the same number in any block.
    shapes = [s for layer in spec.layers if (s := layer.weight_shape()) is not None]
    n_weights = sum(math.prod(s) for s in shapes)
    block_size = 64
    # What the stored numbers depend on besides the spec and the draw id (verify.store): which
    # weights are kept and how they are drawn.
    key = TaskKey(
        "lemma9-weights",
        seed,
        {
            "revision": 1,
            "weights": hashlib.sha256(json.dumps([list(map(int, p)) for p in weights]).encode()).hexdigest(),
            "init": init,
            "shared_layers": list(shared_layers) if init == "shared" and shared_layers is not None else None,
            "rho": rho if init == "shared" else None,
        },
    )
    return monte_carlo(
        spec,
        range(draws),
        block,
        rt=rt,
        block_size=block_size,
        work_flops=float(n_weights * block_size),
        progress=progress,
        desc=f"weight draws, dim={spec.dim}",
        key=key,
    )


def weight_matrix(records: pd.DataFrame, n_weights: int) -> np.ndarray:
    """``values[draw, column]`` from the ``weight`` records of one spec (draws in id order)."""
    sub = records.loc[records["quantity"] == "weight"]
    draw_ids = np.unique(sub["draw"].to_numpy())
    values = np.full((draw_ids.size, n_weights), np.nan)
    values[np.searchsorted(draw_ids, sub["draw"].to_numpy()), sub["input"].to_numpy()] = sub["value"].to_numpy()
    if np.isnan(values).any():
        raise ValueError("the weight records miss some (draw, weight) entries")
    return values


# ----------------------------------------------------------------------------- the tests


def _t_tests(products: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard error, t and p of the one-sample t-test of ``E = 0`` for each row of
    ``products`` (tests x draws; one vectorised call gives the per-row results bit for bit)."""
    from scipy import stats

    n = products.shape[1]
    mean = products.mean(axis=1)
    se = products.std(axis=1, ddof=1) / math.sqrt(n)
    t = np.zeros(len(products))
    p = np.ones(len(products))
    moving = se > 0
    if moving.any():
        res = stats.ttest_1samp(products[moving], 0.0, axis=1)
        # scipy builds TtestResult's fields at run time (_make_tuple_bunch), so pyright cannot see them
        t[moving], p[moving] = res.statistic, res.pvalue  # pyright: ignore[reportAttributeAccessIssue]
    # A constant product: 0 is consistent only if it is 0.
    fixed = ~moving & (mean != 0)
    t[fixed], p[fixed] = np.copysign(np.inf, mean[fixed]), 0.0
    return mean, se, t, p


@dataclass(frozen=True)
class _Sampled:
    """The paths and pairs of one size and the weights they carry."""

    inputs: list
    path_sets: list  # (input, paths, pairs, number of local pairs among the pairs)
    weights: list


def _sample(g, config: Lemma9Config) -> _Sampled:
    from graphs.dag import input_nodes
    from graphs.rng import Stream, numpy_rng
    from verify.path_products import count_paths, local_pairs, random_pairs, random_weights, sample_paths

    rng = numpy_rng(Stream.PATH_SAMPLE, config.seed)
    counts = count_paths(g)
    xs = input_nodes(g)
    if len(xs) > config.max_inputs:
        xs = [xs[int(i)] for i in sorted(rng.choice(len(xs), size=config.max_inputs, replace=False))]
    per_input = max(1, config.max_pairs // len(xs))
    path_sets = []
    for x in xs:
        paths = sample_paths(g, x, config.max_paths, rng, counts)
        pairs = local_pairs(g, paths, rng)[:per_input]
        n_local = len(pairs)
        pairs += random_pairs(paths, per_input - len(pairs), rng)
        path_sets.append((x, paths, pairs, n_local))
    every_path = [p for _, paths, pairs, _ in path_sets for p in (*paths, *(q for pair in pairs for q in pair))]
    return _Sampled(xs, path_sets, random_weights(g, every_path))


def _tests(g, sampled: _Sampled, values: np.ndarray, alpha: float) -> tuple[pd.DataFrame, int, bool, int]:
    """The test table, the number of pure pooling paths, whether their products are constant,
    and the number of paths."""
    from verify.path_products import path_products

    column = {p: j for j, p in enumerate(sampled.weights)}
    keys: list[tuple] = []  # kind, input, edges, local
    columns: list[np.ndarray] = []
    pure = 0
    pure_ok = True
    total_paths = 0
    for x, paths, pairs, n_local in sampled.path_sets:
        total_paths += len(paths)
        prods, n_random = path_products(g, paths, values, column)
        for j in range(len(paths)):
            if n_random[j] == 0:
                # A pure pooling path: its product is the constant prod 1/a, in every draw.
                pure += 1
                const = math.prod(float(g.edges[e]["value"]) for e in paths[j])
                pure_ok &= bool(np.all(prods[:, j] == const))
                continue
            keys.append(("mean", x, int(n_random[j]), None))
            columns.append(prods[:, j])
        if pairs:
            left, _ = path_products(g, [a for a, _ in pairs], values, column)
            right, _ = path_products(g, [b for _, b in pairs], values, column)
            for j, (a, b) in enumerate(pairs):
                keys.append(("pair", x, len(set(a) ^ set(b)), j < n_local))
                columns.append(left[:, j] * right[:, j])
    products = np.stack(columns) if columns else np.empty((0, values.shape[0]))
    mean, se, t, p = _t_tests(products)
    tests = pd.DataFrame(
        {
            "kind": [k[0] for k in keys],
            "input": [str(k[1]) for k in keys],
            "edges": np.array([k[2] for k in keys], dtype=np.int64),
            "estimate": mean,
            "stderr": se,
            "t": t,
            "p": p,
            "local": pd.Series([k[3] for k in keys], dtype=object),
        }
    )
    tests["p_adj"] = holm(tests["p"].to_numpy())
    tests["reject"] = tests["p_adj"] < alpha
    return tests, pure, pure_ok, total_paths


# ----------------------------------------------------------------------------- second moments


def exact_two_ways(spec: Spec, g=None) -> tuple[ExactSecondMoment, ...]:
    """``E||d_x f_0||_2^2`` of logit 0 by DP (Fraction) and by the operator form, both variances."""
    from graphs.dag import output_nodes, to_dag
    from graphs.moments import VARIANCES, predicted_grad_sq_norms, second_moment_dp

    g = to_dag(spec) if g is None else g
    o = output_nodes(g)[0]
    out = []
    for variance in VARIANCES:
        dp = sum(second_moment_dp(g, o, spec, variance=variance, exact=True).values(), Fraction(0))
        assert isinstance(dp, Fraction), "exact=True gives Fraction terms, and their sum is a Fraction"
        op = float(predicted_grad_sq_norms(spec, [0], variance=variance)[0])
        out.append(ExactSecondMoment(variance, dp, op))
    return tuple(out)


def _monte_carlo(spec: Spec, config: Lemma9Config, broken: Sequence[str], rt, progress: bool):
    """The engine's records, their agreement with Eq. 13 and its claim (the shared second-moment check)."""
    from verify.checks.second_moments import (
        agreement_claim,
        exact_second_moments,
        mean_relative_difference,
        per_draw_squares,
        second_moment_agreement,
    )
    from verify.engine import measure

    records = measure([spec], draws=config.mc_draws, batch=MC_BATCH, seed=config.seed, rt=rt, progress=progress)
    exact = exact_second_moments(spec)
    agreement = second_moment_agreement(spec, records, exact=exact, seed=config.seed)
    diff = mean_relative_difference([per_draw_squares(records)], [exact["init"]], variance="init", seed=config.seed)
    claim = agreement_claim(
        diff, name=f"Eq. 13 Monte Carlo (dim {spec.dim})", what=f"the net of dim {spec.dim}", hypotheses_broken=broken
    )
    return agreement, claim, records


# ----------------------------------------------------------------------------- claims


def _lemma9_claim(spec: Spec, tests: pd.DataFrame, pure_ok: bool, broken: tuple[str, ...], alpha: float) -> Claim:
    verdict = rejection_verdict(tests["p_adj"].to_numpy(), alpha)
    notes = []
    if not pure_ok:
        # A pure pooling path whose product moves is a contradiction no p-value is needed for.
        verdict = Verdict.INCONSISTENT
        notes.append("a pure pooling path's product is not its constant prod 1/a in every draw")
    rejections = int(tests["reject"].sum())
    notes.append(f"{rejections} of {len(tests)} tests reject")
    return Claim(
        name=f"Lemma 9 (dim {spec.dim})",
        statement="distinct paths p != p' from one input have E[w_p w_p'] = 0 and a path with a random weight has "
        f"E[w_p] = 0 (one t-test per path and pair, Holm-corrected together; consistent: no test rejects at "
        f"family-wise level {alpha:g}; inconsistent: some test rejects, or a pure pooling path's product moves)",
        predicted=None,
        estimate=float(tests["p_adj"].min()) if len(tests) else math.nan,
        interval=Interval.none("Holm-adjusted one-sample t-tests"),
        verdict=verdict,
        hypotheses_needed=LEMMA9_HYPOTHESES,
        hypotheses_broken=tuple(h for h in broken if h in LEMMA9_HYPOTHESES),
        note="; ".join(notes),
    )


def _exact_claim(spec: Spec, exact: Sequence[ExactSecondMoment]) -> Claim:
    worst = max(exact, key=lambda m: m.difference)
    ok = all(m.within_rounding for m in exact)
    return Claim(
        name=f"Eq. 13 DP = operator (dim {spec.dim})",
        statement="E||d_x f_0||_2^2 under (H) by dynamic programming on the DAG (exact fractions) equals the operator "
        f"form (float64), for the variances {', '.join(m.variance for m in exact)} (consistent: every |difference| "
        f"within float64 rounding, relative {ROUNDING_RTOL:g}; inconsistent otherwise)",
        predicted=0.0,
        estimate=worst.difference,
        interval=Interval.none("exact"),
        verdict=Verdict.CONSISTENT if ok else Verdict.INCONSISTENT,
        note="; ".join(f"{m.variance}: DP {m.dp}, operator {m.operator!r}" for m in exact),
    )


# ----------------------------------------------------------------------------- the check


def _check_size(spec: Spec, config: Lemma9Config, rt, prog: Progress) -> tuple[Lemma9Size, pd.DataFrame]:
    from graphs.dag import to_dag
    from verify.path_products import shared_out_parameters

    shared_layers = config.layers_shared(spec)
    with prog.phase(f"dim {spec.dim}: explicit DAG and sampled paths"):
        g = to_dag(spec)
        sampled = _sample(g, config)
    with prog.phase(f"dim {spec.dim}: {config.draws} weight draws", bars=True):
        records = draw_weights(
            spec,
            sampled.weights,
            config.draws,
            config.seed,
            init=config.init,
            shared_layers=shared_layers,
            rho=config.rho,
            rt=rt,
            progress=prog.enabled,
        )
    with prog.phase(f"dim {spec.dim}: Holm-corrected t-tests, Eq. 13 exactly"):
        values = weight_matrix(records, len(sampled.weights))
        tests, pure, pure_ok, total_paths = _tests(g, sampled, values, config.alpha)
        exact = exact_two_ways(spec, g)

    notes = []
    broken = {h for layer in spec.layers for h in layer.hypotheses_broken()}
    shared_out = shared_out_parameters(g)
    if shared_out:
        broken.add("H5")
        notes.append(
            f"H5 fails by construction: {shared_out} nodes have two out-edges sharing one convolution weight "
            "(reflect padding); two distinct paths can then carry the same weights, and Lemma 9 need not hold"
        )
    if shared_layers is not None:
        broken |= {"H4", "H5"}
        notes.append(f"layers {shared_layers[0]} and {shared_layers[1]} share a Gaussian component, rho = {config.rho}")

    claims = [_lemma9_claim(spec, tests, pure_ok, tuple(sorted(broken)), config.alpha), _exact_claim(spec, exact)]
    mc, mc_records = None, None
    if config.mc_draws:
        # The engine draws He weights whatever --init: only the net's own breaks apply.
        structural = tuple(sorted({h for layer in spec.layers for h in layer.hypotheses_broken()}))
        with prog.phase(f"dim {spec.dim}: engine Monte Carlo, {config.mc_draws} draws", bars=True):
            mc, mc_claim, mc_records = _monte_carlo(spec, config, structural, rt, prog.enabled)
        claims.append(mc_claim)
    size = Lemma9Size(
        spec=spec,
        draws=config.draws,
        init=config.init,
        alpha=config.alpha,
        tests=tests,
        weights=tuple(sampled.weights),
        inputs=len(sampled.inputs),
        paths=total_paths,
        pure_pool_paths=pure,
        pure_pool_constant=pure_ok,
        shared_out_params=shared_out,
        shared_layers=shared_layers,
        notes=tuple(notes),
        exact=exact,
        monte_carlo=mc,
        mc_records=mc_records,
        claims=tuple(claims),
    )
    return size, records


def check_lemma9(config: Lemma9Config, *, rt=None, progress: bool | Progress = False) -> Lemma9Result:
    """Run the Lemma 9 check on every size of ``config``. ``rt`` is a ``verify.runtime.Runtime``;
    ``progress``: one stderr line per phase and size (``verify.progress``)."""
    prog = as_progress(progress, "lemma9")
    sizes, frames = [], []
    for spec in config.spec_tuple:
        size, records = _check_size(spec, config, rt, prog)
        sizes.append(size)
        frames.append(records)
    return Lemma9Result(config, tuple(sizes), pd.concat(frames, ignore_index=True))
