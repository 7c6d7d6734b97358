"""graphs.streaming: the operator form in row bands equals the whole passes (chunked == one-shot)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import graphs.streaming as streaming
from graphs.hypotheses import h3_violation_counts
from graphs.layers import Conv2d
from graphs.moments import predicted_grad_sq_norms, predicted_logit_grad_sq
from graphs.operator import in_degree_maps, operator_vjp, path_sum_factor, path_sums_operator
from graphs.pathsums import output_classes, path_sum_summary, spec_edge_count
from graphs.spec import build_spec
from graphs.streaming import (
    collapse_broadcast,
    layer_degree,
    local_prefix,
    max_out_degree,
    should_stream,
    vjp_bands,
)
from graphs.symmetry import _modular_bands, modular_path_polynomials, randomised_symmetry

CASES = [
    ("strided-cnn", 12, {"channels": 3}),
    ("strided-cnn", 12, {"channels": 2, "padding": "circular"}),
    ("strided-cnn", 13, {"channels": 2, "padding": "reflect", "strides": (1, 2, 2)}),
    ("strided-cnn", 11, {"channels": 2, "kernel": 5, "strides": (2, 1)}),
    ("avgpool-cnn", 16, {"channels": 2, "strides": (1, 2, 2)}),
    ("dense", 10, {"widths": (6, 5)}),
    ("random-dag", 8, {"hidden": (5, 4), "max_in_degree": 3}),
]
IDS = [f"{f}-{o.get('padding', 'zeros')}-{n}" for f, n, o in CASES]


def _whole_out_degree(spec) -> int:
    out: dict[int, torch.Tensor] = {}
    for l, layer in enumerate(spec.layers, start=1):
        ones = torch.ones((1, *spec.shapes[l]), dtype=torch.float64)
        for j, g in streaming._layer_vjp_whole(layer, l, spec.shapes, ones).items():
            out[j] = out[j] + g if j in out else g
    return int(max(float(t.max()) for t in out.values()))


def _assemble(spec, bands, rows):
    out = torch.zeros((rows, spec.d), dtype=torch.float64)
    for band in bands:
        out[:, torch.as_tensor(band.flat_index(spec.input_shape))] = band.values.reshape(rows, -1)
    return out


@pytest.mark.parametrize(("family", "dim", "opts"), CASES, ids=IDS)
def test_bands_equal_the_whole_pass(family, dim, opts):
    spec = build_spec(family, dim, **opts)
    outputs = [0, 1]
    whole = path_sums_operator(spec, outputs)
    for band in (1, 2, 5):
        got = _assemble(spec, vjp_bands(spec, path_sum_factor, outputs, band=band), 2)
        # the same terms summed per row; float64 rounding of the order only
        torch.testing.assert_close(got, whole, rtol=1e-14, atol=1e-18)
        z = {deg: (7 * deg + 3) % 101 for deg in range(1, 2000)}
        modular = _assemble(spec, _modular_bands(spec, z, 1_000_003, outputs), 2)
        banded = torch.zeros_like(modular)
        for b in vjp_bands(spec, _degree_lookup_for(z, 1_000_003), outputs, modulus=1_000_003, band=band):
            banded[:, torch.as_tensor(b.flat_index(spec.input_shape))] = b.values.reshape(2, -1)
        assert torch.equal(banded, modular)  # exact integers: identical
    degrees = in_degree_maps(spec)
    for l in range(1, len(spec.layers) + 1):
        assert torch.equal(layer_degree(spec, l), degrees[l - 1])
        h = spec.shapes[l][1] if len(spec.shapes[l]) == 3 else 0
        if streaming._is_row_local(spec, l) and h > 1:
            assert torch.equal(layer_degree(spec, l, 1, h), degrees[l - 1][:, 1:h])
    assert max_out_degree(spec, budget=1) == _whole_out_degree(spec)
    assert spec_edge_count(spec) == int(sum(float(m.sum()) for m in degrees))


def _degree_lookup_for(z, p):
    from graphs.symmetry import _degree_lookup

    return _degree_lookup(z, p)


def test_modular_polynomials_through_bands_match_the_whole_operator():
    # small enough that the polynomial values themselves stay exact integers below 2^53
    spec = build_spec("strided-cnn", 8, channels=2, strides=(1, 2), padding="circular")
    z = {deg: 1 + deg % 3 for deg in range(1, 100)}
    p = 1_000_003
    values = modular_path_polynomials(spec, z, p, [0, 3])
    mult = []
    for deg in in_degree_maps(spec):
        m = torch.empty_like(deg)
        for v in torch.unique(deg).tolist():
            m[deg == v] = float(z[int(v)])
        mult.append(m)
    plain = operator_vjp(spec, mult, [0, 3])
    assert float(plain.max()) < 2**53
    assert torch.equal(values, torch.remainder(plain, p))


def test_local_prefix_and_when_to_stream():
    assert local_prefix(build_spec("strided-cnn", 32)) == 6
    assert local_prefix(build_spec("avgpool-cnn", 32)) == len(build_spec("avgpool-cnn", 32).layers) - 1
    assert local_prefix(build_spec("dense", 16)) == 0
    assert local_prefix(build_spec("random-dag", 8)) == 0
    assert not should_stream(build_spec("strided-cnn", 32))
    assert should_stream(build_spec("strided-cnn", 1024))
    assert not should_stream(build_spec("dense", 4096))


@pytest.mark.parametrize(("family", "dim", "opts"), CASES, ids=IDS)
@pytest.mark.parametrize("variance", ["he", "init"])
def test_eq13_in_bands_equals_the_whole_pass(family, dim, opts, variance):
    spec = build_spec(family, dim, **opts)
    whole = float(predicted_grad_sq_norms(spec, variance=variance).mean())
    assert predicted_logit_grad_sq(spec, variance=variance) == whole
    for band in (1, 3):
        # the same terms summed per row and per class of logits: float64 rounding of the order only
        assert predicted_logit_grad_sq(spec, variance=variance, band=band) == pytest.approx(whole, rel=1e-13, abs=0)


def test_streamed_checks_equal_the_whole_ones(monkeypatch):
    spec = build_spec("strided-cnn", 24, channels=3)
    whole = path_sum_summary(spec)
    sym_whole = randomised_symmetry(spec, trials=2)
    h3_whole = h3_violation_counts(spec)
    # every pass in bands of a few rows
    monkeypatch.setattr(streaming, "STREAM_BYTES", 0)
    monkeypatch.setattr(streaming, "BAND_BYTES", 1)
    banded = path_sum_summary(spec)
    assert banded.streamed
    assert not whole.streamed
    assert banded.classes == whole.classes == output_classes(spec)
    assert banded.totals == pytest.approx(whole.totals, rel=1e-14)
    assert banded.scaled_min == pytest.approx(whole.scaled_min, rel=1e-13)
    assert banded.scaled_max == pytest.approx(whole.scaled_max, rel=1e-13)
    torch.testing.assert_close(torch.as_tensor(banded.first), torch.as_tensor(whole.first), rtol=1e-13, atol=0)
    sym = randomised_symmetry(spec, trials=2)
    assert (sym.symmetric, sym.trials, sym.primes) == (sym_whole.symmetric, sym_whole.trials, sym_whole.primes)
    assert not sym.symmetric
    assert sym.witness is not None
    assert h3_violation_counts(spec) == h3_whole


def test_symmetric_net_in_bands_keeps_its_bound(monkeypatch):
    # stride-1 circular convolutions: every input sees the same paths, (S) holds
    spec = build_spec("strided-cnn", 8, channels=2, strides=(1, 1), padding="circular")
    whole = randomised_symmetry(spec, trials=2)
    monkeypatch.setattr(streaming, "STREAM_BYTES", 0)
    monkeypatch.setattr(streaming, "BAND_BYTES", 1)
    banded = randomised_symmetry(spec, trials=2)
    assert whole.symmetric
    assert banded.symmetric
    assert banded.false_positive_bound == whole.false_positive_bound > 0


@pytest.mark.parametrize("padding", ["zeros", "circular", "reflect"])
@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (3, 2), (5, 2), (1, 1)])
def test_conv_rows_and_structural_map(padding, kernel, stride):
    layer = Conv2d(3, 4, kernel, stride, padding)
    shape = (3, 9, 7)
    out_shape = layer.output_shape([shape], 1)
    g = torch.Generator().manual_seed(kernel * 10 + stride)
    x = torch.randn((2, *shape), generator=g, dtype=torch.float64)
    w = torch.randn(layer.weight_shape(), generator=g, dtype=torch.float64)
    full = layer.apply(w, [x])
    for lo, hi in [(0, 1), (1, out_shape[1]), (0, out_shape[1])]:
        src = layer.row_sources(lo, hi, shape)
        rows = torch.stack([torch.zeros_like(x[:, :, 0]) if r is None else x[:, :, r] for r in src], dim=2)
        torch.testing.assert_close(layer.apply_rows(w, rows), full[:, :, lo:hi], rtol=1e-13, atol=1e-13)
    # the structural map (all-ones weights) is computed channel-summed: same as a dense all-ones conv
    ones = torch.ones(layer.weight_shape(), dtype=torch.float64)
    dense = F.conv2d(x, ones, stride=stride, padding=layer.pad) if padding == "zeros" else None
    structural = layer.apply(ones, [x], structural=True)
    if dense is not None:
        torch.testing.assert_close(structural, dense, rtol=1e-13, atol=1e-12)
    torch.testing.assert_close(structural, layer.apply(ones, [x]), rtol=1e-13, atol=1e-12)
    assert collapse_broadcast(structural).shape[1] == 1
