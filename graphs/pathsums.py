"""Exact path sums on a DAG: brute force (the oracle) and dynamic programming.

For output o and input x, ``P(x, o) = sum over paths x -> o of prod_{p in p~} m(p)`` where
``p~`` is the path without its input node and ``m`` a node factor; the default factor is
``1/d_p`` (``d_p`` the in-degree counting parallel edges), which gives Lemma 7
(``sum_x P(x, o) = 1``) and, under (S), Lemma 8 (``P(x, o) = 1/d``). Parallel edges are
distinct paths, so they count with multiplicity.

Any factor that depends on the node alone can be passed (``factor(node, attrs, in_degree)``),
so other exact sums over paths, such as the second moments under (H), reuse the same DP.

These work on any networkx ``DiGraph``/``MultiDiGraph``: the inputs are the nodes of kind
"input" when nodes carry ``kind`` attributes, else the nodes without in-edges
(``graphs.dag.input_nodes``). For full-size networks use the operator form
(``graphs.operator.path_sums_operator``), which never builds the graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Hashable, Mapping, Sequence, Union

import networkx as nx
import numpy as np
import torch

from graphs.dag import ensure_dag, input_nodes
from graphs.operator import path_sums_operator
from graphs.spec import Spec

__all__ = [
    "GraphFactor",
    "PathSumSummary",
    "ancestor_order",
    "inverse_degree",
    "lemma7_total",
    "lemma8_holds",
    "operator_path_sums",
    "output_classes",
    "path_sum_summary",
    "path_sums_bruteforce",
    "path_sums_dp",
    "scaled_path_sum_range",
    "spec_edge_count",
    "topological_order",
]

Number = Union[float, Fraction, int]
# (node, its attribute dict, its in-degree counting parallel edges) -> factor of that node
GraphFactor = Callable[[Hashable, Mapping, int], Number]


def inverse_degree(node: Hashable, attrs: Mapping, degree: int) -> Fraction:
    """Lemma 7's factor ``1/d_p`` (a pooling node's weight 1/a is the same number)."""
    return Fraction(1, degree)


def _factor_values(g: nx.DiGraph, nodes, factor: GraphFactor | None, exact: bool) -> dict[Hashable, Number]:
    """Each node's factor once, as Fraction (exact) or float."""
    f = inverse_degree if factor is None else factor
    out: dict[Hashable, Number] = {}
    for v in nodes:
        deg = g.in_degree(v)
        if deg == 0:
            # An input has no in-edge; its factor never enters a product (p~ drops the input).
            out[v] = 1
            continue
        value = f(v, g.nodes[v], deg)
        out[v] = Fraction(value) if exact else float(value)
    return out


def _check(g: nx.DiGraph, o: Hashable) -> None:
    """Refuse a cyclic graph (``CyclicGraphError``) or an output that is not a node (``KeyError``)."""
    ensure_dag(g)
    if o not in g:
        raise KeyError(f"output {o!r} is not a node of the graph")


def topological_order(g: nx.DiGraph) -> list[Hashable]:
    """Every node after its predecessors (Kahn's algorithm on the adjacency dicts).

    Several times faster than ``nx.topological_sort`` on multigraphs; a graph it cannot
    order has a cycle, and ``ensure_dag`` then raises ``CyclicGraphError``.
    """
    pred, succ = g.pred, g.succ
    waiting = {v: len(pred[v]) for v in g}
    order = [v for v, k in waiting.items() if k == 0]
    i = 0
    while i < len(order):
        for w in succ[order[i]]:
            waiting[w] -= 1
            if waiting[w] == 0:
                order.append(w)
        i += 1
    if len(order) != len(waiting):
        ensure_dag(g)
        raise AssertionError("unreachable: a graph Kahn's algorithm cannot order has a cycle")  # pragma: no cover
    return order


def path_sums_bruteforce(
    g: nx.DiGraph, o: Hashable, factor: GraphFactor | None = None, *, exact: bool = True
) -> dict[Hashable, Number]:
    """``P(x, o)`` for every input x by enumerating every path (tiny DAGs only: the oracle).

    Walks up from o one edge at a time (parallel edges separately), multiplying the factor
    of each node left behind, and adds the product to the input it stops at.
    """
    _check(g, o)
    inputs = input_nodes(g)
    is_input = set(inputs)
    fac = _factor_values(g, g.nodes, factor, exact)
    zero: Number = Fraction(0) if exact else 0.0
    sums: dict[Hashable, Number] = dict.fromkeys(inputs, zero)
    one: Number = Fraction(1) if exact else 1.0
    stack = [(o, one)]
    while stack:
        v, prod = stack.pop()
        if v in is_input:
            sums[v] += prod
        step = prod * fac[v]
        # in_edges of a MultiDiGraph yields one pair per parallel edge: each is its own path.
        for u, _ in g.in_edges(v):
            stack.append((u, step))
    return sums


def ancestor_order(g: nx.DiGraph, o: Hashable) -> list[Hashable]:
    """o and its ancestors, each after all of its successors (reverse topological order).

    Raises ``CyclicGraphError`` (through ``ensure_dag``) on a graph with a cycle.
    """
    if o not in g:
        raise KeyError(f"output {o!r} is not a node of the graph")
    order = topological_order(g)
    keep = nx.ancestors(g, o)
    keep.add(o)
    return [v for v in reversed(order) if v in keep]


def path_sums_dp(
    g: nx.DiGraph, o: Hashable, exact: bool = False, factor: GraphFactor | None = None
) -> dict[Hashable, Number]:
    """``P(x, o)`` for every input x by dynamic programming, in float64 or exactly (Fraction).

    ``B(u) = sum_{edges u -> w} m(w) B(w)`` with ``B(o) = 1`` is the sum over paths u -> o of
    the product over the path without u; ``P(x, o) = B(x)``. Each node is visited once, each
    edge once (parallel edges through their multiplicity): O(V + E) arithmetic operations.
    """
    order = ancestor_order(g, o)
    fac = _factor_values(g, order, factor, exact)
    zero: Number = Fraction(0) if exact else 0.0
    weighted: dict[Hashable, Number] = {}  # m(w) * B(w)
    value: dict[Hashable, Number] = {}
    multi = g.is_multigraph()
    succ = g.succ
    for u in order:
        if u == o:
            b: Number = Fraction(1) if exact else 1.0
        else:
            b = zero
            for w, keys in succ[u].items():
                if w in weighted:
                    b += weighted[w] * len(keys) if multi else weighted[w]
        value[u] = b
        weighted[u] = b * fac[u]
    return {x: value.get(x, zero) for x in input_nodes(g)}


def lemma7_total(g: nx.DiGraph, o: Hashable, *, exact: bool = True) -> Number:
    """``sum_x P(x, o)``: exactly 1 on every DAG (a random walk up from o ends at an input)."""
    sums = path_sums_dp(g, o, exact=exact)
    return sum(sums.values(), Fraction(0) if exact else 0.0)


def lemma8_holds(g: nx.DiGraph, o: Hashable) -> bool:
    """Whether ``P(x, o) = 1/d`` exactly for every input x (Lemma 8's conclusion)."""
    sums = path_sums_dp(g, o, exact=True)
    target = Fraction(1, len(sums))
    return all(v == target for v in sums.values())


def scaled_path_sum_range(g: nx.DiGraph, o: Hashable, *, exact: bool = True) -> tuple[Number, Number]:
    """``(min_x d P(x, o), max_x d P(x, o))``: both 1 under (S), the spread shows how far (S) fails."""
    sums = path_sums_dp(g, o, exact=exact)
    d = len(sums)
    values = [d * v for v in sums.values()]
    return min(values), max(values)


def spec_edge_count(spec: Spec) -> int:
    """Number of edges of ``to_dag(spec)`` (with multiplicity), without building it.

    Every edge enters exactly one node, so the edges are the sum of all in-degrees (taken in
    row bands, ``graphs.streaming.degree_bands``, so that a 4096-pixel net fits in memory).
    """
    from graphs.streaming import degree_bands

    return int(math.fsum(float(m.sum()) for l in range(1, len(spec.layers) + 1) for m in degree_bands(spec, l)))


def output_classes(spec: Spec, outputs: Sequence[int] | None = None) -> list[list[int]]:
    """Outputs grouped by identical in-edges: outputs of one group have identical path sums.

    The last layer knows (``Layer.output_classes``): a dense last layer gives one group (every
    logit reads every unit), so a sum over all paths to every logit costs one backward pass
    instead of K.
    """
    if outputs is None:
        outputs = range(spec.sizes[-1])
    return spec.layers[-1].output_classes(list(outputs))


def operator_path_sums(
    spec: Spec, outputs: Sequence[int] | None = None, *, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """``P(x, o)`` in float64 for each output (rows) and input x, one backward pass per output class."""
    if outputs is None:
        outputs = range(spec.sizes[-1])
    outputs = list(outputs)
    classes = output_classes(spec, outputs)
    rows = path_sums_operator(spec, [c[0] for c in classes], device=device)
    result = torch.empty((len(outputs), spec.d), dtype=rows.dtype, device=rows.device)
    where = {o: i for i, o in enumerate(outputs)}
    for row, members in zip(rows, classes):
        for o in members:
            result[where[o]] = row
    return result


@dataclass(frozen=True)
class PathSumSummary:
    """What the checks read from the path sums ``P(x, o)`` of a spec, for every logit o.

    ``classes`` groups logits with identical in-edges (identical sums); ``totals[k]`` is
    Lemma 7's ``sum_x P(x, o)`` of class k; ``scaled_min``/``scaled_max`` bound ``d * P(x, o)``
    over every input and logit; ``first`` is ``d * P(x, o_0)`` over the input (logit 0), shaped
    like the input.
    """

    classes: list[list[int]]
    totals: list[float]
    scaled_min: float
    scaled_max: float
    first: np.ndarray = field(repr=False)
    streamed: bool = False


def path_sum_summary(spec: Spec, *, progress: bool = False) -> PathSumSummary:
    """Path sums of every logit reduced to ``PathSumSummary`` in float64.

    Small nets: one whole operator pass per class of logits (``path_sums_operator``). Nets
    whose whole pass would not fit ``graphs.streaming.STREAM_BYTES``: row bands of the input
    (``graphs.streaming.vjp_bands``), so memory stays bounded (a 4096 x 4096 paper net in
    about 2 GB, the one full-size array kept being ``first``).
    """
    from graphs.operator import path_sum_factor
    from graphs.streaming import Band, should_stream, vjp_bands

    classes = output_classes(spec)
    reps = [c[0] for c in classes]
    first_class = next(k for k, c in enumerate(classes) if 0 in c)
    streamed = should_stream(spec, len(reps))
    if streamed:
        bands = vjp_bands(spec, path_sum_factor, reps, progress=progress, desc=f"path sums dim={spec.dim}")
    else:
        whole = path_sums_operator(spec, reps).reshape((len(reps), *spec.input_shape))
        height = spec.input_shape[1] if len(spec.input_shape) == 3 else spec.d
        bands = iter([Band(0, height, whole)])
    totals = [0.0] * len(reps)
    lo, hi = math.inf, -math.inf
    first = np.empty(spec.d, dtype=np.float64)
    for band in bands:
        flat = band.values.reshape(len(reps), -1)
        for k in range(len(reps)):
            totals[k] += float(flat[k].sum())
        lo = min(lo, spec.d * float(flat.min()))
        hi = max(hi, spec.d * float(flat.max()))
        first[band.flat_index(spec.input_shape)] = spec.d * flat[first_class].numpy()
    return PathSumSummary(classes, totals, lo, hi, first.reshape(spec.input_shape), streamed)
