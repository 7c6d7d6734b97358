"""verify.path_products: counting, sampling and pairing paths of the explicit DAG, and their products."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from graphs.dag import input_nodes, output_nodes, to_dag
from graphs.layers import apply_linear
from graphs.rng import Stream, generator_for
from graphs.spec import build_spec
from verify.model import init_params
from verify.path_products import (
    count_paths,
    local_pairs,
    path_products,
    random_layers,
    random_pairs,
    random_weights,
    sample_paths,
    shared_out_parameters,
)


def test_count_paths_matches_enumeration():
    spec = build_spec("random-dag", 3, hidden=(4, 3), max_in_degree=3)
    g = to_dag(spec)
    counts = count_paths(g)
    rng = np.random.default_rng(0)
    for x in input_nodes(g):
        paths = sample_paths(g, x, 10**6, rng, counts)
        assert len(paths) == counts[x] == len(set(paths))


def test_sampled_paths_are_distinct_paths_to_outputs():
    spec = build_spec("random-dag", 6, hidden=(16, 16), max_in_degree=4)
    g = to_dag(spec)
    outputs = set(output_nodes(g))
    rng = np.random.default_rng(1)
    x = input_nodes(g)[0]
    paths = sample_paths(g, x, 25, rng)
    assert len(paths) == 25 == len(set(paths))
    for path in paths:
        assert path[0][0] == x
        assert path[-1][1] in outputs
        assert all(g.has_edge(u, v, k) for u, v, k in path)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(path))
    for a, b in local_pairs(g, paths, rng):
        assert a != b
        assert a[0][0] == b[0][0]
        assert a[-1][1] == b[-1][1]
        assert len(set(a) ^ set(b)) == 4


def test_random_pairs_are_distinct_unordered_pairs():
    paths = [(("x", i, 0),) for i in range(6)]
    rng = np.random.default_rng(2)
    pairs = random_pairs(paths, 7, rng)
    assert len(pairs) == 7 == len({frozenset(p) for p in pairs})
    assert all(a != b for a, b in pairs)
    assert len(random_pairs(paths, 100, rng)) == 15  # all of them
    assert random_pairs(paths[:1], 5, rng) == []


def test_path_products_sum_to_the_linear_jacobian():
    """Summed over every path x -> o, path products are d o / d x of the net without ReLUs."""
    spec = build_spec("random-dag", 3, hidden=(4, 3), max_in_degree=3, skip_prob=0.5)
    g = to_dag(spec)
    params = init_params(spec, generator_for(Stream.WEIGHTS, 5, 0), dtype=torch.float64)
    x = torch.zeros((1, spec.d), dtype=torch.float64, requires_grad=True)
    history = [x]
    for layer, w in zip(spec.layers, params):
        history.append(apply_linear(layer, w, history))
    jac = torch.stack(
        [torch.autograd.grad(history[-1][0, o], x, retain_graph=True)[0][0] for o in range(spec.num_classes)]
    )
    counts = count_paths(g)
    rng = np.random.default_rng(0)
    for xi in input_nodes(g):
        paths = sample_paths(g, xi, 10**6, rng, counts)
        keys = random_weights(g, paths)
        values = np.array([[float(params[k[0] - 1][k[1:]]) for k in keys]])
        prods, n_random = path_products(g, paths, values, {k: j for j, k in enumerate(keys)})
        assert (n_random == [len(p) for p in paths]).all()  # no pooling: every weight is random
        for o in output_nodes(g):
            total = sum(prods[0, j] for j, p in enumerate(paths) if p[-1][1] == o)
            assert total == pytest.approx(float(jac[o[1], xi[1]]), rel=1e-12, abs=1e-14)


def test_pooling_weights_enter_as_constants():
    spec = build_spec("avgpool-cnn", 4, channels=1, strides=(1, 2))
    g = to_dag(spec)
    x = input_nodes(g)[0]
    paths = sample_paths(g, x, 10, np.random.default_rng(0))
    keys = random_weights(g, paths)
    prods, n_random = path_products(g, paths, np.ones((1, len(keys))), {k: j for j, k in enumerate(keys)})
    pools = [sum(1 for u, v, k in p if g.edges[u, v, k].get("weight_kind") == "pool") for p in paths]
    assert max(pools) > 0
    for j, p in enumerate(paths):
        assert n_random[j] == len(p) - pools[j]
        consts = [g.edges[e]["value"] for e in p if g.edges[e].get("weight_kind") == "pool"]
        assert prods[0, j] == pytest.approx(float(np.prod(consts)), rel=1e-15)


def test_random_layers_skip_pooling():
    spec = build_spec("avgpool-cnn", 4, channels=1, strides=(1, 2))
    kinds = [layer.weight_shape() is not None for layer in spec.layers]
    assert random_layers(spec) == [i + 1 for i, k in enumerate(kinds) if k]
    assert len(random_layers(spec)) < len(spec.layers)


def test_reflect_padding_with_pooling_breaks_h5_structurally():
    reflect = to_dag(build_spec("avgpool-cnn", 4, channels=1, strides=(1, 4), padding="reflect"))
    zeros = to_dag(build_spec("avgpool-cnn", 4, channels=1, strides=(1, 4), padding="zeros"))
    assert shared_out_parameters(reflect) > 0
    assert shared_out_parameters(zeros) == 0
