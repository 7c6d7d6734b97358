"""Hypotheses H2 and H3 checked on the network actually built.

H2: neurons are partitioned into layers and a path crosses each layer at most once. With the
partition given by ``layer`` attributes this fails exactly when some node reaches another
node of its own layer. Layers strictly increasing along every edge is sufficient but not
necessary (an edge from layer 2 down to layer 1 alone never revisits a layer), so the check
follows reachability. Without attributes the layer is the longest-path depth, which
increases along every edge, so H2 then holds on every DAG.

H3: a random weight into node p has variance ``2 / d_p`` with ``d_p`` the in-degree in the
DAG. The initialisation uses the *nominal* fan-in of the layer (``Layer.fan_in``: C_in k^2
for a conv, whatever the padding; the mask row sum for a masked layer), so zero padding breaks H3 at the image
boundary, where neurons have fewer in-edges. Reflect padding keeps H3: its parallel edges
count in the in-degree, and the torch Jacobian gives each its own weight.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Callable, Hashable, cast

import networkx as nx
import numpy as np
import torch

from graphs.dag import ensure_dag, node_layers
from graphs.spec import Spec

__all__ = [
    "check_h2",
    "h2_violations",
    "h3_violating_nodes",
    "h3_violation_counts",
    "h3_violation_fraction",
    "init_variance_from_spec",
]


def h2_violations(g: nx.DiGraph) -> list[tuple[Hashable, Hashable]]:
    """Pairs ``(u, v)``, u != v of one layer, with a path u -> v (at most one v per u is listed)."""
    ensure_dag(g)
    layer = node_layers(g)
    index = {lab: i for i, lab in enumerate(sorted(set(layer.values()), key=repr))}
    # below[u]: bitset of the layers of u's strict descendants
    below: dict[Hashable, int] = {}
    bad = []
    for u in reversed(list(nx.topological_sort(g))):
        bits = 0
        for w in g.successors(u):
            bits |= below[w] | (1 << index[layer[w]])
        below[u] = bits
        if bits >> index[layer[u]] & 1:
            bad.append(u)
    pairs = []
    for u in bad:
        same = next(v for v in nx.descendants(g, u) if layer[v] == layer[u])
        pairs.append((u, same))
    return pairs


def check_h2(g: nx.DiGraph) -> bool:
    """H2: no path crosses a layer twice (see the module docstring)."""
    return not h2_violations(g)


def h3_violation_counts(spec: Spec) -> list[tuple[int, int, int]]:
    """Per random-weight layer ``(layer, violating neurons, neurons)``; pooling layers skipped.

    A neuron violates H3 when its in-degree (with multiplicity) differs from the nominal
    fan-in, i.e. its init variance 2/nominal differs from 2/in-degree. Logits count.
    """
    from graphs.streaming import collapse_broadcast, degree_bands

    out = []
    for l, layer in enumerate(spec.layers, start=1):
        nominal = layer.fan_in()
        if nominal is None:
            continue
        bad = total = 0
        # in row bands (graphs.streaming): a 4096-pixel net's degree maps do not fit in memory whole
        for deg in degree_bands(spec, l):
            if isinstance(nominal, np.ndarray):
                # a per-neuron fan-in indexes the first (output-feature) axis
                fan = torch.as_tensor(np.asarray(nominal), dtype=deg.dtype).reshape(-1, *([1] * (deg.dim() - 1)))
                bad += int((deg != fan).sum())
            else:
                # a conv's degrees repeat over its channels: count one copy, times the copies
                once = collapse_broadcast(deg)
                bad += int((once != nominal).sum()) * (deg.numel() // max(1, once.numel()))
            total += deg.numel()
        out.append((l, bad, total))
    return out


def h3_violation_fraction(spec: Spec) -> float:
    """Fraction of random-weight neurons (logits included, pooling excluded) whose init breaks H3."""
    counts = h3_violation_counts(spec)
    total = sum(n for _, _, n in counts)
    return sum(b for _, b, _ in counts) / total if total else 0.0


def init_variance_from_spec(spec: Spec) -> Callable[[Hashable], Fraction | None]:
    """Node ``(l, i)`` of ``to_dag(spec)`` -> the weight variance its initialisation uses (None for pooling)."""
    nominal = [layer.fan_in() for layer in spec.layers]

    def variance(node: Hashable) -> Fraction | None:
        l, i = cast("tuple[int, int]", node)  # to_dag names every node (layer, flat index)
        fan = nominal[l - 1]
        if fan is None:
            return None
        fan = int(fan[i]) if isinstance(fan, np.ndarray) else int(fan)
        return Fraction(2, fan)

    return variance


def h3_violating_nodes(g: nx.DiGraph, init_variance: Callable[[Hashable], Fraction | None]) -> list[Hashable]:
    """Nodes with random in-edges whose init variance is not ``2 / in-degree`` in ``g``.

    A node has random weights when an in-edge has ``weight_kind == "random"`` (or no
    ``weight_kind``, for graphs without edge attributes).
    """
    ensure_dag(g)
    bad = []
    for v in g.nodes:
        deg = g.in_degree(v)
        if deg == 0:
            continue
        if not any(a.get("weight_kind", "random") == "random" for _, _, a in g.in_edges(v, data=True)):
            continue
        if init_variance(v) != Fraction(2, deg):
            bad.append(v)
    return bad
