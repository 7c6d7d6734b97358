"""The engine on a CUDA device (skipped without one; ``bench/gpu_check.sh`` runs these).

What a GPU changes and what it must not: the same draws (weights, inputs and labels are the
CPU's, rounded on the CPU), the numbers equal to the CPU's up to the card's float32
rounding, TF32 off unless asked, the engine's own group size, the captured step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphs.spec import build_spec
from verify.draws import DrawSampler, stack_draws
from verify.engine import draw_quantities, group_size, measure, precision_error
from verify.runtime import runtime

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SPECS = [
    build_spec("strided-cnn", 32, channels=16),
    build_spec("strided-cnn", 16, channels=8, padding="circular"),
    build_spec("avgpool-cnn", 32, channels=8),
    build_spec("dense", 256, widths=(64, 64)),
    build_spec("random-dag", 32),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.family}-{s.dim}")
def test_gpu_numbers_equal_the_cpu_numbers_to_float32_rounding(spec):
    cpu = measure([spec], draws=5, batch=3, seed=1, progress=False)
    with runtime("cuda") as rt:
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
        gpu = measure([spec], draws=5, batch=3, seed=1, rt=rt, progress=False)
    assert (gpu.drop(columns="value") == cpu.drop(columns="value")).all().all()
    np.testing.assert_allclose(gpu["value"], cpu["value"], rtol=2e-5)


def test_same_draws_on_both_devices():
    spec = SPECS[0]
    draws = [DrawSampler(spec, 0, 2, pin=True).sample(i) for i in range(3)]
    on_gpu = stack_draws(draws, "cuda")
    for j, w in enumerate(on_gpu.params):
        if w is not None:
            assert torch.equal(w.cpu()[1], draws[1].params[j])
    assert torch.equal(on_gpu.x.cpu()[2], draws[2].x)


def test_groups_graphs_and_a_draw_alone():
    spec = SPECS[0]
    dev = torch.device("cuda")
    g = group_size(spec, 2, draws=64, device=dev)
    assert 1 <= g <= 64
    full = draw_quantities(spec, 0, list(range(8)), 2, device=dev, graphs=True)
    alone = draw_quantities(spec, 0, [5], 2, device=dev)
    # a grouped convolution rounds differently from a single one: equal to float32 rounding
    np.testing.assert_allclose(full[5], alone[0], rtol=2e-5)
    with runtime("cuda") as rt:
        a = measure([spec], draws=12, batch=2, seed=0, rt=rt, progress=False)
        b = measure([spec], draws=12, batch=2, seed=0, rt=rt, progress=False)
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-6)


def test_precisions_and_their_errors():
    spec = SPECS[0]
    errors = {}
    for precision in ("fp32", "tf32", "bf16"):
        with runtime("cuda", precision=precision) as rt:
            assert torch.backends.cudnn.allow_tf32 == (precision == "tf32")
            errors[precision] = precision_error(spec, seed=0, batch=2, rt=rt).max_relative
    assert errors["fp32"] < 1e-4
    assert errors["bf16"] < 0.2
    assert errors["bf16"] > errors["fp32"]


def test_scaling_check_on_the_gpu_runs_the_exact_side_beside_it():
    from verify.checks.scaling import ScalingConfig, check_scaling, size_status

    specs = tuple(build_spec("strided-cnn", n, channels=8) for n in (16, 32))
    config = ScalingConfig(specs, draws=8, n_boot=200)
    with runtime("cuda") as rt:
        result = check_scaling(config, rt=rt)
    assert list(result.status) == [size_status(s) for s in specs]
    assert result.precision is not None
    assert result.precision.max_relative < 1e-4
