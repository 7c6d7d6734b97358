"""Hypothesis strategies for small layered DAGs (shared by the test modules of several areas).

``residual_specs()``: small specs of dense layers with residual additions (identity skips and
projection skips through a tap), so the DAG has skip connections built by the layer kinds
themselves.

``random_dags()``: random layered ``MultiDiGraph`` s with ``layer``/``kind`` node attributes
and ``weight_kind`` edge attributes, random in-degrees, optional skip connections and parallel
edges; every non-input node has at least one in-edge. ``symmetric_dags()``: layered DAGs
built to satisfy (S) for their single output (channel-dense, spatially block-tree layers with
uniform edge multiplicity per layer: every input has one path-degree sequence and the same
number of paths), so Lemma 8 is exercised on non-trivial graphs.
"""

from __future__ import annotations

import itertools

import networkx as nx
from hypothesis import settings
from hypothesis import strategies as st

__all__ = ["layered_widths", "random_dags", "residual_specs", "symmetric_dags", "thorough"]


def thorough() -> bool:
    """Whether the ``thorough`` hypothesis profile is loaded: strategies then draw larger graphs."""
    return settings.get_current_profile_name() == "thorough"


def _pick(value, default: int, large: int) -> int:
    if value is not None:
        return value
    return large if thorough() else default


def layered_widths(max_layers: int = 4, max_width: int = 4, max_inputs: int = 5):
    """Widths ``[inputs, hidden..., outputs]``."""
    return st.tuples(
        st.integers(1, max_inputs),
        st.lists(st.integers(1, max_width), min_size=0, max_size=max_layers - 1),
        st.integers(1, 3),
    ).map(lambda t: [t[0], *t[1], t[2]])


@st.composite
def random_dags(
    draw,
    max_layers: int | None = None,
    max_width: int | None = None,
    max_inputs: int | None = None,
    max_in_degree: int | None = None,
    skip: bool = True,
    parallel: bool = True,
    attributes: bool = True,
) -> nx.MultiDiGraph:
    """A random layered DAG: nodes ``(layer, i)``; layer 0 inputs, the last layer outputs.

    Each non-input node draws 1..max_in_degree in-edges, each from the previous layer or
    (with ``skip``) any earlier one; with ``parallel`` a source may repeat (parallel edges).
    ``attributes=False`` drops node/edge attributes (inputs are then the sources). Sizes
    default to 4 layers, width 4, 5 inputs, in-degree 4 (6, 6, 8, 5 under ``thorough``).
    """
    max_layers = _pick(max_layers, 4, 6)
    max_width = _pick(max_width, 4, 6)
    max_inputs = _pick(max_inputs, 5, 8)
    max_in_degree = _pick(max_in_degree, 4, 5)
    widths = draw(layered_widths(max_layers, max_width, max_inputs))
    g = nx.MultiDiGraph()
    last = len(widths) - 1
    for l, w in enumerate(widths):
        kind = "input" if l == 0 else "output" if l == last else "relu"
        for i in range(w):
            if attributes:
                g.add_node((l, i), layer=l, kind=kind)
            else:
                g.add_node((l, i))
    for l in range(1, len(widths)):
        for i in range(widths[l]):
            k = draw(st.integers(1, max_in_degree))
            chosen = set()
            for _ in range(k):
                src_layer = draw(st.integers(0, l - 1)) if skip and draw(st.booleans()) else l - 1
                src = (src_layer, draw(st.integers(0, widths[src_layer] - 1)))
                if not parallel and src in chosen:
                    continue
                chosen.add(src)
                if attributes:
                    g.add_edge(src, (l, i), weight_kind="random")
                else:
                    g.add_edge(src, (l, i))
    if not attributes:
        # Without kinds, a node with no in-edge counts as an input: every non-input has one.
        assert all(g.in_degree(v) > 0 for v in g if v[0] > 0)
    return g


@st.composite
def symmetric_dags(
    draw, max_layers: int | None = None, max_channels: int = 3, max_block: int = 3, max_mult: int = 2
) -> nx.MultiDiGraph:
    """A DAG satisfying (S) for its one output ``(L, 0)``.

    Layer l has ``c_l`` channels times ``s_l`` positions with ``s_{l-1} = k_l s_l`` and
    ``s_L = 1``: node ``(ch, pos)`` reads every channel at positions ``pos k .. pos k + k - 1``
    of the layer below, each edge repeated ``m_l`` times. Node labels are shuffled so the
    structure is not visible in the indices. Up to 3 layers (4 under ``thorough``).
    """
    n = draw(st.integers(1, _pick(max_layers, 3, 4)))
    blocks = [draw(st.integers(1, max_block)) for _ in range(n)]
    channels = [draw(st.integers(1, max_channels)) for _ in range(n)] + [1]
    mults = [draw(st.integers(1, max_mult)) for _ in range(n)]
    positions = [1]
    for k in reversed(blocks):
        positions.insert(0, positions[0] * k)
    sizes = [c * s for c, s in zip(channels, positions)]
    perms = [draw(st.permutations(range(size))) for size in sizes]
    g = nx.MultiDiGraph()
    for l, size in enumerate(sizes):
        kind = "input" if l == 0 else "output" if l == n else "relu"
        for i in range(size):
            g.add_node((l, perms[l][i]), layer=l, kind=kind)
    for l in range(1, n + 1):
        k, m = blocks[l - 1], mults[l - 1]
        for ch in range(channels[l]):
            for pos in range(positions[l]):
                dst = (l, perms[l][ch * positions[l] + pos])
                for cin in range(channels[l - 1]):
                    for off in range(k):
                        src = (l - 1, perms[l - 1][cin * positions[l - 1] + pos * k + off])
                        for _ in range(m):
                            g.add_edge(src, dst, weight_kind="random")
    return g


@st.composite
def residual_specs(draw, max_blocks: int | None = None, max_width: int = 3):
    """A spec: a dense layer, then residual blocks, then the logits.

    Each block has a branch of one or two dense layers (ReLU or none, the last one ungated or
    not) and adds it to the block's input: directly when the widths agree, else through a tap
    and a dense projection. An optional ReLU follows the addition. Up to 2 blocks (3 under
    ``thorough``), widths up to 3.
    """
    from graphs.layers import Add, Linear, Tap
    from graphs.spec import Spec

    d = draw(st.integers(1, 3))
    w = draw(st.integers(1, max_width))
    layers: list = [Linear(d, w, relu=draw(st.booleans()))]
    for _ in range(draw(st.integers(1, _pick(max_blocks, 2, 3)))):
        start = len(layers)
        depth = draw(st.integers(1, 2))
        widths = [w] + [draw(st.integers(1, max_width)) for _ in range(depth)]
        for a, b in itertools.pairwise(widths):
            layers.append(Linear(a, b, relu=draw(st.booleans())))
        gate = draw(st.booleans())
        if widths[-1] != w or draw(st.booleans()):
            main_end = len(layers)
            layers.append(Tap(len(layers) + 1 - start))
            layers.append(Linear(w, widths[-1], relu=False))
            layers.append(Add(len(layers) + 1 - main_end, relu=gate))
        else:
            layers.append(Add(len(layers) + 1 - start, relu=gate))
        w = widths[-1]
    layers.append(Linear(w, draw(st.integers(1, 2)), relu=False))
    return Spec("residual", d, (d,), tuple(layers))
