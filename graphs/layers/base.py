"""The layer protocol: everything the toolkit needs to know about one kind of layer.

A spec (``graphs.spec.Spec``) is a tuple of layer objects. Every view of a spec, the exact
DAG (``graphs.dag``), the operator form of path sums (``graphs.operator``), the (H) second
moments (``graphs.moments``), the hypothesis checks (``graphs.hypotheses``), the torch module
and its He initialisation (``verify.model``) and the Monte Carlo engine's hand-written
backward pass (``verify.engine``), asks the layer object instead of dispatching on its type.
Adding a layer kind is therefore one module defining a subclass of ``Layer`` decorated with
``register_layer`` (which enters it in ``graphs.layers.LAYER_KINDS``); no other file changes.

Conventions. Layers are numbered from 1 (activation 0 is the input); ``shapes[j]`` is the
shape of activation j without the batch axis, flattened C-major when a node index is needed,
so node ``(j, i)`` of the DAG is entry i of ``activation_j.flatten()``. A layer is linear in
what it reads (the weights, or constant weights such as average pooling's 1/a), or, for the
kinds outside the theorems (max pooling, batch normalisation with batch statistics), a map
whose DAG records which inputs each output depends on; an activation may follow it
(``activation``, one of ``graphs.layers.activation.ACTIVATIONS``; the older boolean
``relu`` still works: ``relu=True`` is ``activation="relu"``).

Edge attributes: ``weight_kind`` is "random" (a weight drawn at initialisation), "pool" (a
constant weight, its value in ``value``: average pooling's 1/a, a residual addition's 1) or a
data-dependent kind ("max": the derivative of a maximum, 1 on the argmax and 0 elsewhere;
"batch": batch normalisation with batch statistics), on which Eq. 13 has no value.

Shapes passed to the methods: ``output_shape`` gets the shapes of activations ``0..index-1``
(all a layer may read), ``dag_edges`` those of ``0..index`` (its own output included, so no
layer recomputes it), ``flops`` only the shapes of what it reads. Tensors (``apply``,
``input_vjp``) carry a leading batch axis.
"""

from __future__ import annotations

import abc
import dataclasses
from fractions import Fraction
from typing import Any, ClassVar, Iterator, Sequence, TypeVar

import numpy as np
import torch

from graphs.layers.activation import activation_notes, canonical_activation

__all__ = [
    "LAYER_KINDS",
    "NODE_KINDS",
    "VARIANCES",
    "WEIGHT_KINDS",
    "Edge",
    "Layer",
    "Shape",
    "apply_linear",
    "layer_from_dict",
    "register_layer",
    "require_weight",
]

Shape = tuple[int, ...]
# (source activation j, source index in activation j, destination index in this layer's
# output, attributes): attributes are ``weight_kind`` ("random" or "pool"), ``param`` (the
# shared parameter of a random edge, ``(layer, *index into the weight tensor)``) and
# ``value`` (the constant weight of a pooling edge as a Fraction, else None).
Edge = tuple[int, int, int, dict]
NODE_KINDS = ("input", "relu", "pool", "linear", "output")
# Edge weights a layer may declare (module docstring): Eq. 13 is defined on the first two.
WEIGHT_KINDS = ("random", "pool", "max", "batch")
# What a random weight's variance is taken to be in Eq. 13 (``Layer.second_moment``).
VARIANCES = ("he", "init")


class Layer(abc.ABC):
    """One layer kind. Subclasses are frozen dataclasses (hashable by value, or by identity
    when they hold arrays) and register themselves in ``graphs.layers.LAYER_KINDS``."""

    kind: ClassVar[str]  # registry name, e.g. "conv2d"
    relu: bool  # a ReLU follows the layer (kept equal to ``activation == "relu"``)
    # Subclasses declare ``activation: str | None = None`` as their last field: None means
    # "relu" or "identity" from ``relu``; ``__post_init__`` spells both fields one way.

    def __post_init__(self) -> None:
        fields = getattr(type(self), "__dataclass_fields__", {})
        if "activation" not in fields:
            return
        given = getattr(self, "activation", None)
        name = canonical_activation(given if given is not None else ("relu" if self.relu else "identity"))
        # frozen dataclasses: set through object, once, at construction
        object.__setattr__(self, "activation", name)
        object.__setattr__(self, "relu", name == "relu")

    @property
    def activation_name(self) -> str:
        """The activation that follows the layer (``identity`` for none)."""
        given = getattr(self, "activation", None)
        return given if given is not None else ("relu" if self.relu else "identity")

    def _activation_suffix(self) -> str:
        """``", relu"``, ``", gelu"``... for ``describe``; empty for identity."""
        name = self.activation_name
        return "" if name == "identity" else f", {name}"

    def _activation_dict(self) -> dict[str, Any]:
        """``relu`` always, ``activation`` only beyond relu/identity, so the plain data (and the
        fingerprint) of every net built before activations had names is unchanged."""
        name = self.activation_name
        out: dict[str, Any] = {"relu": name == "relu"}
        if name not in ("relu", "identity"):
            out["activation"] = name
        return out

    # ------------------------------------------------------------------ structure

    def reads(self, index: int) -> tuple[int, ...]:
        """The activations (0 = input) that layer ``index`` (1-based) reads; default the previous one."""
        return (index - 1,)

    @abc.abstractmethod
    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        """Output shape from the shapes of activations ``0..index-1``; a ``SpecError`` naming
        layer ``index`` and the fix when the layer does not fit them (or its own arguments
        are invalid: a spec is validated by computing its shapes)."""

    def node_kind(self) -> str:
        """Kind of this layer's nodes in the DAG: "pool" (constant weights), "relu" or "linear"."""
        return "relu" if self.relu else "linear"

    @property
    def couples_samples(self) -> bool:
        """Whether one sample's output depends on the other samples of the batch (batch
        normalisation with batch statistics); the engine then computes each sample's input
        gradient on its own (``verify.sampling.input_gradients``)."""
        return False

    def exact_obstacles(self) -> tuple[str, ...]:
        """Why this layer has no exact side at all (no DAG, no path sums): the operations
        that keep it from one; () for every kind with a DAG view."""
        return ()

    # ------------------------------------------------------------------ weights

    def weight_shape(self) -> Shape | None:
        """Shape of the random weight tensor; None for constant weights (pooling)."""
        return None

    def fan_in(self) -> int | np.ndarray | None:
        """The fan-in He initialisation divides by (per output neuron where it varies, e.g. a
        masked layer's row sums); None for constant weights. Where it differs from a node's
        in-degree in the DAG, H3 fails there."""
        return None

    @property
    def constant_weight(self) -> Fraction | None:
        """The constant weight of every edge (average pooling: 1/a), None for random weights."""
        return None

    @property
    def shares_weights(self) -> bool:
        """Whether one random parameter sits on several edges (a convolution): H1's sign-flip
        argument then fails and Eq. 13 is an approximation rather than exact."""
        return False

    def init_weight(self, generator: torch.Generator) -> torch.Tensor | None:
        """He initialisation in float64 on the CPU: mean 0, variance 2 / fan-in, zeros off a mask.

        The default draws ``torch.randn(weight_shape)`` from ``generator`` and scales it by
        ``sqrt(2 / fan_in)``; a kind whose fan-in varies per neuron overrides it. Every
        published number depends on this draw order: one ``randn`` per layer, in layer order.
        """
        shape, fan = self.weight_shape(), self.fan_in()
        if shape is None or fan is None:
            return None
        if np.ndim(fan):
            raise TypeError(f"{type(self).__name__}: a per-neuron fan-in needs its own init_weight")
        w = torch.randn(shape, generator=generator, dtype=torch.float64)
        return w * (2.0 / int(fan)) ** 0.5

    # ------------------------------------------------------------------ exact side

    @abc.abstractmethod
    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        """Every in-edge of this layer's nodes, with multiplicity (reflect padding can connect
        one input twice to one neuron: both edges are listed); ``shapes`` covers activations
        ``0..index``. The order is part of the DAG: it fixes the keys of parallel edges."""

    def output_classes(self, outputs: Sequence[int]) -> list[list[int]]:
        """``outputs`` of this layer grouped so that members of a group have identical
        in-edges (hence identical path sums). Default: each output on its own."""
        return [[o] for o in outputs]

    def second_moment(self, degree: torch.Tensor, variance: str) -> torch.Tensor:
        """``E[w^2]`` of an edge into each node (Eq. 13), shaped like ``degree`` (the nodes'
        in-degrees): ``"he"`` is 2 / in-degree (ideal H3), ``"init"`` 2 / the fan-in the
        initialisation really uses; constant weights give their square. The ReLU gate's
        ``E[sigma^2]`` is not included (``graphs.moments`` multiplies it in)."""
        const = self.constant_weight
        if const is not None:
            return torch.full_like(degree, float(const**2))
        if variance == "he":
            # A node without in-edges lies on no path; 0 keeps it out instead of dividing by 0.
            return torch.where(degree > 0, 2.0 / degree.clamp(min=1), torch.zeros_like(degree))
        if variance != "init":
            raise ValueError(f"variance {variance!r}: choose one of {', '.join(VARIANCES)}")
        fan = torch.as_tensor(self.fan_in(), dtype=degree.dtype, device=degree.device)
        # a per-neuron fan-in indexes the first (output-feature) axis of the layer's nodes
        w2 = (2.0 / fan).reshape(-1, *([1] * (degree.dim() - 1))) if fan.dim() else 2.0 / fan
        return torch.broadcast_to(w2, degree.shape)

    # ------------------------------------------------------------------ torch side

    @abc.abstractmethod
    def apply(
        self, weight: torch.Tensor | None, inputs: Sequence[torch.Tensor], *, structural: bool = False
    ) -> torch.Tensor:
        """Pre-activation for a batch; ``inputs`` are the activations ``reads`` names, in order.
        ``structural=True``: every edge weighs 1 (all-ones weights, pooling sums), so the map
        counts edges with multiplicity (the operator form of path sums)."""

    def structural_weight(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor | None:
        """The all-ones weight (masked where a mask applies) of ``apply(..., structural=True)``."""
        shape = self.weight_shape()
        return None if shape is None else torch.ones(shape, dtype=dtype, device=device)

    def input_vjp(
        self, weight: torch.Tensor | None, cotangent: torch.Tensor, input_shape: Shape
    ) -> torch.Tensor | None:
        """Vector-Jacobian product with respect to the (single) input, for a batch of
        cotangents shaped like the output; ``input_shape`` includes the batch axis. None
        when the layer has no hand-written adjoint (the engine then uses autograd).
        Image results are channels-last, the layout the engine keeps image tensors in."""
        return None

    def has_input_vjp(self) -> bool:
        """Whether ``input_vjp`` is hand-written for this layer (the engine's manual backend
        needs it); by default, whether the subclass overrides it."""
        return type(self).input_vjp is not Layer.input_vjp

    def row_sources(self, lo: int, hi: int, in_shape: Shape) -> list[int | None] | None:
        """For a row-local image layer (a window of input rows makes each output row): the
        input rows that output rows ``lo..hi-1`` read, in order, with None for a row of the
        vertical padding's zeros, such that ``apply_rows`` on those rows stacked gives exactly
        these output rows. None (the default) for a layer that is not row-local (dense,
        masked): the exact side then handles it whole (``graphs.streaming``)."""
        return None

    def apply_rows(self, weight: torch.Tensor | None, rows: torch.Tensor, *, structural: bool = False) -> torch.Tensor:
        """``apply`` on the input rows ``row_sources`` listed, stacked along the height axis
        (the vertical padding already in them): the output rows ``lo..hi-1``."""
        raise NotImplementedError(f"{type(self).__name__} is not row-local")

    def flops(self, in_shapes: Sequence[Shape], out_shape: Shape) -> int:
        """Multiply-adds times two of one sample's forward pass through this layer;
        ``in_shapes`` are the shapes of the activations ``reads`` names. Constant weights
        (pooling) and the ReLU are not counted."""
        return 0

    def internal_floats(self) -> int:
        """Floats one sample keeps inside this layer for the backward pass, beyond the
        activations the spec's shapes show: 0 for every kind that is one map, the hidden
        activations of a whole module (``graphs.layers.module``). ``verify.memory`` adds them
        to the spec's shapes; nothing here may build the module or allocate."""
        return 0

    def transient_floats(self) -> int:
        """Floats one sample needs at once during this layer's backward pass beyond what it
        keeps (``internal_floats``) and their gradients: 0 for every kind that is one map;
        attention's backward holds gradients of its ``heads T^2`` weights and scores
        (``graphs.layers.vit``). ``verify.memory.engine`` adds them."""
        return 0

    # ------------------------------------------------------------------ reporting

    def hypotheses_broken(self) -> tuple[str, ...]:
        """Hypotheses of the theorems (H1..H5, (S)) this kind breaks by construction, whatever
        the sizes; () for the kinds the theorems cover. The keys of ``hypothesis_notes``."""
        return tuple(sorted(self.hypothesis_notes()))

    def hypothesis_notes(self) -> dict[str, str]:
        """Each hypothesis this layer breaks by construction, with the precise reason. By
        default those of its activation (``graphs.layers.activation.activation_notes``);
        kinds add their own."""
        return activation_notes(self.activation_name)

    def describe(self) -> str:
        """One short human-readable line, e.g. ``conv2d(3->64, k3, s2, zeros, relu)``."""
        return f"{self.kind}"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data description (for spec hashes and JSON): ``kind`` and every constructor
        argument, as JSON types (arrays as nested lists)."""
        return {"kind": self.kind}

    @classmethod
    def from_dict(cls: type[L], data: dict[str, Any]) -> L:
        """Inverse of ``to_dict``; by default the constructor's keyword arguments."""
        return cls(**{k: v for k, v in data.items() if k != "kind"})

    def plain_fields(self) -> dict[str, Any]:
        """Every dataclass field as JSON data, with the activation as ``_activation_dict``
        spells it: the ``to_dict`` of kinds whose fields are plain numbers and strings."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name in ("relu", "activation"):
                continue
            value = getattr(self, f.name)
            out[f.name] = value.item() if isinstance(value, np.generic) else value
        out.update(self._activation_dict())
        return out


L = TypeVar("L", bound=Layer)


def require_weight(layer: Layer, weight: torch.Tensor | None) -> torch.Tensor:
    """``weight``, or a ``ValueError`` naming the layer when a random-weight layer got none."""
    if weight is None:
        raise ValueError(f"{layer.describe()} has random weights: pass its weight tensor")
    return weight


# Every layer kind by its ``kind`` name; filled by ``register_layer`` as the kind modules load.
LAYER_KINDS: dict[str, type[Layer]] = {}


def register_layer(cls: type[L]) -> type[L]:
    """Class decorator entering a ``Layer`` subclass in ``LAYER_KINDS`` under ``cls.kind``.

    Registering the same class twice is harmless (a module reloaded); another class under a
    taken name is an error, since ``layer_from_dict`` could no longer tell them apart.
    """
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_layer needs a Layer subclass, got {cls!r}")
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{cls.__name__} needs a class attribute kind: str to be registered")
    known = LAYER_KINDS.get(kind)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"layer kind {kind!r} is taken by {known.__module__}.{known.__qualname__}")
    LAYER_KINDS[kind] = cls
    return cls


def layer_from_dict(data: dict[str, Any]) -> Layer:
    """The layer ``Layer.to_dict`` described (its kind must be registered)."""
    kind = data.get("kind")
    if kind not in LAYER_KINDS:
        raise KeyError(f"unknown layer kind {kind!r}; registered: {', '.join(sorted(LAYER_KINDS))}")
    return LAYER_KINDS[kind].from_dict(data)


def apply_linear(
    layer: Layer, weight: torch.Tensor | None, history: Sequence[torch.Tensor], *, structural: bool = False
) -> torch.Tensor:
    """``layer.apply`` on what it reads from ``history``, the activations ``0..index-1`` of a
    batch (so the layer's index is ``len(history)``)."""
    return layer.apply(weight, [history[j] for j in layer.reads(len(history))], structural=structural)
