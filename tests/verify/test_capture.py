"""verify.capture.GraphedStep: eager where there is no GPU, captured and replayed on CUDA."""

from __future__ import annotations

import pytest
import torch

from verify.capture import GraphedStep


def _step(params, x):
    h = x
    for w in params:
        if w is not None:
            h = torch.relu(h @ w)
    return h.sum(-1, dtype=torch.float64), h


def test_cpu_step_runs_eagerly_with_the_same_numbers():
    params = [torch.randn(5, 4), None, torch.randn(4, 3)]
    x = torch.randn(2, 5)
    step = GraphedStep(_step)
    a = step(params, x)
    b = _step(params, x)
    assert not step.captured
    assert step.replays == 0
    assert torch.equal(a[0], b[0])
    assert torch.equal(a[1], b[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_step_is_captured_once_and_replays_new_inputs():
    dev = torch.device("cuda")
    params = [torch.randn(5, 4, device=dev), None, torch.randn(4, 3, device=dev)]
    step = GraphedStep(_step)
    for k in range(4):
        x = torch.randn(2, 5, device=dev)
        out = [t.clone() for t in step(params, x)]
        ref = _step(params, x)
        torch.testing.assert_close(out[0], ref[0])
        torch.testing.assert_close(out[1], ref[1])
        assert step.captured, step.fallback_reason
        assert step.replays == k + 1
    with pytest.raises(ValueError, match="captured shape"):
        step(params, torch.randn(3, 5, device=dev))
