"""graphs.layers.MiscountedLinear: the planted H3 violations of verify calibrate."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from graphs.dag import to_dag
from graphs.errors import SpecError
from graphs.hypotheses import h3_violation_counts
from graphs.layers import Linear, MiscountedLinear, layer_from_dict
from graphs.moments import predicted_logit_grad_sq, second_moment_dp
from graphs.spec import Spec
from tests.mc import assert_mc_close


def _spec(d=12, counted=4):
    layers = (MiscountedLinear(d, 5, relu=True, counted=counted), Linear(5, 3, relu=False))
    return Spec("dense", d, (d,), layers, {"planted": "test"})


def test_round_trip_and_description():
    layer = MiscountedLinear(12, 5, counted=4)
    assert layer_from_dict(layer.to_dict()) == layer
    assert "counted as 4" in layer.describe()
    assert layer.hypotheses_broken() == ("H3",)
    assert MiscountedLinear(12, 5, counted=12).hypotheses_broken() == ()
    with pytest.raises(SpecError):
        MiscountedLinear(12, 5, counted=0)


def test_weights_have_the_miscounted_variance():
    layer = MiscountedLinear(300, 40, counted=25)
    w = layer.init_weight(torch.Generator().manual_seed(0))
    assert_mc_close((w**2).numpy(), 2 / 25, what="E[w^2]")


def test_exact_side_sees_the_violation():
    spec = _spec()
    # every neuron of the first layer divides by 4 instead of its 12 in-edges; the logits are fine
    assert h3_violation_counts(spec) == [(1, 5, 5), (2, 0, 3)]
    # Eq. 13: the first layer's factor is (2/4)/2 per path instead of (2/12)/2, so 3 times the He value
    assert predicted_logit_grad_sq(spec, variance="he") == pytest.approx(2.0, rel=1e-12)
    assert predicted_logit_grad_sq(spec, variance="init") == pytest.approx(6.0, rel=1e-12)
    g = to_dag(spec)
    dp = second_moment_dp(g, (2, 0), spec, variance="init")
    assert sum(dp.values(), Fraction(0)) == 6
