"""Lemma 9 by Monte Carlo: path products of distinct paths are uncorrelated, and centred.

Under (H), two distinct paths p != p' from one input have ``E[w_p w_p'] = 0``, and a path with
at least one random weight has ``E[w_p] = 0``; a path made of pooling weights only has the
constant product instead. Here the weights are drawn many times from the initialisation
(``verify.model.init_params``, one generator per draw), every path product of a sample of
paths is computed from the drawn tensors, and each moment is tested against 0.

The test. Path products are products of up to L Gaussians: heavy-tailed (kurtosis 3^L for L
independent factors, 3^(2L) for a pair product). Under (H) each tested product is *symmetric*
about 0 (flip the sign of a weight that lies on p but not on p'), and for symmetric
heavy-tailed data the one-sample t-test is conservative, so its level holds; its power is
what the tails cost, hence many draws. One t-test per path and per pair, then Holm's
step-down correction over all of them together (family-wise level ``alpha``).

Which pairs. All pairs of the sampled paths would be quadratic, and a random pair of paths
almost always differs at many weights (an easy null). So the pairs are capped (``max_pairs``)
and most are *local*: p' is p rerouted through one other intermediate node (u -> a -> b
becomes u -> a' -> b), the hardest case, which differs in four weights only; the rest are
random pairs of paths from the same input.

The planted failure. ``init="shared"`` draws the weights of two layers with a common Gaussian
component: every weight of those layers is ``sd * (sqrt(1 - rho) z + sqrt(rho) s)`` with one
scalar ``s`` per draw shared by both layers. Each weight keeps mean 0 and variance ``sd^2``
(H3 holds) but the two layers are dependent (H4 fails, and so does H5). A local pair rerouted
across those two layers then has ``E[w_p w_p'] = 3 rho^2 sd^4 E[(rest)^2] != 0``, which the
test must detect. ``E[w_p]`` stays 0 whenever p has a random weight outside the two layers,
so the single-path tests need not reject there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Hashable, Sequence

import networkx as nx
import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from graphs.dag import input_nodes, output_nodes, to_dag
from graphs.errors import InputError
from graphs.rng import Stream, generator_for, numpy_rng
from graphs.spec import Spec
from verify.model import Params, init_params

__all__ = [
    "INITS",
    "Lemma9Result",
    "holm",
    "count_paths",
    "sample_paths",
    "local_pairs",
    "random_pairs",
    "random_layers",
    "shared_out_parameters",
    "sample_shared_params",
    "draw_values",
    "path_products",
    "lemma9_test",
]

INITS = ("he", "shared")

Edge = tuple  # (u, v, key) of a MultiDiGraph
Path = tuple  # tuple of edges, input first


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control, any dependence)."""
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


def count_paths(g: nx.MultiDiGraph) -> dict[Hashable, int]:
    """Number of paths from every node to any output (parallel edges count separately)."""
    outputs = set(output_nodes(g))
    counts: dict[Hashable, int] = {}
    for v in reversed(list(nx.topological_sort(g))):
        counts[v] = (1 if v in outputs else 0) + sum(counts[w] * len(keys) for w, keys in g.succ[v].items())
    return counts


def _enumerate(g: nx.MultiDiGraph, x: Hashable, outputs: set) -> list[Path]:
    paths: list[Path] = []
    stack: list[tuple[Hashable, Path]] = [(x, ())]
    while stack:
        v, path = stack.pop()
        if v in outputs:
            paths.append(path)
        for _, w, k in g.out_edges(v, keys=True):
            stack.append((w, (*path, (v, w, k))))
    return sorted(paths, key=repr)


def sample_paths(g: nx.MultiDiGraph, x: Hashable, max_paths: int, rng: np.random.Generator, counts=None) -> list[Path]:
    """All paths from input ``x`` to the outputs if there are at most ``max_paths``, else
    ``max_paths`` distinct ones drawn uniformly (each step weighted by the paths it leads to)."""
    counts = count_paths(g) if counts is None else counts
    outputs = set(output_nodes(g))
    if counts[x] <= max_paths:
        return _enumerate(g, x, outputs)
    found: dict[Path, None] = {}
    tries = 0
    while len(found) < max_paths and tries < 50 * max_paths:
        tries += 1
        v, path = x, ()
        while True:
            edges = list(g.out_edges(v, keys=True))
            weights = np.array([1.0 if v in outputs else 0.0] + [counts[w] for _, w, _ in edges], dtype=np.float64)
            i = int(rng.choice(len(weights), p=weights / weights.sum()))
            if i == 0:
                break
            path = (*path, edges[i - 1])
            v = edges[i - 1][1]
        found.setdefault(path, None)
    return list(found)


def local_pairs(g: nx.MultiDiGraph, paths: Sequence[Path], rng: np.random.Generator) -> list[tuple[Path, Path]]:
    """For each path, one path rerouted through another node between two of its nodes (if any)."""
    pairs = []
    for path in paths:
        options = []
        for i in range(len(path) - 1):
            u, a, _ = path[i]
            b = path[i + 1][1]
            for a2 in g.succ[u]:
                if a2 != a and b in g.succ[a2]:
                    options.append((i, a2))
        if not options:
            continue
        i, a2 = options[int(rng.integers(len(options)))]
        u, b = path[i][0], path[i + 1][1]
        k1 = min(g.succ[u][a2])
        k2 = min(g.succ[a2][b])
        other = (*path[:i], (u, a2, k1), (a2, b, k2), *path[i + 2 :])
        pairs.append((path, other))
    return pairs


def random_pairs(paths: Sequence[Path], n: int, rng: np.random.Generator) -> list[tuple[Path, Path]]:
    """Up to ``n`` distinct unordered pairs of distinct paths, drawn uniformly."""
    m = len(paths)
    total = m * (m - 1) // 2
    if total == 0 or n <= 0:
        return []
    if total <= n:
        return [(paths[i], paths[j]) for i in range(m) for j in range(i + 1, m)]
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < n:
        i, j = sorted(int(v) for v in rng.choice(m, size=2, replace=False))
        chosen.add((i, j))
    return [(paths[i], paths[j]) for i, j in sorted(chosen)]


def shared_out_parameters(g: nx.MultiDiGraph) -> int:
    """Number of nodes with two out-edges carrying the same shared parameter.

    Reflect padding lets one convolution weight connect a pixel to two neurons; two such
    edges are perfectly correlated weights from one node, so H5 fails and two distinct paths
    can have the same parameters (they then differ only after a pooling node merges them).
    """
    bad = 0
    for v in g.nodes:
        seen = set()
        for _, _, a in g.out_edges(v, data=True):
            p = a.get("param")
            if p is None:
                continue
            if p in seen:
                bad += 1
                break
            seen.add(p)
    return bad


def random_layers(spec: Spec) -> list[int]:
    """Layers (1-based) that have random weights."""
    return [l for l, lay in enumerate(spec.layers, start=1) if lay.weight_shape() is not None]


def sample_shared_params(spec: Spec, seed: int, draw: int, *, layers: tuple[int, int], rho: float) -> Params:
    """He weights, except that ``layers`` share a common Gaussian component (see the module doc)."""
    params = init_params(spec, generator_for(Stream.WEIGHTS, seed, draw), dtype=torch.float64)
    s = torch.randn((), generator=generator_for(Stream.SHARED_COMPONENT, seed, draw), dtype=torch.float64)
    for l in layers:
        w = params[l - 1]
        lay = spec.layers[l - 1]
        fan = torch.as_tensor(lay.fan_in(), dtype=torch.float64)
        sd = torch.sqrt(2.0 / fan)
        if sd.dim():
            sd = sd.unsqueeze(1)
        nonzero = (w != 0).to(torch.float64)  # masked layers keep their zeros off the mask
        params[l - 1] = math.sqrt(1.0 - rho) * w + math.sqrt(rho) * s * sd * nonzero
    return params


def _edge_keys(g: nx.MultiDiGraph, path: Path) -> list:
    """Per edge: ("w", param) for a random weight, ("c", value) for a pooling weight."""
    out = []
    for u, v, k in path:
        a = g.edges[u, v, k]
        if a.get("weight_kind", "random") == "pool":
            out.append(("c", float(a["value"])))
        else:
            out.append(("w", a["param"]))
    return out


def draw_values(spec: Spec, params: Sequence[tuple], draws: int, sampler, progress: bool = False) -> np.ndarray:
    """The weights ``params`` (``(layer, *index)`` ids of the DAG) in each draw: ``(draws, len(params))``.

    ``sampler(i)`` returns draw i's weight list; only the needed entries are kept, so memory
    does not grow with the number of draws times the size of the net.
    """
    gather: list[tuple[int, np.ndarray, torch.Tensor]] = []
    for l in sorted({p[0] for p in params}):
        cols = np.array([j for j, p in enumerate(params) if p[0] == l])
        shape = spec.layers[l - 1].weight_shape()
        flat = torch.as_tensor([int(np.ravel_multi_index(params[j][1:], shape)) for j in cols])
        gather.append((l, cols, flat))
    out = np.empty((draws, len(params)), dtype=np.float64)
    it = range(draws)
    if progress:
        it = tqdm(it, desc="weight draws", unit="draw", leave=False)
    for i in it:
        w = sampler(i)
        for l, cols, flat in gather:
            out[i, cols] = w[l - 1].reshape(-1)[flat].to(torch.float64).numpy()
    return out


def path_products(g: nx.MultiDiGraph, paths: Sequence[Path], values: np.ndarray, column: dict) -> tuple[np.ndarray, np.ndarray]:
    """Path products in every draw, ``(draws, len(paths))``, and each path's number of random weights.

    ``values[:, column[param]]`` holds the drawn value of random weight ``param``.
    """
    out = np.ones((values.shape[0], len(paths)), dtype=np.float64)
    n_random = np.zeros(len(paths), dtype=np.int64)
    for j, path in enumerate(paths):
        for kind, k in _edge_keys(g, path):
            if kind == "w":
                out[:, j] *= values[:, column[k]]
                n_random[j] += 1
            else:
                out[:, j] *= k
    return out, n_random


@dataclass
class Lemma9Result:
    """Every test (one row each) and what was tested."""

    # One row per test: kind (mean|pair), input, edges (random weights on the path for a mean
    # test; edges on exactly one of the two paths for a pair), estimate, stderr, t, p,
    # local (pairs: whether p' reroutes p through one other node), p_adj (Holm, over all
    # rows), reject.
    tests: pd.DataFrame
    alpha: float
    draws: int
    init: str
    inputs: int
    paths: int
    pure_pool_paths: int
    pure_pool_ok: bool
    shared_out_params: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        return bool(self.tests["reject"].any()) or not self.pure_pool_ok

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


def lemma9_test(
    spec: Spec,
    *,
    draws: int = 4000,
    seed: int = 0,
    init: str = "he",
    shared_layers: tuple[int, int] | None = None,
    rho: float = 0.9,
    max_inputs: int = 4,
    max_paths: int = 60,
    max_pairs: int = 1500,
    alpha: float = 0.05,
    progress: bool = True,
) -> Lemma9Result:
    """Sample ``draws`` weight draws and test Lemma 9 on paths from up to ``max_inputs`` inputs.

    Per input: up to ``max_paths`` paths, their local pairs and random pairs up to a share of
    ``max_pairs`` (split evenly over the inputs).
    """
    if init not in INITS:
        raise InputError(f"--init {init!r}: choose one of {', '.join(INITS)}")
    if draws < 20:
        raise InputError(f"--draws {draws}: need at least 20 weight draws for a t-test")
    if not 0.0 < rho <= 1.0:
        raise InputError(f"--rho {rho}: the shared share of the variance must lie in (0, 1]")
    rand = random_layers(spec)
    if init == "shared":
        if shared_layers is None:
            if len(rand) < 2:
                raise InputError(f"--init shared needs two layers with random weights; {spec.describe()} has {len(rand)}")
            shared_layers = (rand[0], rand[1])
        bad = [l for l in shared_layers if l not in rand]
        if len(shared_layers) != 2 or bad or shared_layers[0] == shared_layers[1]:
            raise InputError(
                f"--shared-layers {','.join(map(str, shared_layers))}: give two distinct layers with random weights, among {rand}"
            )
    g = to_dag(spec)
    rng = numpy_rng(Stream.PATH_SAMPLE, seed)
    counts = count_paths(g)
    xs = input_nodes(g)
    if len(xs) > max_inputs:
        xs = [xs[int(i)] for i in sorted(rng.choice(len(xs), size=max_inputs, replace=False))]
    per_input = max(1, max_pairs // len(xs))
    path_sets: list[tuple[Hashable, list[Path], list[tuple[Path, Path]], int]] = []
    for x in xs:
        paths = sample_paths(g, x, max_paths, rng, counts)
        pairs = local_pairs(g, paths, rng)[:per_input]
        n_local = len(pairs)
        pairs += random_pairs(paths, per_input - len(pairs), rng)
        path_sets.append((x, paths, pairs, n_local))

    if init == "he":

        def sampler(i: int) -> Params:
            return init_params(spec, generator_for(Stream.WEIGHTS, seed, i), dtype=torch.float64)

    else:

        def sampler(i: int) -> Params:
            return sample_shared_params(spec, seed, i, layers=shared_layers, rho=rho)

    every_path = [p for _, paths, pairs, _ in path_sets for p in (*paths, *(q for pair in pairs for q in pair))]
    params = sorted({k for p in every_path for kind, k in _edge_keys(g, p) if kind == "w"})
    column = {p: j for j, p in enumerate(params)}
    values = draw_values(spec, params, draws, sampler, progress=progress)

    rows = []
    pure = 0
    pure_ok = True
    total_paths = 0
    for x, paths, pairs, n_local in path_sets:
        total_paths += len(paths)
        prods, n_random = path_products(g, paths, values, column)
        for j in range(len(paths)):
            if n_random[j] == 0:
                # A pure pooling path: its product is the constant prod 1/a, in every draw.
                pure += 1
                const = math.prod(float(g.edges[e]["value"]) for e in paths[j])
                pure_ok &= bool(np.all(prods[:, j] == const))
                continue
            rows.append((*_t_row("mean", x, int(n_random[j]), prods[:, j]), None))
        if pairs:
            left, _ = path_products(g, [a for a, _ in pairs], values, column)
            right, _ = path_products(g, [b for _, b in pairs], values, column)
            for j, (a, b) in enumerate(pairs):
                rows.append((*_t_row("pair", x, len(set(a) ^ set(b)), left[:, j] * right[:, j]), j < n_local))
    tests = pd.DataFrame(rows, columns=["kind", "input", "edges", "estimate", "stderr", "t", "p", "local"])
    tests["input"] = tests["input"].astype(str)
    tests["p_adj"] = holm(tests["p"].to_numpy())
    tests["reject"] = tests["p_adj"] < alpha
    notes = []
    shared_out = shared_out_parameters(g)
    if shared_out:
        notes.append(
            f"H5 fails by construction: {shared_out} nodes have two out-edges sharing one convolution weight "
            "(reflect padding); two distinct paths can then carry the same weights, and Lemma 9 need not hold"
        )
    if init == "shared":
        notes.append(f"layers {shared_layers[0]} and {shared_layers[1]} share a Gaussian component, rho = {rho}")
    return Lemma9Result(tests, alpha, draws, init, len(xs), total_paths, pure, pure_ok, shared_out, notes)


def _t_row(kind: str, x, n_random: int, values: np.ndarray) -> tuple:
    n = values.size
    mean = float(values.mean())
    sd = float(values.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0.0:
        # A constant product: 0 is consistent only if it is 0.
        t, p = (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
    else:
        res = stats.ttest_1samp(values, 0.0)
        t, p = float(res.statistic), float(res.pvalue)
    return (kind, x, n_random, mean, se, t, p)
