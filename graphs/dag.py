"""A spec as an exact networkx DAG, built by index arithmetic (independently of torch).

Nodes are ``(layer, index)``: layer 0 is the input, layer L the logits, ``index`` the
position in the C-major flattened activation. Node attributes: ``layer``, ``kind``
(input, relu, pool, linear, output). The graph is a ``MultiDiGraph``: reflect padding can
connect one input twice to one neuron, and both edges are kept. Edge attributes:
``weight_kind`` ("random" or "pool"), ``param`` (the shared parameter of a random edge:
``(layer, *index into that layer's weight tensor)``) and ``value`` (``Fraction(1, a)`` for a
pooling edge, ``None`` for a random one).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Hashable, Iterator

import networkx as nx
import numpy as np

from graphs.errors import CyclicGraphError
from graphs.spec import AvgPool2d, Conv2d, Linear, MaskedLinear, Spec

__all__ = ["to_dag", "ensure_dag", "input_nodes", "output_nodes", "in_degrees", "node_layers"]


def _source_index(i: int, n: int, mode: str) -> int | None:
    """Where padded coordinate ``i`` (in ``-pad .. n + pad - 1``) reads from, or None for a zero."""
    if 0 <= i < n:
        return i
    if mode == "zeros":
        return None
    if mode == "circular":
        return i % n
    # reflect: mirror without repeating the edge pixel, as torch does
    return -i if i < 0 else 2 * (n - 1) - i


def _conv_edges(layer: Conv2d, l: int, in_shape, out_shape) -> Iterator[tuple[int, int, dict]]:
    cin, h, w = in_shape
    cout, ho, wo = out_shape
    k, s, p = layer.kernel, layer.stride, layer.pad
    for oy in range(ho):
        for ox in range(wo):
            for ky in range(k):
                iy = _source_index(oy * s + ky - p, h, layer.padding)
                if iy is None:
                    continue
                for kx in range(k):
                    ix = _source_index(ox * s + kx - p, w, layer.padding)
                    if ix is None:
                        continue
                    for co in range(cout):
                        dst = (co * ho + oy) * wo + ox
                        for ci in range(cin):
                            src = (ci * h + iy) * w + ix
                            yield src, dst, {"weight_kind": "random", "param": (l, co, ci, ky, kx), "value": None}


def _pool_edges(layer: AvgPool2d, in_shape, out_shape) -> Iterator[tuple[int, int, dict]]:
    c, h, w = in_shape
    _, ho, wo = out_shape
    a = layer.window
    value = Fraction(1, layer.area)
    for ch in range(c):
        for oy in range(ho):
            for ox in range(wo):
                dst = (ch * ho + oy) * wo + ox
                for dy in range(a):
                    for dx in range(a):
                        src = (ch * h + oy * a + dy) * w + ox * a + dx
                        yield src, dst, {"weight_kind": "pool", "param": None, "value": value}


def to_dag(spec: Spec) -> nx.MultiDiGraph:
    """The exact DAG of ``spec``. Small sizes only: a 3 x 256 x 256 paper net has ~10^9 edges."""
    g = nx.MultiDiGraph(arch=spec.family, d=spec.d, dim=spec.dim)
    shapes = spec.shapes
    sizes = spec.sizes
    for l, size in enumerate(sizes):
        kind = spec.node_kind(l)
        g.add_nodes_from(((l, i) for i in range(size)), layer=l, kind=kind)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    for l, layer in enumerate(spec.layers, start=1):
        if isinstance(layer, Conv2d):
            edges = (((l - 1, s), (l, t), a) for s, t, a in _conv_edges(layer, l, shapes[l - 1], shapes[l]))
        elif isinstance(layer, AvgPool2d):
            edges = (((l - 1, s), (l, t), a) for s, t, a in _pool_edges(layer, shapes[l - 1], shapes[l]))
        elif isinstance(layer, Linear):
            edges = (
                ((l - 1, s), (l, t), {"weight_kind": "random", "param": (l, t, s), "value": None})
                for t in range(layer.out_features)
                for s in range(layer.in_features)
            )
        elif isinstance(layer, MaskedLinear):
            src_layer = np.searchsorted(offsets, np.arange(layer.in_features), side="right") - 1
            rows, cols = np.nonzero(layer.mask)
            edges = (
                (
                    (int(src_layer[c]), int(c - offsets[src_layer[c]])),
                    (l, int(r)),
                    {"weight_kind": "random", "param": (l, int(r), int(c)), "value": None},
                )
                for r, c in zip(rows, cols)
            )
        else:  # pragma: no cover
            raise TypeError(type(layer).__name__)
        g.add_edges_from(edges)
    return g


def ensure_dag(g: nx.DiGraph) -> None:
    """Raise ``CyclicGraphError`` (one line, with a cycle) if ``g`` has a directed cycle."""
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        shown = " -> ".join(str(e[0]) for e in cycle[:4])
        raise CyclicGraphError(f"the graph has a directed cycle ({shown} -> ...); path sums need a DAG")


def in_degrees(g: nx.MultiDiGraph) -> dict[Hashable, int]:
    """In-degree of every node, counting parallel edges."""
    return dict(g.in_degree())


def node_layers(g: nx.DiGraph) -> dict[Hashable, int]:
    """Layer of every node: the ``layer`` attribute when present, else the longest path from a source."""
    if all("layer" in a for _, a in g.nodes(data=True)):
        return {v: a["layer"] for v, a in g.nodes(data=True)}
    depth: dict[Hashable, int] = {}
    for v in nx.topological_sort(g):
        depth[v] = max((depth[u] + 1 for u in g.predecessors(v)), default=0)
    return depth


def _by_kind(g: nx.DiGraph, kind: str, fallback) -> list[Hashable]:
    # A spec DAG says which nodes are inputs and logits; a strided layer can leave a hidden
    # neuron without out-edges, so degree alone would misclassify it.
    if all("kind" in a for _, a in g.nodes(data=True)):
        return sorted(v for v, a in g.nodes(data=True) if a["kind"] == kind)
    return sorted(v for v in g.nodes if fallback(v) == 0)


def input_nodes(g: nx.DiGraph) -> list[Hashable]:
    """The inputs: nodes of kind "input", or without in-edges in a graph with no kinds."""
    return _by_kind(g, "input", g.in_degree)


def output_nodes(g: nx.DiGraph) -> list[Hashable]:
    """The outputs: nodes of kind "output", or without out-edges in a graph with no kinds."""
    return _by_kind(g, "output", g.out_degree)
