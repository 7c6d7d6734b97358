"""The ViT layer's sizes without its module: parameters (``weight_shape``) and the activations
autograd saves (``internal_floats``), against the module itself."""

from __future__ import annotations

import pytest
import torch

from graphs.vit import vit_spec

SHAPES = [
    {"patch": 4, "embed_dim": 64, "depth": 2, "heads": 4, "mlp_ratio": 2},
    {"patch": 4, "embed_dim": 32, "depth": 1, "heads": 2, "mlp_ratio": 2},
    {"patch": 8, "embed_dim": 32, "depth": 3, "heads": 4, "mlp_ratio": 4},
    {"patch": 4, "embed_dim": 8, "depth": 1, "heads": 2, "mlp_ratio": 2, "num_classes": 3},
]


def _saved_floats(module: torch.nn.Module, shape: tuple[int, ...], batch: int) -> int:
    """Floats of every storage autograd saves in one forward, parameters left out."""
    params = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            storages[s.data_ptr()] = s.nbytes() // t.element_size()
        return t

    x = torch.randn((batch, *shape), dtype=torch.float64, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(storages.values())


@pytest.mark.parametrize("opts", SHAPES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("side", [16, 32])
def test_weight_count_and_saved_activations_without_building_the_module(opts, side):
    spec = vit_spec(side, **opts)
    (layer,) = spec.layers
    # counted before the module exists
    assert "module" not in layer.__dict__
    count = layer.weight_shape()[0]
    internal = layer.internal_floats()
    assert "module" not in layer.__dict__
    assert count == sum(e.size for e in layer.entries)
    # per sample: the difference between batches of 3 and 2 (saved weights cancel); the input is the spec's
    per_sample = _saved_floats(layer.module, spec.input_shape, 3) - _saved_floats(layer.module, spec.input_shape, 2)
    measured = per_sample - spec.d
    assert measured <= internal <= 1.1 * measured
