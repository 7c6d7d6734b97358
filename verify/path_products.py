"""Paths of the explicit DAG and their weight products: counting, sampling, pairing, multiplying.

A path is a tuple of edges ``(u, v, key)`` of the ``MultiDiGraph`` from ``graphs.dag.to_dag``,
input first, ending at an output node. Its *product* ``w_p`` is the product of the weights on
its edges: a random weight is named by the edge's ``param`` (``(layer, *index)`` into that
layer's weight tensor), a pooling weight is the edge's constant ``value`` (``1/a``).

Lemma 9 is about pairs of paths from one input. All pairs of a sample of paths would be
quadratic, and a random pair almost always differs at many weights (an easy null), so two kinds
are drawn here: *local* pairs, where p' is p rerouted through one other intermediate node
(``u -> a -> b`` becomes ``u -> a' -> b``, differing in four weights only: the hardest case),
and random pairs of distinct paths.

Everything random takes a numpy ``Generator`` (the ``PATH_SAMPLE`` stream of ``graphs.rng``).
"""

from __future__ import annotations

from typing import Hashable, Literal, Sequence, Union

import networkx as nx
import numpy as np

from graphs.dag import output_nodes
from graphs.spec import Spec

__all__ = [
    "Edge",
    "Path",
    "count_paths",
    "edge_weights",
    "local_pairs",
    "path_products",
    "random_layers",
    "random_pairs",
    "random_weights",
    "sample_paths",
    "shared_out_parameters",
]

Edge = tuple  # (u, v, key) of a MultiDiGraph
Path = tuple  # tuple of edges, input first


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


def sample_paths(
    g: nx.MultiDiGraph,
    x: Hashable,
    max_paths: int,
    rng: np.random.Generator,
    counts: dict[Hashable, int] | None = None,
) -> list[Path]:
    """All paths from input ``x`` to the outputs if there are at most ``max_paths``, else
    ``max_paths`` distinct ones drawn uniformly (each step weighted by the paths it leads to).

    Uniform draws repeat paths; after ``50 * max_paths`` tries fewer may come back.
    """
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
            # Option 0 stops at an output node; option i > 0 takes edge i - 1.
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
            options.extend((i, a2) for a2 in g.succ[u] if a2 != a and b in g.succ[a2])
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


# ("w", param id (layer, *index)) for a random weight, ("c", value) for a pooling weight
EdgeWeight = Union[tuple[Literal["w"], tuple], tuple[Literal["c"], float]]


def edge_weights(g: nx.MultiDiGraph, path: Path) -> list[EdgeWeight]:
    """Per edge: ``("w", param)`` for a random weight, ``("c", value)`` for a pooling weight."""
    out: list[EdgeWeight] = []
    for u, v, k in path:
        a = g.edges[u, v, k]
        if a.get("weight_kind", "random") == "pool":
            out.append(("c", float(a["value"])))
        else:
            out.append(("w", a["param"]))
    return out


def random_weights(g: nx.MultiDiGraph, paths: Sequence[Path]) -> list[tuple]:
    """The distinct random weights (``param`` ids) on ``paths``, sorted: the columns to draw."""
    return sorted({w[1] for p in paths for w in edge_weights(g, p) if w[0] == "w"})


def path_products(
    g: nx.MultiDiGraph, paths: Sequence[Path], values: np.ndarray, column: dict
) -> tuple[np.ndarray, np.ndarray]:
    """Path products in every draw, ``(draws, len(paths))``, and each path's number of random weights.

    ``values[:, column[param]]`` holds the drawn value of random weight ``param``.
    """
    out = np.ones((values.shape[0], len(paths)), dtype=np.float64)
    n_random = np.zeros(len(paths), dtype=np.int64)
    for j, path in enumerate(paths):
        for w in edge_weights(g, path):
            if w[0] == "w":
                out[:, j] *= values[:, column[w[1]]]
                n_random[j] += 1
            else:
                out[:, j] *= w[1]
    return out, n_random


def random_layers(spec: Spec) -> list[int]:
    """Layers (1-based) that have random weights."""
    return [i for i, layer in enumerate(spec.layers, start=1) if layer.weight_shape() is not None]


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
