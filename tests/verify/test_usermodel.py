"""Bring your own module: loading, the one-line errors, initialisation per draw, checkpoints."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from graphs.errors import InputError
from graphs.layers import ModuleLayer
from graphs.spec import exact_view
from verify.engine import measure
from verify.model import forward, sample_params
from verify.usermodel import UserModel, load_checkpoint, load_factory, model_spec, model_specs

MLP = """
import torch
from torch import nn

def mlp(d):
    return nn.Sequential(nn.Linear(d, 8), nn.ReLU(), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 3))

def cnn(n):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

class Norm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, 6)
        self.norm = nn.LayerNorm(6)
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        return self.out(torch.relu(self.norm(self.fc(x))))

def normed(d):
    return Norm(d)

def raises(n):
    raise ValueError("no net for you")

def not_a_module(n):
    return 3

def flat_output(n):
    return nn.Sequential(nn.Conv2d(3, 2, 3, padding=1))

def rounded(d):
    class R(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(d, 3)
        def forward(self, x):
            return self.fc(torch.round(x))
    return R()

def flat_mlp(d):
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 3))

def one_logit(d):
    return nn.Linear(d, 1)
"""


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "user_nets.py"
    path.write_text(textwrap.dedent(MLP))
    return str(path)


def test_a_traceable_module_with_he_init_becomes_its_traced_spec(user_file):
    (spec,) = model_specs(UserModel(f"{user_file}:cnn"), [6])
    assert spec.family == "model-user_nets-cnn"
    assert [layer.kind for layer in spec.layers] == ["conv2d", "bias", "global-avgpool", "linear", "bias"]
    assert spec.layers[1].relu
    assert spec.input_shape == (3, 6, 6)
    assert exact_view(spec) == (spec, ())


def test_vector_inputs_and_activations_other_than_relu(user_file):
    spec = model_spec(UserModel(f"{user_file}:mlp", input_shape="vector"), 5)
    assert spec.input_shape == (5,)
    assert [layer.activation_name for layer in spec.layers if layer.kind == "bias"] == ["relu", "gelu", "identity"]


def test_an_untraceable_module_runs_as_one_layer_and_names_its_obstacles(user_file):
    spec = model_spec(UserModel(f"{user_file}:normed", input_shape="vector"), 4)
    (layer,) = spec.layers
    assert isinstance(layer, ModuleLayer)
    assert layer.traced is None
    assert layer.obstacles == ("norm: module norm (LayerNorm)",)
    view, obstacles = exact_view(spec)
    assert view is None
    assert obstacles == layer.obstacles
    rec = measure([spec], draws=3, batch=2, seed=0, dtype=torch.float64)
    assert np.isfinite(rec["value"]).all()
    assert (rec["value"] >= 0).all()


def test_he_draws_of_a_module_layer_follow_the_fan_in(user_file):
    spec = model_spec(UserModel(f"{user_file}:normed", input_shape="vector"), 40)
    (layer,) = spec.layers
    weights = torch.stack([sample_params(spec, 0, i, dtype=torch.float64)[0] for i in range(200)])
    values = layer.unflatten(weights[0])
    assert torch.equal(values["fc.bias"], torch.zeros(6))
    assert torch.equal(values["norm.weight"], torch.ones(6))
    fc = torch.stack([layer.unflatten(w)["fc.weight"] for w in weights])
    assert float(fc.var()) == pytest.approx(2 / 40, rel=0.05)
    out = torch.stack([layer.unflatten(w)["out.weight"] for w in weights])
    assert float(out.var()) == pytest.approx(2 / 6, rel=0.1)
    assert not torch.equal(weights[0], weights[1])
    assert torch.equal(weights[3], sample_params(spec, 0, 3, dtype=torch.float64)[0])


def test_keep_init_samples_the_modules_own_initialisation_per_draw(user_file):
    spec = model_spec(UserModel(f"{user_file}:normed", input_shape="vector", init="keep"), 40)
    a, b = (sample_params(spec, 0, i, dtype=torch.float64)[0] for i in (0, 1))
    again = sample_params(spec, 0, 0, dtype=torch.float64)[0]
    assert torch.equal(a, again)
    assert not torch.equal(a, b)
    (layer,) = spec.layers
    fc = layer.unflatten(a)["fc.weight"]
    # PyTorch's own Linear init: uniform with variance 1 / (3 fan-in), not He's 2 / fan-in
    assert float(fc.abs().max()) <= 1 / 40**0.5 + 1e-12


def test_a_traceable_module_kept_as_is_still_gets_its_exact_side(user_file):
    spec = model_spec(UserModel(f"{user_file}:cnn", init="keep"), 6)
    (_layer,) = spec.layers
    view, obstacles = exact_view(spec)
    assert obstacles == ()
    assert view is not None
    assert [lay.kind for lay in view.layers] == ["conv2d", "bias", "global-avgpool", "linear", "bias"]
    x = torch.randn((2, 3, 6, 6), dtype=torch.float64)
    params = sample_params(spec, 0, 0, dtype=torch.float64)
    assert forward(spec, params, x).shape == (2, 3)


def test_checkpoints_are_tensors_only(user_file, tmp_path):
    module = load_factory(f"{user_file}:normed")(4)
    good = tmp_path / "good.pt"
    torch.save(module.state_dict(), good)
    pickled = tmp_path / "object.pt"
    torch.save(module, pickled)  # a whole pickled module: refused below, never unpickled
    state, digest = load_checkpoint(good)
    assert set(state) == set(module.state_dict())
    assert len(digest) == 64
    spec = model_spec(UserModel(f"{user_file}:normed", input_shape="vector", init="keep", weights=str(good)), 4)
    (layer,) = spec.layers
    w0, w1 = (sample_params(spec, 0, i, dtype=torch.float64)[0] for i in (0, 1))
    assert torch.equal(w0, w1)  # one checkpoint: the draws differ by their inputs only
    torch.testing.assert_close(layer.unflatten(w0)["fc.weight"], module.fc.weight.double())
    assert spec.layers[0].to_dict()["weights_sha256"] == digest
    with pytest.raises(InputError, match="weights_only"):
        load_checkpoint(pickled)


def test_safetensors_checkpoints(user_file, tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    module = load_factory(f"{user_file}:normed")(4)
    path = tmp_path / "w.safetensors"
    safetensors.save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    state, _ = load_checkpoint(path)
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())


@pytest.mark.parametrize(
    ("ref", "kwargs", "words"),
    [
        ("missing_file.py:f", {}, "file missing_file.py not found"),
        ("{file}:absent", {}, "has no absent"),
        ("no_such_package.mod:f", {}, "module no_such_package.mod not found"),
        ("{file}", {}, "FILE.py:FACTORY"),
        ("{file}:raises", {}, "raised ValueError: no net for you"),
        ("{file}:not_a_module", {}, "returned int, not an nn.Module"),
        ("{file}:flat_mlp", {}, "fails on input (2, 3, 6, 6)"),
        ("{file}:cnn", {"input_shape": "vector"}, "fails on input (2, 6)"),
        ("{file}:flat_output", {}, "not (batch, K) logits"),
        ("{file}:one_logit", {"input_shape": "vector"}, "K >= 2"),
        ("{file}:rounded", {"input_shape": "vector"}, "non-differentiable operation on the input path (round"),
        ("{file}:mlp", {"weights": "w.pt"}, "--init keep"),
        ("{file}:mlp", {"init": "random"}, "--init"),
    ],
)
def test_bad_modules_are_one_line_input_errors(user_file, ref, kwargs, words):
    with pytest.raises(InputError) as info:
        model_specs(UserModel(ref.format(file=user_file), **kwargs), [6])
    assert words in str(info.value)
    assert "\n" not in str(info.value)
