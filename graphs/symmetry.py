"""Symmetry (S): every input has the same multiset of path-degrees to the output o.

Exactly, on a DAG: per input x, the path-degree polynomial
``Q_x(z) = sum over paths x -> o of prod_{p in p~} z_{d_p}`` (one variable per in-degree
value, integer coefficients) records the multiset of path-degrees with multiplicities, so
(S) holds iff all ``Q_x`` are equal. Dynamic programming computes them
(``path_degree_polynomials``); ``path_degree_multisets`` is the brute-force oracle.

Randomised, for nets too large for a DAG (``is_symmetric_operator``): evaluate every ``Q_x``
at a random point modulo a random prime p through the operator form, i.e. one backward pass
of the linear network whose edge into p weighs ``z_{d_p}``, and compare. The arithmetic is
exact: residues and multipliers lie in ``[0, p)``, a product ``residue * z`` stays below
``p^2``, the backward sum into a node below ``out_degree * p``; p is chosen so that both stay
below 2^53, where float64 sums of non-negative integers are exact, and a guard re-checks the
bound on every tensor. The mod is taken after each layer.

False-positive bound (the test never calls a symmetric net asymmetric). Suppose (S) fails:
some ``D = Q_x - Q_y != 0``. One trial draws a prime p uniformly among the primes of
``(P/2, P]`` and z uniformly in ``F_p^k``. D is the zero polynomial mod p only if p divides
every coefficient, in particular one fixed non-zero coefficient; that coefficient is at most
N in absolute value (N the largest number of paths from an input to o), so it has at most
``floor(log N / log(P/2))`` prime factors above P/2 and p is one of them with probability at
most ``floor(log N / log(P/2)) / #primes``. Otherwise Schwartz-Zippel gives
``Pr[D(z) = 0 mod p] <= L / p`` with L the largest path length (the number of layers). Per
trial ``eps = L/(P/2) + floor(log N/log(P/2)) / #primes``; with t independent trials the
verdict "symmetric" is wrong with probability at most ``eps^t`` (one failing input is
enough to detect the failure); a claim about every one of d inputs at once costs the union
bound ``d * eps^t``. ``false_positive_bound`` computes eps^t for a spec.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Sequence

import networkx as nx
import numpy as np
import torch

from graphs.dag import input_nodes, output_nodes, to_dag
from graphs.pathsums import _check, ancestor_order, output_classes, spec_edge_count
from graphs.rng import Stream, numpy_rng
from graphs.spec import Spec

__all__ = [
    "DAG_SYMMETRY_MAX_EDGES",
    "Monomial",
    "Polynomial",
    "SymmetryVerdict",
    "dag_symmetry_verdict",
    "false_positive_bound",
    "is_prime",
    "is_symmetric_bruteforce",
    "is_symmetric_dag",
    "is_symmetric_operator",
    "is_symmetric_spec_dag",
    "modular_path_polynomials",
    "path_degree_multisets",
    "path_degree_polynomials",
    "random_prime",
    "randomised_symmetry",
    "symmetry_status",
    "symmetry_verdict",
]

Monomial = tuple[tuple[int, int], ...]  # sorted (degree, power) pairs, powers >= 1
Polynomial = dict[Monomial, int]

EXACT_FLOAT = 2**53  # every integer below this is a float64, and so are sums of them below it
DAG_SYMMETRY_MAX_EDGES = 200_000


def path_degree_polynomials(g: nx.DiGraph, o: Hashable) -> dict[Hashable, Polynomial]:
    """``Q_x`` for every input x: ``{monomial: number of paths x -> o with that path-degree}``.

    ``Q(u) = sum_{edges u -> w} z_{d_w} Q(w)``, ``Q(o) = 1``, in reverse topological order;
    monomials are exponent vectors over the distinct degrees while computing.
    """
    order = ancestor_order(g, o)
    degrees = sorted({g.in_degree(v) for v in order if g.in_degree(v) > 0})
    slot = {deg: i for i, deg in enumerate(degrees)}
    multi = g.is_multigraph()
    shifted: dict[Hashable, dict[tuple[int, ...], int]] = {}  # z_{d_w} Q(w)
    poly: dict[Hashable, dict[tuple[int, ...], int]] = {}
    for u in order:
        if u == o:
            q = {(0,) * len(degrees): 1}
        else:
            q = {}
            for w, keys in g.succ[u].items():
                if w not in shifted:
                    continue
                m = len(keys) if multi else 1
                for mono, c in shifted[w].items():
                    q[mono] = q.get(mono, 0) + m * c
        poly[u] = q
        deg = g.in_degree(u)
        if deg > 0:
            i = slot[deg]
            shifted[u] = {(*mono[:i], mono[i] + 1, *mono[i + 1 :]): c for mono, c in q.items()}
    result: dict[Hashable, Polynomial] = {}
    for x in input_nodes(g):
        q = poly.get(x, {})
        result[x] = {tuple((degrees[i], e) for i, e in enumerate(mono) if e): c for mono, c in q.items() if c}
    return result


def path_degree_multisets(g: nx.DiGraph, o: Hashable) -> dict[Hashable, Counter]:
    """Brute force: per input, the Counter of path-degrees (sorted degree tuples) over all paths."""
    _check(g, o)
    inputs = input_nodes(g)
    is_input = set(inputs)
    out = {x: Counter() for x in inputs}
    stack: list[tuple[Hashable, tuple[int, ...]]] = [(o, ())]
    while stack:
        v, degs = stack.pop()
        if v in is_input:
            out[v][tuple(sorted(degs))] += 1
        deg = g.in_degree(v)
        for u, _ in g.in_edges(v):
            stack.append((u, (*degs, deg)))
    return out


def _all_equal(values) -> bool:
    values = list(values)
    return all(v == values[0] for v in values[1:])


def is_symmetric_dag(g: nx.DiGraph, o: Hashable) -> bool:
    """(S) for output o, exactly: all inputs have the same path-degree polynomial."""
    return _all_equal(path_degree_polynomials(g, o).values())


def is_symmetric_bruteforce(g: nx.DiGraph, o: Hashable) -> bool:
    """(S) for output o by comparing the enumerated path-degree multisets (tiny DAGs only)."""
    return _all_equal(path_degree_multisets(g, o).values())


def _first_asymmetry(g: nx.DiGraph, outputs: Sequence[Hashable] | None = None) -> tuple[Hashable, Hashable] | None:
    for o in output_nodes(g) if outputs is None else outputs:
        polys = path_degree_polynomials(g, o)
        inputs = list(polys)
        for x in inputs[1:]:
            if polys[x] != polys[inputs[0]]:
                return o, x
    return None


def dag_symmetry_verdict(g: nx.DiGraph, outputs: Sequence[Hashable] | None = None) -> SymmetryVerdict:
    """(S) exactly on a DAG for the given outputs (default all); witness = (output, input) nodes."""
    witness = _first_asymmetry(g, outputs)
    return SymmetryVerdict(witness is None, "dag-polynomial", witness=witness)


def is_symmetric_spec_dag(spec: Spec) -> bool:
    """(S) for every output of ``spec``, exactly on its DAG (small specs only)."""
    return _first_asymmetry(to_dag(spec)) is None


# ---------------------------------------------------------------- randomised identity test


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin, exact for every n < 3.3 * 10^24."""
    if n < 2:
        return False
    small = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
    for q in small:
        if n % q == 0:
            return n == q
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in small:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def random_prime(high: int, rng: np.random.Generator) -> int:
    """A prime uniformly distributed among the primes of ``(high // 2, high]`` (rejection sampling)."""
    if high < 5:
        raise ValueError(f"no room for a prime modulus below {high}")
    while True:
        n = int(rng.integers(high // 2 + 1, high + 1))
        if is_prime(n):
            return n


def _max_out_degree(spec: Spec) -> int:
    """Largest out-degree (with multiplicity) of any node, from the transposed all-ones maps
    (in row bands where the layers allow: ``graphs.streaming.max_out_degree``)."""
    from graphs.streaming import max_out_degree

    return max_out_degree(spec)


def _modulus_ceiling(max_out_degree: int) -> int:
    """Largest P such that ``(P-1)^2`` and ``max_out_degree * (P-1)`` stay below 2^53."""
    by_square = math.isqrt(EXACT_FLOAT - 1)
    by_sum = (EXACT_FLOAT - 1) // max(max_out_degree, 1)
    return min(by_square, by_sum)


def modular_path_polynomials(
    spec: Spec,
    z: dict[int, int],
    modulus: int,
    outputs: Sequence[int] | None = None,
    *,
    max_out_degree: int | None = None,
) -> torch.Tensor:
    """``Q_x(z) mod p`` for every input x and each output: shape ``(len(outputs), d)``, exact integers.

    ``z`` maps each in-degree value of the net to its variable's value in ``[0, p)``;
    ``max_out_degree`` (computed when omitted) proves the modulus small enough.
    """
    if outputs is None:
        outputs = range(spec.sizes[-1])
    outputs = list(outputs)
    if max_out_degree is None:
        max_out_degree = _max_out_degree(spec)
    if modulus > _modulus_ceiling(max_out_degree):
        raise ValueError(f"modulus {modulus} is too large for exact float64 on {spec.describe()}")
    out = torch.empty((len(outputs), spec.d), dtype=torch.float64)
    for band in _modular_bands(spec, z, modulus, outputs):
        out[:, torch.as_tensor(band.flat_index(spec.input_shape))] = band.values.reshape(len(outputs), -1)
    return out


def _degree_lookup(z: dict[int, int], modulus: int):
    """The node factor ``z_{d_p} mod p`` of the modular pass, for ``graphs.streaming``."""
    from graphs.streaming import collapse_broadcast

    table = torch.zeros(max(z) + 1 if z else 1, dtype=torch.float64)
    for deg, value in z.items():
        table[deg] = float(value % modulus)

    def factor(layer: int, kind: str, degree: torch.Tensor) -> torch.Tensor:
        # looked up once per distinct position, then broadcast back (a conv's degrees repeat per channel)
        return table[collapse_broadcast(degree).long()].expand(degree.shape)

    return factor


def _modular_bands(
    spec: Spec,
    z: dict[int, int],
    modulus: int,
    outputs: Sequence[int],
    *,
    progress: bool = False,
    desc: str = "(S) trial",
):
    from graphs.streaming import should_stream, vjp_bands

    band = None if should_stream(spec, len(outputs)) else spec.shapes[0][1] if len(spec.shapes[0]) == 3 else None
    return vjp_bands(
        spec, _degree_lookup(z, modulus), outputs, modulus=modulus, band=band, progress=progress, desc=desc
    )


def _degree_values(spec: Spec) -> list[int]:
    from graphs.streaming import collapse_broadcast, degree_bands

    return sorted(
        {
            int(v)
            for l in range(1, len(spec.layers) + 1)
            for deg in degree_bands(spec, l)
            for v in torch.unique(collapse_broadcast(deg)).tolist()
        }
    )


def _max_path_count(spec: Spec, outputs: Sequence[int], *, progress: bool = False) -> float:
    """Largest number of paths from an input to one of ``outputs`` (float64: exact below 2^53)."""
    from graphs.streaming import should_stream, vjp_bands

    def ones(layer: int, kind: str, degree: torch.Tensor) -> torch.Tensor:
        return torch.ones((), dtype=torch.float64).expand(degree.shape)

    band = None if should_stream(spec, len(outputs)) else spec.shapes[0][1] if len(spec.shapes[0]) == 3 else None
    bands = vjp_bands(spec, ones, outputs, band=band, progress=progress, desc=f"path counts dim={spec.dim}")
    return max(float(b.values.max()) for b in bands)


def _prime_count_lower(high: int) -> float:
    """Lower bound on the number of primes in ``(high/2, high]`` (Rosser-Schoenfeld bounds)."""
    lo = high / 2
    if lo < 17:
        return 0.0
    return high / math.log(high) - 1.25506 * lo / math.log(lo)


def false_positive_bound(
    spec: Spec, trials: int, outputs: Sequence[int] | None = None, *, max_out_degree: int | None = None
) -> float:
    """Probability bound that ``is_symmetric_operator`` says symmetric while (S) fails: eps^trials.

    See the module docstring; N is counted through the operator form with all multipliers 1.
    """
    if outputs is None:
        outputs = range(spec.sizes[-1])
    if max_out_degree is None:
        max_out_degree = _max_out_degree(spec)
    high = _modulus_ceiling(max_out_degree)
    reps = [c[0] for c in output_classes(spec, outputs)]
    n_max = max(_max_path_count(spec, reps), 2.0)
    # ceil of log2 with one bit to spare covers float64 rounding of the count
    log_n = math.ceil(math.log2(n_max)) + 1
    factors = math.floor(log_n / math.log2(high / 2))
    primes = _prime_count_lower(high)
    eps = len(spec.layers) / (high / 2) + (factors / primes if primes > 0 else 1.0)
    return min(1.0, eps) ** trials


@dataclass
class SymmetryVerdict:
    """Outcome of a (S) check on a spec."""

    symmetric: bool
    method: str  # "dag-polynomial" (exact) or "randomised"
    trials: int = 0
    primes: list[int] = field(default_factory=list)
    false_positive_bound: float = 0.0  # probability that "symmetric" is wrong; 0 when exact
    witness: tuple | None = None  # (output, input) whose path-degrees differ from the first input's


def randomised_symmetry(
    spec: Spec, *, trials: int = 4, seed: int = 0, outputs: Sequence[int] | None = None, progress: bool = False
) -> SymmetryVerdict:
    """(S) for every output by the randomised identity test; seeded (trial i draws from
    ``numpy_rng(Stream.SYMMETRY_TRIAL, seed, i)``, so a trial can be replayed alone).

    Each trial's residues come band by band (``graphs.streaming``) and are compared with
    input 0's as they come: the first band with a difference ends the test (on a net too
    large for one pass the witness is then the first difference within that band).
    """
    if trials < 1:
        raise ValueError("trials must be at least 1")
    if outputs is None:
        outputs = range(spec.sizes[-1])
    outputs = list(outputs)
    # Outputs with identical in-edges have identical polynomials: test one of each class.
    reps = [c[0] for c in output_classes(spec, outputs)]
    max_out = _max_out_degree(spec)
    high = _modulus_ceiling(max_out)
    degrees = _degree_values(spec)
    primes = []
    for t in range(trials):
        rng = numpy_rng(Stream.SYMMETRY_TRIAL, seed, t)
        p = random_prime(high, rng)
        primes.append(p)
        z = {deg: int(rng.integers(0, p)) for deg in degrees}
        reference: torch.Tensor | None = None
        desc = f"(S) trial {t + 1} dim={spec.dim}"
        for band in _modular_bands(spec, z, p, reps, progress=progress, desc=desc):
            flat = band.values.reshape(len(reps), -1)
            if reference is None:  # the first band holds input 0 (channel 0, row 0, column 0)
                reference = flat[:, :1].clone()
            differs = flat != reference
            if bool(differs.any()):
                index = band.flat_index(spec.input_shape)
                hits = torch.nonzero(differs)
                cols = index[hits[:, 1].numpy()]
                k = int(np.lexsort((cols, hits[:, 0].numpy()))[0])
                # A difference of exact residues is a certificate: (S) fails, no probability involved.
                return SymmetryVerdict(False, "randomised", t + 1, primes, 0.0, (reps[int(hits[k, 0])], int(cols[k])))
    bound = false_positive_bound(spec, trials, reps, max_out_degree=max_out)
    return SymmetryVerdict(True, "randomised", trials, primes, bound)


def is_symmetric_operator(spec: Spec, trials: int = 4, seed: int = 0) -> bool:
    """(S) for every output of ``spec`` by the randomised test (false positives <= ``false_positive_bound``)."""
    return randomised_symmetry(spec, trials=trials, seed=seed).symmetric


def symmetry_verdict(
    spec: Spec, *, max_dag_edges: int = DAG_SYMMETRY_MAX_EDGES, trials: int = 4, seed: int = 0, progress: bool = False
) -> SymmetryVerdict:
    """Exact DAG polynomials when the DAG has at most ``max_dag_edges`` edges, randomised otherwise."""
    if spec_edge_count(spec) <= max_dag_edges:
        g = to_dag(spec)
        outs = output_nodes(g)
        verdict = dag_symmetry_verdict(g, [outs[c[0]] for c in output_classes(spec)])
        if verdict.witness is not None:
            o, x = verdict.witness
            verdict.witness = (o[1], x[1])
        return verdict
    return randomised_symmetry(spec, trials=trials, seed=seed, progress=progress)


def symmetry_status(spec: Spec) -> bool:
    """Whether (S) holds for every output of ``spec`` (see ``symmetry_verdict``)."""
    return symmetry_verdict(spec).symmetric
