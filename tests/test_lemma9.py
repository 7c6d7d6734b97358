"""Lemma 9 by Monte Carlo: the test holds its level on He init and rejects a planted correlation."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from graphs.dag import input_nodes, output_nodes, to_dag
from graphs.layers import apply_linear
from graphs.rng import Stream, generator_for
from graphs.spec import build_spec
from tests.mc import assert_mc_close
from verify.cli import main
from verify.lemma9 import (
    _edge_keys,
    count_paths,
    draw_values,
    holm,
    lemma9_test,
    local_pairs,
    path_products,
    sample_paths,
    sample_shared_params,
    shared_out_parameters,
)
from verify.model import init_params


def _holm_definition(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    for rank, i in enumerate(order):
        out[i] = min(1.0, max((m - r) * p[order[r]] for r in range(rank + 1)))
    return out


@pytest.mark.parametrize("p", [[0.01, 0.04, 0.03, 0.005], [0.5], [0.2, 0.2, 0.01], [1e-9, 0.9, 0.02, 0.02, 0.5]])
def test_holm_matches_its_definition(p):
    assert np.allclose(holm(p), _holm_definition(p), rtol=0, atol=1e-15)


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
        assert path[0][0] == x and path[-1][1] in outputs
        assert all(g.has_edge(u, v, k) for u, v, k in path)
        assert all(a[1] == b[0] for a, b in zip(path, path[1:]))
    for a, b in local_pairs(g, paths, rng):
        assert a != b and a[0][0] == b[0][0] and a[-1][1] == b[-1][1] and len(set(a) ^ set(b)) == 4


def test_path_products_sum_to_the_linear_jacobian():
    """Summed over every path x -> o, path products are d o / d x of the net without ReLUs."""
    spec = build_spec("random-dag", 3, hidden=(4, 3), max_in_degree=3, skip_prob=0.5)
    g = to_dag(spec)
    params = init_params(spec, generator_for(Stream.WEIGHTS, 5, 0), dtype=torch.float64)
    x = torch.zeros((1, spec.d), dtype=torch.float64, requires_grad=True)
    history = [x]
    for layer, w in zip(spec.layers, params):
        history.append(apply_linear(layer, w, history))
    jac = torch.stack([torch.autograd.grad(history[-1][0, o], x, retain_graph=True)[0][0] for o in range(spec.num_classes)])
    counts = count_paths(g)
    rng = np.random.default_rng(0)
    for xi in input_nodes(g):
        paths = sample_paths(g, xi, 10**6, rng, counts)
        keys = sorted({k for p in paths for kind, k in _edge_keys(g, p) if kind == "w"})
        values = draw_values(spec, keys, 1, lambda i: params)
        prods, _ = path_products(g, paths, values, {k: j for j, k in enumerate(keys)})
        for o in output_nodes(g):
            total = sum(prods[0, j] for j, p in enumerate(paths) if p[-1][1] == o)
            assert total == pytest.approx(float(jac[o[1], xi[1]]), rel=1e-12, abs=1e-14)


def test_shared_init_keeps_h3_and_breaks_h4():
    spec = build_spec("dense", 3, widths=(4,))
    rho = 0.6
    draws = [sample_shared_params(spec, 11, i, layers=(1, 2), rho=rho) for i in range(3000)]
    w1 = np.array([float(w[0][1, 2]) for w in draws])
    w2 = np.array([float(w[1][3, 0]) for w in draws])
    assert_mc_close(w1**2, 2 / 3, what="E[w1^2]")
    assert_mc_close(w2**2, 2 / 4, what="E[w2^2]")
    assert_mc_close(w1 * w2, rho * np.sqrt(2 / 3 * 2 / 4), what="E[w1 w2]")
    assert_mc_close(w1, 0.0, what="E[w1]")


def test_lemma9_holds_on_he_and_rejects_the_planted_correlation():
    spec = build_spec("random-dag", 4, hidden=(12, 12))
    kw = dict(draws=1500, seed=3, max_inputs=2, max_paths=30, max_pairs=300, progress=False)
    he = lemma9_test(spec, init="he", **kw)
    assert not he.rejected, he.tests.nsmallest(3, "p")
    assert he.counts()["pair"] > 100 and he.counts()["mean"] > 20
    shared = lemma9_test(spec, init="shared", rho=0.9, **kw)
    assert shared.rejected
    assert shared.smallest("pair")[1] < 1e-4
    # the rejected tests are pairs (two layers share weights; the others keep E[w_p] = 0)
    assert set(shared.tests.loc[shared.tests["reject"], "kind"]) == {"pair"}


def test_reflect_padding_with_pooling_breaks_h5_structurally():
    reflect = to_dag(build_spec("avgpool-cnn", 4, channels=1, strides=(1, 4), padding="reflect"))
    zeros = to_dag(build_spec("avgpool-cnn", 4, channels=1, strides=(1, 4), padding="zeros"))
    assert shared_out_parameters(reflect) > 0
    assert shared_out_parameters(zeros) == 0


def test_moments_cli_report_and_json(tmp_path, capsys):
    argv = ["moments", "--arch", "random-dag", "--dims", "4", "--hidden", "8,8", "--draws", "400", "--max-pairs", "200"]
    assert main([*argv, "--out-dir", str(tmp_path), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (row,) = payload["results"]
    assert row["tested_pairs"] > 0 and row["tested_paths"] > 0
    assert row["second_moments"]["he"]["dp"] == "2"
    assert payload["init"] == "he" and (tmp_path / "moments-random-dag.md").exists()
    text = (tmp_path / "moments-random-dag.md").read_text()
    assert "pairs tested" in text and "Holm" in text
    # the command main() was given, not the test runner's sys.argv
    assert f"`verify {' '.join(argv)} --out-dir {tmp_path} --json`" in text


_SMALL = ["--arch", "random-dag", "--dims", "4", "--hidden", "8,8"]


@pytest.mark.parametrize(
    "argv",
    [
        [*_SMALL, "--draws", "5"],
        ["--arch", "dense", "--dims", "1000"],  # 324k edges: too large for the explicit DAG
        [*_SMALL, "--shared-layers", "1,2"],
        [*_SMALL, "--init", "shared", "--shared-layers", "1,9"],
        [*_SMALL, "--rho", "0"],
        [*_SMALL, "--seed", "-1"],
        [*_SMALL, "--widths", "4"],
        ["--arch", "avgpool-cnn", "--dims", "6", "--strides", "1,4"],
    ],
)
def test_moments_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, argv):
    assert main(["moments", *argv, "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("verify: error:") and "\n" not in err
    assert not list(itertools.chain(tmp_path.glob("*.md"), tmp_path.glob("*.png")))
