"""Layer kinds: one protocol (``base.Layer``), one module per kind, one registry.

Importing this package registers the built-in kinds (those of the families, and the
planted miscounted dense layer of ``verify calibrate``) in ``LAYER_KINDS``. A new kind is a
``Layer`` subclass decorated with ``register_layer``, in its own module (or a test); the
spec, the DAG, the operator form, the moments, the torch module and the engine then handle
it through the protocol.
"""

from graphs.layers.activation import (
    ACTIVATIONS,
    apply_activation,
    canonical_activation,
    gate_second_moment,
)
from graphs.layers.add import Add
from graphs.layers.base import (
    LAYER_KINDS,
    NODE_KINDS,
    VARIANCES,
    WEIGHT_KINDS,
    Edge,
    Layer,
    Shape,
    apply_linear,
    layer_from_dict,
    register_layer,
    require_weight,
)
from graphs.layers.batchnorm import BN_MODES, BatchNorm
from graphs.layers.bias import Bias
from graphs.layers.conv import Conv2d
from graphs.layers.global_avgpool import GlobalAvgPool
from graphs.layers.global_maxpool import GlobalMaxPool
from graphs.layers.linear import Linear
from graphs.layers.masked import MaskedLinear
from graphs.layers.maxpool import MaxPool2d
from graphs.layers.module import INITS, ModuleBacked, ModuleLayer
from graphs.layers.padding import PADDINGS, pad_input, pad_input_adjoint, padded_source
from graphs.layers.planted import MiscountedLinear
from graphs.layers.pool import AvgPool2d
from graphs.layers.tap import Tap
from graphs.layers.vit import ViT

__all__ = [
    "ACTIVATIONS",
    "BN_MODES",
    "INITS",
    "LAYER_KINDS",
    "NODE_KINDS",
    "PADDINGS",
    "VARIANCES",
    "WEIGHT_KINDS",
    "Add",
    "AvgPool2d",
    "BatchNorm",
    "Bias",
    "Conv2d",
    "Edge",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "Layer",
    "Linear",
    "MaskedLinear",
    "MaxPool2d",
    "MiscountedLinear",
    "ModuleBacked",
    "ModuleLayer",
    "Shape",
    "Tap",
    "ViT",
    "apply_activation",
    "apply_linear",
    "canonical_activation",
    "gate_second_moment",
    "layer_from_dict",
    "pad_input",
    "pad_input_adjoint",
    "padded_source",
    "register_layer",
    "require_weight",
]
