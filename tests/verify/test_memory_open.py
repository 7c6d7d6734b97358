"""The memory pre-flight of the open architectures: a ViT's attention and a user's opaque
module. What the engine's memory scales with is ``S``, the floats one sample keeps for the
backward pass (``verify.memory.activation_floats``); it must never be below what autograd
really saves per sample, and stay within a small factor of it (``FACTOR``). A user's module is
measured on the meta device before it is built, and a size no machine could hold is refused
before its factory allocates anything. (``bench/bench_memory.py`` prints the same ratios for
the whole engine's peak, ``vit`` and ``module`` rows.)"""

from __future__ import annotations

import textwrap

import pytest
import torch

from graphs.vit import vit_spec
from verify import memory
from verify.usermodel import Footprint, UserModel, load_factory, meta_footprint, model_specs

# S against what autograd saves: the spec's shapes count the input and logits, and a ViT's
# count is 0-10% above its saved tensors (tests/graphs/test_vit.py); a module's probe counts
# every saved storage, views once.
FACTOR = 3.0

NETS = """
import torch
from torch import nn

SEEN = []

class Opaque(nn.Module):
    # LayerNorm and an attention-like product keep it out of the layer kinds: an opaque module
    def __init__(self, n):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.LayerNorm([4, n, n])
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        h = self.norm(torch.relu(self.conv(x)))
        g = torch.softmax(h.flatten(2) @ h.flatten(2).transpose(1, 2), dim=-1)
        return self.head((g @ h.flatten(2).mean(2, keepdim=True)).squeeze(2))

def opaque(n):
    SEEN.append(torch.empty(0).device.type)
    return Opaque(n)

class Pinned(Opaque):
    def __init__(self, n):
        super().__init__(n)
        self.register_buffer("scale", torch.ones(4, device="cpu"))

def pinned(n):
    return Pinned(n)
"""


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(textwrap.dedent(NETS))
    return str(path)


def _saved_per_sample(module: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """Floats autograd saves for one more sample (batches of 3 and 2), the module's own tensors left out."""
    own = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    counts = []
    for batch in (2, 3):
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor, storages=storages) -> torch.Tensor:
            s = t.untyped_storage()
            if s.data_ptr() not in own:
                storages[s.data_ptr()] = s.nbytes() // t.element_size()
            return t

        x = torch.randn((batch, *shape), requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            module(x)
        counts.append(sum(storages.values()))
    return counts[1] - counts[0]


@pytest.mark.parametrize(
    "opts",
    [{"patch": 4, "embed_dim": 16, "heads": 2, "depth": 2}, {"patch": 2, "embed_dim": 8, "heads": 4, "depth": 1}],
)
def test_vit_activations_are_never_below_what_autograd_saves(opts):
    spec = vit_spec(16, **opts)
    (layer,) = spec.layers
    measured = _saved_per_sample(layer.module.float(), spec.input_shape)
    estimate = memory.activation_floats(spec)
    assert measured <= estimate <= FACTOR * measured
    # attention's heads x T^2 grows fastest: at 4x the tokens the estimate grows more than 4x
    assert memory.activation_floats(vit_spec(32, **opts)) > 4 * estimate


def test_an_opaque_modules_footprint_on_the_meta_device(nets):
    model = UserModel(f"{nets}:opaque")
    factory = load_factory(model.ref)
    found = meta_footprint(factory, model, 8)
    assert found is not None
    assert found.method == "meta"
    module = factory(8)
    assert found.parameter_bytes == sum(4 * p.numel() for p in module.parameters())
    measured = 4 * _saved_per_sample(module, model.shape(8))
    # the meta count keeps every saved tensor (views and weights' transposes included): high, never low
    assert measured <= found.saved_bytes <= FACTOR * measured


def test_an_opaque_modules_activations_in_the_plan(nets):
    model = UserModel(f"{nets}:opaque")
    (spec,) = model_specs(model, [8])
    (layer,) = spec.layers
    assert layer.internal_floats() > 0
    measured = _saved_per_sample(load_factory(model.ref)(8), model.shape(8))
    assert measured <= memory.activation_floats(spec) <= FACTOR * measured
    assert memory.engine(spec, "", batch=4).bytes > memory.engine(spec, "", batch=1).bytes


def test_a_module_too_large_is_refused_before_its_factory_allocates(nets):
    import sys

    plans = []

    def preflight(plan):
        plans.append(plan)
        memory.check_plan(plan, limit=16 << 30)

    model = UserModel(f"{nets}:opaque")
    with pytest.raises(memory.MemoryLimitError, match="--dims 100000"):
        model_specs(model, [8, 100000], preflight=preflight)
    seen = next(m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == nets)
    # size 8 on the meta device, then for real; size 100000 on the meta device only
    assert seen.SEEN == ["meta", "cpu", "meta"]
    assert plans[-1].largest().bytes > 16 << 30


def test_a_module_the_meta_device_cannot_build_is_scaled_from_the_smaller_size(nets):
    model = UserModel(f"{nets}:pinned")
    factory = load_factory(model.ref)
    assert meta_footprint(factory, model, 8) is None
    needs = []
    model_specs(model, [8, 16], preflight=lambda plan: needs.append(plan.largest().bytes))
    # the smallest size is built unchecked; the next one's estimate is its probe scaled by d
    assert len(needs) == 1
    module = factory(16)
    real = Footprint(
        16,
        3 * 16 * 16,
        sum(4 * p.numel() for p in module.parameters()),
        4 * _saved_per_sample(module, model.shape(16)),
        "measured",
    )
    assert needs[0] >= memory.module_build(real, "").bytes
