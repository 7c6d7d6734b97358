"""torch.fx read-back: every family's torch module traces to the family's own spec, hand-written
modules trace to the layers they compute, and unknown nodes are named, not guessed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphs.layers import BatchNorm, Conv2d, MaxPool2d, Tap
from graphs.spec import build_spec
from verify.model import forward, trainable_module
from verify.trace import non_differentiable_nodes, trace_module

ROUND_TRIP = [
    ("dense", 7, {"widths": (5, 4), "num_classes": 3}),
    ("random-dag", 9, {"hidden": (6, 5), "num_classes": 3}),
    ("strided-cnn", 8, {"channels": 3, "strides": (1, 2), "padding": "reflect"}),
    ("strided-cnn", 8, {"channels": 2, "strides": (2, 2), "kernel": 5, "padding": "circular"}),
    ("avgpool-cnn", 8, {"channels": 3, "strides": (1, 2), "padding": "circular"}),
    ("resnet", 8, {"width": 4, "blocks": (1, 1), "stage_strides": (1, 2)}),
    ("resnet", 8, {"width": 4, "blocks": (2,), "stage_strides": (2,), "bn": "on", "add_relu": "off"}),
    (
        "resnet",
        8,
        {"width": 2, "blocks": (1, 1), "stage_strides": (1, 2), "bn": "on", "bn_mode": "eval", "head": "max"},
    ),
    ("resnet", 6, {"width": 2, "blocks": (1,), "stage_strides": (2,), "head": "flatten", "padding": "reflect"}),
    ("paper-net", 32, {"channels": 3, "dilation_base": 16}),
    ("paper-net", 16, {"channels": 2, "dilation_base": 16, "pool": "avg", "bn": "off"}),
    ("paper-net", 32, {"channels": 2, "pool": "stride", "bn_mode": "eval"}),
    ("vit", 8, {"patch": 4, "embed_dim": 8, "heads": 2, "depth": 1}),
]


def _id(case):
    fam, n, opts = case
    return f"{fam}-{n}-" + "-".join(str(v) for k, v in opts.items() if k in ("bn", "pool", "head", "padding"))


@pytest.mark.parametrize("case", ROUND_TRIP, ids=[_id(c) for c in ROUND_TRIP])
def test_tracing_a_family_module_gives_back_its_spec(case):
    fam, n, opts = case
    spec = build_spec(fam, n, **opts)
    module = trainable_module(spec, seed=1, draw=2, dtype=torch.float64)
    result = trace_module(module, spec.input_shape, family=fam, dim=n)
    assert result.unknown == ()
    assert result.spec is not None
    assert result.params is not None
    assert [layer.to_dict() for layer in result.spec.layers] == [layer.to_dict() for layer in spec.layers]
    assert result.spec.input_shape == spec.input_shape
    x = torch.randn((3, *spec.input_shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(forward(result.spec, result.params, x), module(x), rtol=1e-12, atol=1e-12)


class AuthorsLayer(nn.Module):
    """The authors' layer order (pad -> conv -> pool -> BN -> ReLU), written as they wrote it."""

    def __init__(self, cin: int, cout: int, dilation: int, pool: bool):
        super().__init__()
        self.pad = nn.ReflectionPad2d(dilation)
        self.conv = nn.Conv2d(cin, cout, 3, padding=0, dilation=dilation)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.pool(self.conv(self.pad(x)))))


class AuthorsNet(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.layers = nn.Sequential(AuthorsLayer(3, 4, n // 8, False), AuthorsLayer(4, 4, n // 8, True))
        self.maxpool = nn.MaxPool2d(kernel_size=n // 2)
        self.linear = nn.Linear(4, 10)

    def forward(self, x):
        out = self.maxpool(self.layers(x))
        return self.linear(out.view(-1, 4))


def test_the_authors_style_module_traces_to_reflect_padded_dilated_convs():
    module = AuthorsNet(16).double()
    result = trace_module(module, (3, 16, 16))
    assert result.spec is not None, result.unknown
    kinds = [layer.kind for layer in result.spec.layers]
    assert kinds == [
        "conv2d",
        "bias",
        "batchnorm",
        "conv2d",
        "bias",
        "maxpool2d",
        "batchnorm",
        "maxpool2d",
        "linear",
        "bias",
    ]
    conv = result.spec.layers[0]
    assert isinstance(conv, Conv2d)
    assert (conv.padding, conv.dilation, conv.pad) == ("reflect", 2, 2)
    assert isinstance(result.spec.layers[2], BatchNorm)
    assert result.spec.layers[2].relu
    assert result.spec.layers[2].mode == "train"
    assert isinstance(result.spec.layers[7], MaxPool2d)
    assert result.spec.layers[7].window == 8
    module.eval()
    assert trace_module(module, (3, 16, 16)).spec.layers[2].mode == "eval"  # type: ignore[union-attr]


class PreActivationReused(nn.Module):
    """The pre-activation is read twice: the ReLU cannot be fused into the layer before it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        h = self.a(x)
        return self.b(F.gelu(h) + h)


def test_an_activation_whose_input_has_other_readers_gets_its_own_tap():
    result = trace_module(PreActivationReused().double(), (4,))
    assert result.spec is not None, result.unknown
    tap = result.spec.layers[2]
    assert isinstance(tap, Tap)
    assert tap.back == 1
    assert tap.activation == "gelu"
    assert result.spec.layers[3].kind == "add"


class WithUnknowns(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.GroupNorm(2, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        h = torch.sigmoid(self.norm(self.conv(x)))
        return self.fc(h.mean(dim=(2, 3)))


def test_unknown_nodes_are_named_and_their_consequences_are_not():
    result = trace_module(WithUnknowns(), (3, 6, 6))
    assert result.spec is None
    assert len(result.unknown) == 2
    assert result.unknown[0].startswith("norm: module norm (GroupNorm)")
    assert result.unknown[1].startswith("sigmoid: function sigmoid")


class DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x[:, :2]
        return x[:, 2:4]


def test_modules_fx_cannot_trace_are_reported():
    result = trace_module(DataDependent(), (5,))
    assert result.spec is None
    assert "torch.fx cannot trace DataDependent" in result.unknown[0]


class Rounded(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.round(x))


def test_non_differentiable_nodes_are_found():
    (found,) = non_differentiable_nodes(Rounded())
    assert found.endswith("(round)")
    assert non_differentiable_nodes(PreActivationReused()) == []


def test_tracing_leaves_the_module_untouched():
    spec = build_spec("resnet", 8, width=2, blocks=(1,), stage_strides=(2,), bn="on")
    module = trainable_module(spec)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trace_module(module, spec.input_shape)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
