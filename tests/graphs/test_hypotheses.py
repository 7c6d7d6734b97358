"""H2 and H3 on the networks actually built."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphs.dag import to_dag
from graphs.errors import CyclicGraphError
from graphs.hypotheses import (
    check_h2,
    h2_violations,
    h3_violating_nodes,
    h3_violation_counts,
    h3_violation_fraction,
    init_variance_from_spec,
)
from graphs.spec import build_spec
from tests.strategies import random_dags


@given(random_dags())
def test_h2_holds_on_layered_dags(g):
    assert check_h2(g)


@given(random_dags(attributes=False))
def test_h2_holds_without_layer_attributes(g):
    assert check_h2(g)


@given(random_dags(), st.data())
def test_h2_detects_a_relabelled_node(g, data):
    """Moving a node into the layer of one of its strict descendants must be caught."""
    pairs = [(u, v) for u in g for v in nx.descendants(g, u) if u != v]
    if not pairs:
        return
    u, v = data.draw(st.sampled_from(pairs))
    g.nodes[u]["layer"] = g.nodes[v]["layer"]
    assert not check_h2(g)
    for a, b in h2_violations(g):
        assert g.nodes[a]["layer"] == g.nodes[b]["layer"]
        assert nx.has_path(g, a, b)


def test_h2_backward_edge_without_repeat_is_fine():
    """Strictly increasing layers are sufficient, not necessary: a lone downward edge revisits nothing."""
    g = nx.DiGraph()
    g.add_node("a", layer=2)
    g.add_node("b", layer=1)
    g.add_edge("a", "b")
    assert check_h2(g)
    g.add_node("c", layer=2)
    g.add_edge("b", "c")  # a -> b -> c crosses layer 2 twice
    assert h2_violations(g) == [("a", "c")]


def test_h2_on_spec_dags_and_cycles():
    for fam, n, opts in [
        ("dense", 5, {"widths": (3,)}),
        ("random-dag", 6, {"hidden": (4, 4), "skip_prob": 0.9}),
        ("avgpool-cnn", 4, {"channels": 1, "strides": (1, 2)}),
    ]:
        assert check_h2(to_dag(build_spec(fam, n, **opts)))
    with pytest.raises(CyclicGraphError):
        check_h2(nx.DiGraph([(0, 1), (1, 0)]))


@pytest.mark.parametrize(
    ("fam", "n", "opts", "broken"),
    [
        ("dense", 6, {"widths": (5, 4)}, False),
        ("random-dag", 8, {"hidden": (6, 5), "skip_prob": 0.5}, False),
        ("strided-cnn", 8, {"channels": 2, "strides": (1, 2, 2), "padding": "zeros"}, True),
        ("strided-cnn", 8, {"channels": 2, "strides": (1, 2, 2), "padding": "circular"}, False),
        ("strided-cnn", 8, {"channels": 2, "strides": (1, 2, 2), "padding": "reflect"}, False),
        ("avgpool-cnn", 8, {"channels": 2, "strides": (1, 2, 2), "padding": "zeros"}, True),
        ("avgpool-cnn", 8, {"channels": 2, "strides": (1, 2, 2), "padding": "circular"}, False),
    ],
)
def test_h3_spec_and_dag_versions_agree(fam, n, opts, broken):
    spec = build_spec(fam, n, **opts)
    g = to_dag(spec)
    bad = h3_violating_nodes(g, init_variance_from_spec(spec))
    random_neurons = [v for v in g if g.in_degree(v) and g.nodes[v]["kind"] != "pool"]
    counts = h3_violation_counts(spec)
    assert sum(b for _, b, _ in counts) == len(bad)
    assert sum(t for _, _, t in counts) == len(random_neurons)
    fraction = h3_violation_fraction(spec)
    assert fraction == len(bad) / len(random_neurons)
    assert (fraction > 0) is broken
    assert all(g.nodes[v]["kind"] != "pool" for v in bad)


def test_h3_zero_padding_breaks_exactly_the_boundary():
    """One 3x3 conv with zero padding on an n x n image: the 4n - 4 border neurons per channel."""
    n = 7
    spec = build_spec("strided-cnn", n, channels=2, in_channels=1, strides=(1,), padding="zeros", num_classes=3)
    (conv, c1, t1), (lin, c2, t2) = h3_violation_counts(spec)
    assert (conv, c1, t1) == (1, 2 * (4 * n - 4), 2 * n * n)
    assert (lin, c2, t2) == (2, 0, 3)
    assert h3_violation_fraction(spec) == pytest.approx(2 * (4 * n - 4) / (2 * n * n + 3))


def test_h3_full_size_paper_net_zero_padding():
    """Runs on the full 3 x 256 x 256 net in well under a second (no DAG)."""
    zeros = h3_violation_fraction(build_spec("strided-cnn", 256))
    circular = h3_violation_fraction(build_spec("strided-cnn", 256, padding="circular"))
    assert 0 < zeros < 0.1
    assert circular == 0
