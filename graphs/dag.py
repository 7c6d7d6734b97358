"""A spec as an exact networkx DAG, built by index arithmetic (independently of torch).

Nodes are ``(layer, index)``: layer 0 is the input, layer L the logits, ``index`` the
position in the C-major flattened activation. Node attributes: ``layer``, ``kind``
(input, relu, pool, linear, output) and ``activation`` (the name of the activation that
follows the node's layer, ``graphs.layers.activation``; identity for the inputs). The graph is a ``MultiDiGraph``: reflect padding can
connect one input twice to one neuron, and both edges are kept. Edge attributes:
``weight_kind`` ("random", "pool" for a constant weight, or "max"/"batch" for the
data-dependent edges of max pooling and batch statistics), ``param`` (the shared parameter of a random edge:
``(layer, *index into that layer's weight tensor)``) and ``value`` (``Fraction(1, a)`` for a
pooling edge, ``None`` for a random one).
"""

from __future__ import annotations

from typing import Hashable

import networkx as nx

from graphs.errors import CyclicGraphError
from graphs.spec import Spec

__all__ = ["ensure_dag", "in_degrees", "input_nodes", "node_layers", "output_nodes", "to_dag"]


def to_dag(spec: Spec) -> nx.MultiDiGraph:
    """The exact DAG of ``spec``. Small sizes only: a 3 x 256 x 256 paper net has ~10^9 edges.

    Each layer lists its own in-edges (``Layer.dag_edges``), by index arithmetic that never
    touches torch, so a test comparing the DAG with the torch Jacobians checks both.
    """
    g = nx.MultiDiGraph(arch=spec.family, d=spec.d, dim=spec.dim)
    shapes = spec.shapes
    for l, size in enumerate(spec.sizes):
        kind = spec.node_kind(l)
        act = spec.layers[l - 1].activation_name if l else "identity"
        g.add_nodes_from(((l, i) for i in range(size)), layer=l, kind=kind, activation=act)
    for l, layer in enumerate(spec.layers, start=1):
        g.add_edges_from(((j, s), (l, t), a) for j, s, t, a in layer.dag_edges(l, shapes))
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
