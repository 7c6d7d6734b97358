"""verify.draws: draw i is the same numbers however it is drawn (ahead, on a pool, stacked)."""

from __future__ import annotations

import torch

from graphs.spec import build_spec
from verify.draws import DrawSampler, Prefetcher, default_workers, stack_draws
from verify.model import sample_params
from verify.sampling import sample_inputs, sample_labels

SPEC = build_spec("avgpool-cnn", 8, channels=2, strides=(1, 2))


def _same(a, b) -> None:
    assert len(a.params) == len(b.params)
    for x, y in zip(a.params, b.params):
        assert (x is None) == (y is None)
        if x is not None:
            assert torch.equal(x, y)
    assert torch.equal(a.x, b.x)
    assert torch.equal(a.y, b.y)


def test_sampler_is_the_engine_streams():
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        draw = DrawSampler(SPEC, 3, 4, dtype).sample(5)
        ref = sample_params(SPEC, 3, 5, dtype=dtype)
        assert all((w is None and r is None) or torch.equal(w, r) for w, r in zip(draw.params, ref))
        assert torch.equal(draw.x, sample_inputs(SPEC, 3, 5, 4, dtype=dtype))
        assert torch.equal(draw.y, sample_labels(SPEC, 3, 5, 4))
        # rounded from the float64 stream on the CPU: the same rounding on every device
        assert torch.equal(draw.x, sample_inputs(SPEC, 3, 5, 4, dtype=torch.float64).to(dtype))


def test_prefetched_draws_equal_inline_draws_and_skips_are_dropped():
    sampler = DrawSampler(SPEC, 1, 2)
    order = list(range(10))
    with Prefetcher(sampler, order, workers=3, lookahead=4) as ahead:
        got = ahead.get([0, 1])
        assert set(ahead._pending) == {2, 3, 4, 5}
        got += ahead.get([6])  # a results store skipped draws 2..5
        assert all(d > 6 for d in ahead._pending)
        got += ahead.get([7, 8, 9])
        assert not ahead._pending
    for draw, i in zip(got, [0, 1, 6, 7, 8, 9]):
        _same(draw, sampler.sample(i))
    with Prefetcher(sampler, order) as inline:  # no workers: drawn when asked
        _same(inline.get([4])[0], sampler.sample(4))


def test_stack_draws_and_workers():
    draws = [DrawSampler(SPEC, 0, 3).sample(i) for i in range(4)]
    stacked = stack_draws(draws, "cpu")
    assert stacked.x.shape == (4, 3, *SPEC.input_shape)
    assert stacked.y.shape == (4, 3)
    for j, w in enumerate(stacked.params):
        if w is None:
            assert draws[0].params[j] is None
        else:
            assert torch.equal(w[2], draws[2].params[j])
    assert default_workers(torch.device("cpu")) == 0
    assert default_workers(torch.device("cuda")) >= 1
