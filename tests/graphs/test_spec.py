"""Specs: shapes of every family, and one-line errors for specs that cannot be built."""

from __future__ import annotations

import numpy as np
import pytest

from graphs.errors import SpecError
from graphs.spec import build_spec


def test_paper_net_shapes():
    spec = build_spec("strided-cnn", 256)
    assert spec.d == 3 * 256 * 256
    assert [s[1:] for s in spec.shapes[1:7]] == [(256, 256), (128, 128), (64, 64), (32, 32), (16, 16), (8, 8)]
    assert spec.shapes[-1] == (10,)
    assert [spec.node_kind(l) for l in range(8)] == ["input"] + ["relu"] * 6 + ["output"]


def test_avgpool_replaces_each_stride():
    spec = build_spec("avgpool-cnn", 64, pools=(4, 2, 2, 2, 2))
    kinds = [spec.node_kind(l) for l in range(len(spec.layers) + 1)]
    assert kinds.count("pool") == 5
    assert spec.shapes[3][1:] == (16, 16)  # conv, relu, pool 4
    assert spec.shapes[-2] == (64, 1, 1)


def test_random_dag_is_a_function_of_seed_and_d():
    a = build_spec("random-dag", 20, seed=4)
    b = build_spec("random-dag", 20, seed=4)
    c = build_spec("random-dag", 20, seed=5)
    assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a.layers, b.layers))
    assert not all(np.array_equal(x.mask, y.mask) for x, y in zip(a.layers, c.layers))
    first = a.layers[0].mask
    assert (first.sum(axis=0) > 0).all(), "every input must reach the first layer"


@pytest.mark.parametrize(
    ("family", "dim", "opts", "words"),
    [
        ("no-such-net", 32, {}, "unknown architecture"),
        ("strided-cnn", 0, {}, "positive"),
        ("avgpool-cnn", 36, {}, "does not tile"),
        ("avgpool-cnn", 128, {"pools": (256, 2, 2, 2, 2)}, "does not tile"),
        ("avgpool-cnn", 128, {"pools": (2, 2)}, "windows"),
        ("strided-cnn", 2, {"padding": "reflect"}, "reflect"),
        ("strided-cnn", 2, {"padding": "circular", "kernel": 7, "strides": (1, 2)}, "wraps more than once"),
        ("strided-cnn", 32, {"padding": "mirror"}, "unknown padding"),
        ("dense", 8, {"bogus": 1}, "bogus"),
    ],
)
def test_bad_specs_raise_one_line(family, dim, opts, words):
    with pytest.raises(SpecError) as err:
        build_spec(family, dim, **opts)
    assert words in str(err.value)
    assert "\n" not in str(err.value)
