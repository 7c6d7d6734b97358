"""Layer kinds: one protocol (``base.Layer``), one module per kind, one registry.

Importing this package registers the built-in kinds (the four of the families, and the
planted miscounted dense layer of ``verify calibrate``) in ``LAYER_KINDS``. A new kind is a
``Layer`` subclass decorated with ``register_layer``, in its own module (or a test); the
spec, the DAG, the operator form, the moments, the torch module and the engine then handle
it through the protocol.
"""

from graphs.layers.base import (
    LAYER_KINDS,
    NODE_KINDS,
    VARIANCES,
    Edge,
    Layer,
    Shape,
    apply_linear,
    layer_from_dict,
    register_layer,
    require_weight,
)
from graphs.layers.conv import Conv2d
from graphs.layers.linear import Linear
from graphs.layers.masked import MaskedLinear
from graphs.layers.padding import PADDINGS, pad_input, pad_input_adjoint, padded_source
from graphs.layers.planted import MiscountedLinear
from graphs.layers.pool import AvgPool2d

__all__ = [
    "LAYER_KINDS",
    "NODE_KINDS",
    "PADDINGS",
    "VARIANCES",
    "AvgPool2d",
    "Conv2d",
    "Edge",
    "Layer",
    "Linear",
    "MaskedLinear",
    "MiscountedLinear",
    "Shape",
    "apply_linear",
    "layer_from_dict",
    "pad_input",
    "pad_input_adjoint",
    "padded_source",
    "register_layer",
    "require_weight",
]
