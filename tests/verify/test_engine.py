"""The Monte Carlo engine: gradients, reproducibility, evaluation backends, and the slopes of dense nets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from graphs.errors import InputError
from graphs.spec import build_spec
from tests.mc import assert_mc_close
from verify.engine import (
    EPS_INF,
    MAX_GROUP,
    QUANTITIES,
    choose_backend,
    draw_bytes,
    draw_quantities,
    forward_flops,
    functional_gradients,
    group_size,
    manual_gradients,
    measure,
    precision_error,
    sample_quantities,
    supports_manual,
    use_vmap,
)
from verify.model import forward, sample_params
from verify.results import Verdict
from verify.runtime import Runtime, runtime
from verify.sampling import input_gradients, sample_inputs, sample_labels
from verify.stats import band_verdict, fit_power_law
from verify.theory import SCALING_PREDICTIONS

SMALL_SPECS = [
    ("dense", 6, {"widths": (5, 4), "num_classes": 3}),
    ("strided-cnn", 6, {"channels": 3, "strides": (1, 2), "num_classes": 3}),
    ("strided-cnn", 7, {"channels": 2, "strides": (2, 2), "kernel": 5, "num_classes": 3}),
    ("strided-cnn", 6, {"channels": 2, "strides": (2, 1), "padding": "circular", "num_classes": 3}),
    ("strided-cnn", 6, {"channels": 2, "strides": (1, 2), "padding": "reflect", "num_classes": 3}),
    ("avgpool-cnn", 8, {"channels": 2, "strides": (1, 2), "num_classes": 3}),
    ("random-dag", 6, {"hidden": (5, 4), "max_in_degree": 3, "num_classes": 3}),
]


def _spec(family, dim, opts):
    return build_spec(family, dim, **opts)


def _central_differences(spec, params, x: torch.Tensor, label: int, h: float = 1e-6):
    """Central differences of the loss and of logit ``label`` at one input, all coordinates in one batch."""
    n = x.numel()
    steps = h * torch.eye(n, dtype=x.dtype).view(n, *x.shape)
    points = torch.cat([x + steps, x - steps])
    logits = forward(spec, params, points)
    labels = torch.full((2 * n,), label)
    loss = F.cross_entropy(logits, labels, reduction="none")
    picked = logits[:, label]
    d_loss = (loss[:n] - loss[n:]) / (2 * h)
    d_logit = (picked[:n] - picked[n:]) / (2 * h)
    return d_loss.view_as(x), d_logit.view_as(x)


@pytest.mark.parametrize(
    ("family", "dim", "opts"), SMALL_SPECS, ids=[f"{f}-{o.get('padding', 'zeros')}" for f, _, o in SMALL_SPECS]
)
def test_gradients_equal_central_differences_float64(family, dim, opts):
    spec = _spec(family, dim, opts)
    params = sample_params(spec, 3, 0, dtype=torch.float64)
    x = sample_inputs(spec, 3, 0, 2, dtype=torch.float64)
    y = sample_labels(spec, 3, 0, 2)
    r = input_gradients(spec, params, x, y)
    methods = [(r.loss_grad, r.logit_grad), functional_gradients(spec, params, x, y)]
    if supports_manual(spec):
        cl = [w.contiguous(memory_format=torch.channels_last) if w is not None and w.dim() == 4 else w for w in params]
        xc = x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
        methods.append(manual_gradients(spec, cl, xc, y))
        methods.append(manual_gradients(spec, params, x, y))
    for b in range(2):
        fd_loss, fd_logit = _central_differences(spec, params, x[b], int(y[b]))
        # h^2 truncation and eps/h rounding are both below 1e-9 here; ReLU kinks are
        # almost surely farther than h from a random input
        for loss_grad, logit_grad in methods:
            torch.testing.assert_close(loss_grad[b], fd_loss, rtol=1e-6, atol=1e-9)
            torch.testing.assert_close(logit_grad[b], fd_logit, rtol=1e-6, atol=1e-9)


def test_sample_quantities_definitions():
    g = torch.tensor([[3.0, -4.0, 0.0, 1.0]], dtype=torch.float64)
    k = torch.tensor([[1.0, -1.0, 2.0, 0.0]], dtype=torch.float64)
    q = dict(zip(QUANTITIES, sample_quantities(g, k, 4, eps_inf=0.01)[:, 0]))
    assert q["loss_grad_l1"] == 8.0
    assert q["loss_grad_l2"] == math.sqrt(26.0)
    assert q["loss_grad_linf"] == 4.0
    assert q["logit_grad_l2"] == math.sqrt(6.0)
    assert q["logit_grad_coord"] == 1.0
    assert q["vuln_linf"] == 0.01 * 8.0  # eps_inf * d^(1/inf) * ||g||_1
    assert q["vuln_l2"] == 0.01 * 2.0 * math.sqrt(26.0)  # eps_inf * sqrt(d) * ||g||_2


def test_measure_matches_direct_computation_in_float64():
    spec = _spec("strided-cnn", 8, {"channels": 3, "strides": (1, 2), "num_classes": 4})
    rec = measure([spec], draws=2, batch=3, seed=5, dtype=torch.float64, progress=False)
    assert list(rec.columns) == ["arch", "dim", "d", "draw", "input", "quantity", "value"]
    assert len(rec) == 2 * 3 * len(QUANTITIES)
    for draw in range(2):
        params = sample_params(spec, 5, draw, dtype=torch.float64)
        x = sample_inputs(spec, 5, draw, 3, dtype=torch.float64)
        y = sample_labels(spec, 5, draw, 3)
        r = input_gradients(spec, params, x, y)
        for j in range(3):
            g = r.loss_grad[j].reshape(-1)
            k = r.logit_grad[j].reshape(-1)
            expected = {
                "loss_grad_l1": g.abs().sum(),
                "loss_grad_l2": g.norm(),
                "loss_grad_linf": g.abs().max(),
                "logit_grad_l2": k.norm(),
                "logit_grad_coord": k.abs().mean(),
                "vuln_linf": EPS_INF * g.abs().sum(),
                "vuln_l2": EPS_INF * math.sqrt(spec.d) * g.norm(),
            }
            got = rec[(rec.draw == draw) & (rec.input == j)].set_index("quantity")["value"]
            for name, value in expected.items():
                assert got[name] == pytest.approx(float(value), rel=1e-12), name


@pytest.mark.parametrize(
    ("family", "dim", "opts", "backend"),
    [
        ("random-dag", 10, {"hidden": (6, 6), "max_in_degree": 4}, "autograd"),
        ("random-dag", 10, {"hidden": (6, 6), "max_in_degree": 4}, "vmap"),
        ("strided-cnn", 8, {"channels": 3, "strides": (1, 2)}, "manual"),
        ("avgpool-cnn", 8, {"channels": 3, "strides": (1, 2)}, "manual"),
    ],
)
def test_batched_equals_unbatched(family, dim, opts, backend):
    spec = _spec(family, dim, opts)
    rec = measure([spec], draws=3, batch=4, seed=1, dtype=torch.float64, backend=backend, progress=False)
    for draw in range(3):
        params = sample_params(spec, 1, draw, dtype=torch.float64)
        x = sample_inputs(spec, 1, draw, 4, dtype=torch.float64)
        y = sample_labels(spec, 1, draw, 4)
        for j in range(4):
            r = input_gradients(spec, params, x[j : j + 1], y[j : j + 1])
            alone = sample_quantities(r.loss_grad, r.logit_grad, spec.d)[:, 0]
            got = rec[(rec.draw == draw) & (rec.input == j)].set_index("quantity").loc[list(QUANTITIES), "value"]
            np.testing.assert_allclose(got.to_numpy(), alone, rtol=1e-12)


@pytest.mark.parametrize(
    ("family", "dim", "opts", "backend"),
    [
        ("dense", 12, {"widths": (8,)}, "autograd"),
        ("dense", 12, {"widths": (8,)}, "manual"),
        ("dense", 12, {"widths": (8,)}, "vmap"),
        ("strided-cnn", 8, {"channels": 3, "strides": (1, 2)}, "manual"),
        ("strided-cnn", 8, {"channels": 3, "strides": (1, 2), "padding": "circular"}, "autograd"),
        ("strided-cnn", 8, {"channels": 3, "strides": (1, 2), "padding": "circular"}, "manual"),
        ("strided-cnn", 8, {"channels": 3, "strides": (1, 2), "padding": "reflect"}, "manual"),
        ("strided-cnn", 8, {"channels": 3, "strides": (1, 2)}, "vmap"),
        ("random-dag", 10, {"hidden": (6, 6)}, "vmap"),
    ],
)
def test_chunked_alone_and_full_runs_agree(family, dim, opts, backend):
    spec = _spec(family, dim, opts)
    kw = {"batch": 3, "seed": 2, "dtype": torch.float64, "backend": backend, "progress": False}
    full = measure([spec], draws=5, **kw)
    chunked = measure([spec], draws=5, chunk=1, **kw)
    pd.testing.assert_frame_equal(full, chunked, check_exact=False, rtol=1e-12)
    alone = measure([spec], draws=[3], **kw).reset_index(drop=True)
    part = full[full.draw == 3].reset_index(drop=True)
    if backend != "vmap":
        # one draw is always evaluated with the same shapes: bit for bit the same numbers
        pd.testing.assert_frame_equal(part, alone, check_exact=True)
    else:
        pd.testing.assert_frame_equal(part, alone, check_exact=False, rtol=1e-12)


def test_float32_draw_alone_is_bitwise_identical():
    spec = _spec("strided-cnn", 16, {"channels": 8})
    full = measure([spec], draws=4, batch=2, seed=9, progress=False)
    alone = measure([spec], draws=[2], batch=2, seed=9, progress=False).reset_index(drop=True)
    pd.testing.assert_frame_equal(full[full.draw == 2].reset_index(drop=True), alone, check_exact=True)


@pytest.mark.parametrize(
    ("family", "dim", "opts"),
    [
        ("dense", 16, {"widths": (12, 8)}),
        ("strided-cnn", 8, {"channels": 3, "strides": (1, 2)}),
        ("avgpool-cnn", 8, {"channels": 2, "strides": (1, 2)}),
        ("random-dag", 12, {"hidden": (8, 8)}),
    ],
)
def test_all_backends_agree(family, dim, opts):
    spec = _spec(family, dim, opts)
    kw = {"draws": 4, "batch": 3, "seed": 4, "dtype": torch.float64, "progress": False}
    reference = measure([spec], backend="autograd", **kw)
    backends = ["vmap", "manual"] if supports_manual(spec) else ["vmap"]
    for backend in backends:
        pd.testing.assert_frame_equal(reference, measure([spec], backend=backend, **kw), check_exact=False, rtol=1e-12)


def test_same_seed_same_numbers_other_seed_other_numbers():
    specs = [_spec("dense", d, {"widths": (16,)}) for d in (8, 32)]
    a = measure(specs, draws=3, batch=2, seed=11, progress=False)
    b = measure(specs, draws=3, batch=2, seed=11, progress=False)
    c = measure(specs, draws=3, batch=2, seed=12, progress=False)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert not np.allclose(a["value"], c["value"])


def test_upsampled_inputs_use_the_smallest_size_as_base():
    specs = [_spec("strided-cnn", n, {"channels": 4, "strides": (1, 2)}) for n in (4, 8)]
    rec = measure(specs, draws=2, batch=2, seed=0, inputs="upsampled", dtype=torch.float64, progress=False)
    assert set(rec["d"]) == {48, 192}
    # the 8-pixel inputs of draw 1 are its 4-pixel inputs with every pixel copied 2x2
    small = sample_inputs(specs[0], 0, 1, 2, kind="upsampled", base_dim=4, dtype=torch.float64)
    big = sample_inputs(specs[1], 0, 1, 2, kind="upsampled", base_dim=4, dtype=torch.float64)
    assert torch.equal(big, small.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2))
    params = sample_params(specs[1], 0, 1, dtype=torch.float64)
    r = input_gradients(specs[1], params, big, sample_labels(specs[1], 0, 1, 2))
    got = rec[(rec.d == 192) & (rec.draw == 1)].pivot(index="input", columns="quantity", values="value")
    np.testing.assert_allclose(
        got[list(QUANTITIES)].to_numpy().T, sample_quantities(r.loss_grad, r.logit_grad, 192), rtol=1e-12
    )
    with pytest.raises(InputError):
        measure(
            [_spec("dense", 6, {}), _spec("dense", 9, {})], draws=1, batch=1, seed=0, inputs="upsampled", progress=False
        )


def test_bad_arguments_raise_input_errors():
    spec = _spec("dense", 4, {})
    for kwargs in ({"draws": 0, "batch": 1}, {"draws": 1, "batch": 0}):
        with pytest.raises(InputError):
            measure([spec], seed=0, progress=False, **kwargs)
    with pytest.raises(InputError):
        measure([spec], draws=1, batch=1, seed=0, inputs="uniform", progress=False)
    with pytest.raises(InputError):
        use_vmap(spec, 1, "fast")
    with pytest.raises(InputError):
        choose_backend(build_spec("random-dag", 8), 1, "manual")


def test_auto_backend_and_flop_count():
    cnn = build_spec("strided-cnn", 256)
    # 3x256x256, 64 channels, strides 1,2,2,2,2,2: sum of 2 * outputs * C_in * 9, plus the dense layer
    convs = [(3, 256), (64, 128), (64, 64), (64, 32), (64, 16), (64, 8)]
    assert forward_flops(cnn) == sum(2 * 64 * n * n * c * 9 for c, n in convs) + 2 * 64 * 8 * 8 * 10
    assert choose_backend(cnn, 1) == "manual"
    assert choose_backend(build_spec("strided-cnn", 64, padding="circular"), 1) == "manual"
    assert choose_backend(build_spec("random-dag", 4096, hidden=(512, 512)), 64) == "autograd"
    assert choose_backend(build_spec("random-dag", 64), 4) == "vmap"
    assert choose_backend(build_spec("random-dag", 4096, hidden=(1024, 1024)), 8) == "autograd"


def test_logit_gradient_norm_squared_has_expectation_two_for_dense_nets():
    # Under (H) E||d_x f_k||_2^2 = sum over paths of prod 2/d_p times 1/2 per ReLU crossed. The
    # logit has no ReLU, so this is 2 * sum_x P(x, o) = 2 (Lemma 7) whatever d: a Monte Carlo
    # vs exact check of the engine's normalisation.
    spec = build_spec("dense", 64, widths=(64, 64))
    rec = measure([spec], draws=400, batch=1, seed=0, progress=False)
    sq = rec[rec.quantity == "logit_grad_l2"]["value"].to_numpy() ** 2
    assert_mc_close(sq, 2.0, what="E||d_x f_k||_2^2")


def _dense_slopes(dims, widths, draws, batch, seed):
    specs = [build_spec("dense", d, widths=widths) for d in dims]
    rec = measure(specs, draws=draws, batch=batch, seed=seed, progress=False)
    out = {}
    for q in QUANTITIES:
        p = SCALING_PREDICTIONS[q]
        fit = fit_power_law(rec, q, n_boot=1000, seed=seed, correction=p.correction)
        out[q] = (fit, p.slope)
    return out


def test_dense_nets_reproduce_the_predicted_slopes():
    """Theorem 4: a dense ReLU net under (H) and (S); every 95% CI lies within +-0.05 of the prediction."""
    for q, (fit, predicted) in _dense_slopes((32, 128, 512, 2048), (128, 128), 48, 4, 0).items():
        assert band_verdict(fit.interval, predicted, 0.05) is Verdict.CONSISTENT, (
            q,
            fit.slope,
            fit.interval,
            predicted,
        )


@pytest.mark.slow
def test_dense_nets_reproduce_the_predicted_slopes_large_sweep():
    for q, (fit, predicted) in _dense_slopes((64, 256, 1024, 4096, 16384), (256, 256), 256, 4, 1).items():
        assert band_verdict(fit.interval, predicted, 0.03) is Verdict.CONSISTENT, (
            q,
            fit.slope,
            fit.interval,
            predicted,
        )


def test_thread_setting_is_restored_and_threads_do_not_change_results():
    spec = _spec("strided-cnn", 8, {"channels": 3, "strides": (1, 2)})
    before = torch.get_num_threads()
    with runtime("cpu", threads=1) as rt:
        one = measure([spec], draws=2, batch=2, seed=0, dtype=torch.float64, rt=rt, progress=False)
    assert torch.get_num_threads() == before
    with runtime("cpu", threads=2) as rt:
        two = measure([spec], draws=2, batch=2, seed=0, dtype=torch.float64, rt=rt, progress=False)
    assert torch.get_num_threads() == before
    pd.testing.assert_frame_equal(one, two, check_exact=False, rtol=1e-12)


# ---------------------------------------------------------------- issue 13: speed levers keep the numbers


def test_a_draw_alone_equals_the_same_draw_in_a_full_run_bit_for_bit():
    """float32 on the CPU, every backend: the draw's numbers do not depend on its company."""
    cases = [
        ("strided-cnn", 16, {"channels": 4, "strides": (1, 2)}, "manual"),
        ("random-dag", 16, {"hidden": (6, 6), "max_in_degree": 4}, "vmap"),
        ("dense", 32, {"widths": (8,)}, "vmap"),
    ]
    cpu = torch.device("cpu")
    for family, dim, opts, backend in cases:
        spec = _spec(family, dim, opts)
        assert choose_backend(spec, 2, backend) == backend
        full = measure([spec], draws=7, batch=2, seed=4, backend=backend, progress=False)
        for draw in (0, 3, 6):
            alone = draw_quantities(spec, 4, [draw], 2, device=cpu, backend=backend)[0]
            got = full[full.draw == draw].pivot(index="quantity", columns="input", values="value").loc[list(QUANTITIES)]
            assert np.array_equal(got.to_numpy(), alone), (family, backend, draw)


def test_vmap_groups_of_any_size_give_the_same_numbers():
    spec = _spec("strided-cnn", 8, {"channels": 3, "strides": (1, 2)})
    base = measure([spec], draws=6, batch=2, seed=2, backend="vmap", chunk=2, progress=False)  # one draw per group
    for chunk in (4, 6, 12):  # 2, 3 and 6 draws per group
        other = measure([spec], draws=6, batch=2, seed=2, backend="vmap", chunk=chunk, progress=False)
        np.testing.assert_allclose(other["value"], base["value"], rtol=2e-6)
    manual = measure([spec], draws=6, batch=2, seed=2, backend="manual", progress=False)
    np.testing.assert_allclose(manual["value"], base["value"], rtol=2e-6)


def test_thread_count_and_the_tuner_do_not_change_float32_numbers(monkeypatch):
    import verify.runtime as runtime_module

    spec = _spec("strided-cnn", 32, {"channels": 8})
    with runtime("cpu", threads=1) as rt:
        one = measure([spec], draws=6, batch=2, seed=0, rt=rt, progress=False)
    # every piece of work above the single-thread limit: the tuner alternates 1 and 2 threads
    monkeypatch.setattr(runtime_module, "TUNE_FLOPS", 0.0)
    rt2 = Runtime(torch.device("cpu"), None, "fp32", 2)
    assert rt2.thread_tuner(1.0) is not None
    tuned = measure([spec], draws=6, batch=2, seed=0, rt=rt2, progress=False)
    pd.testing.assert_frame_equal(one, tuned, check_exact=True)


def test_group_size_is_picked_from_memory():
    spec = _spec("strided-cnn", 16, {"channels": 4, "strides": (1, 2)})
    per = draw_bytes(spec, 2, torch.float32)
    assert group_size(spec, 2, draws=100, memory=10 * per) == 10
    assert group_size(spec, 2, draws=25, memory=10 * per) == 9  # 3 balanced groups, not 10 + 10 + 5
    assert group_size(spec, 2, draws=MAX_GROUP, memory=10**15) == MAX_GROUP
    assert group_size(spec, 2, draws=1000, memory=10**15) == 125  # 8 groups of at most MAX_GROUP, balanced
    assert group_size(spec, 2, draws=100, memory=1) == 1
    assert group_size(spec, 2, draws=100, memory=10**15, chunk=8) == 4  # chunk caps samples per call
    assert draw_bytes(spec, 2, torch.bfloat16) * 2 == per
    assert choose_backend(spec, 2, "auto", "cuda") == "vmap"  # every net in groups on a GPU
    assert choose_backend(spec, 2, "auto", "cpu") == "manual"


def test_bf16_and_the_measured_precision_error():
    spec = _spec("strided-cnn", 16, {"channels": 8, "strides": (1, 2)})
    with runtime("cpu") as rt:
        fp32 = precision_error(spec, seed=0, batch=2, rt=rt)
    with runtime("cpu", precision="bf16") as rt:
        bf16 = precision_error(spec, seed=0, batch=2, rt=rt)
        rec = measure([spec], draws=3, batch=2, seed=0, rt=rt, progress=False)
    ref = measure([spec], draws=3, batch=2, seed=0, dtype=torch.float64, progress=False)
    assert 0 < fp32.max_relative < 1e-5
    assert 1e-4 < bf16.max_relative < 0.2
    assert set(bf16.by_quantity) == set(QUANTITIES)
    rel = np.abs(rec["value"].to_numpy() / ref["value"].to_numpy() - 1)
    assert rel.max() < 0.2
    assert rel.max() > 1e-5
    # the run's own values can stand in for the first evaluation
    again = precision_error(
        spec,
        seed=0,
        batch=2,
        values=ref[ref.draw == 0]
        .pivot(index="quantity", columns="input", values="value")
        .loc[list(QUANTITIES)]
        .to_numpy(),
    )
    assert again.max_relative == 0.0


def test_graphed_evaluator_runs_eagerly_on_a_cpu():
    spec = _spec("strided-cnn", 8, {"channels": 3, "strides": (1, 2)})
    cpu = torch.device("cpu")
    plain = draw_quantities(spec, 1, [0, 1, 2], 2, device=cpu, backend="vmap")
    graphed = draw_quantities(spec, 1, [0, 1, 2], 2, device=cpu, backend="vmap", graphs=True)
    assert np.array_equal(plain, graphed)


def test_a_short_last_group_rides_in_the_captured_graph():
    from verify.draws import DrawSampler
    from verify.engine import _Evaluator

    spec = _spec("strided-cnn", 8, {"channels": 3, "strides": (1, 2)})
    cpu = torch.device("cpu")
    ev = _Evaluator(spec, 2, device=cpu, backend="vmap", eps_inf=EPS_INF, chunk=None, graphs=False)
    calls = []

    class Captured:  # stands in for a GraphedStep captured on a GPU for groups of 4 draws
        captured = True

        def __call__(self, params, x, y):
            calls.append(x.shape[0])
            return ev._stacked(params, x, y)

    ev._steps[4] = Captured()  # pyright: ignore[reportArgumentType]
    draws = [DrawSampler(spec, 0, 2).sample(i) for i in range(3)]
    got = ev(draws)
    assert calls == [4]
    assert got.shape == (3, len(QUANTITIES), 2)
    np.testing.assert_allclose(got, draw_quantities(spec, 0, [0, 1, 2], 2, device=cpu, backend="vmap"), rtol=2e-6)
