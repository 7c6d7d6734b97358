"""One declarative architecture spec, from which both the DAG and the torch module are built.

A spec is a tuple of layer objects (``graphs.layers``: each kind implements one protocol)
applied to one input of shape ``input_shape`` (no batch axis). Every layer is linear; ``relu``
says whether a ReLU follows it. Activations are flattened
(C-major, as ``torch.flatten`` does) before a dense layer. Node ``(l, i)`` of the DAG is
entry ``i`` of the flattened output of layer ``l`` (layer 0 is the input), so both views
index neurons identically.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphs.errors import SpecError
from graphs.families import PADDINGS, PAPER_STRIDES
from graphs.layers import AvgPool2d, Conv2d, Layer, Linear, MaskedLinear, Shape

__all__ = [
    "AvgPool2d",
    "Conv2d",
    "Layer",
    "Linear",
    "MaskedLinear",
    "Spec",
    "avgpool_cnn_spec",
    "build_spec",
    "dense_spec",
    "exact_view",
    "obstacles_text",
    "random_dag_spec",
    "strided_cnn_spec",
]


@dataclass(frozen=True, eq=False)
class Spec:
    """A feedforward architecture at one input size.

    ``dim`` is the family's natural size (image side n, or d for vector inputs); ``d`` is
    always the number of input coordinates.
    """

    family: str
    dim: int
    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]
    options: dict = field(default_factory=dict)

    @property
    def d(self) -> int:
        return math.prod(self.input_shape)

    @property
    def num_classes(self) -> int:
        return self.shapes[-1][0]

    @property
    def padding(self) -> str | None:
        return self.options.get("padding")

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Output shape of every layer, input first (no batch axis)."""
        return _shapes(self.input_shape, self.layers)

    @property
    def sizes(self) -> list[int]:
        return [math.prod(s) for s in self.shapes]

    def node_kind(self, layer: int) -> str:
        """Kind of the nodes of ``layer``: input, relu, pool, linear or output."""
        if layer == 0:
            return "input"
        if layer == len(self.layers):
            return "output"
        return self.layers[layer - 1].node_kind()

    def family_options(self) -> dict[str, Any]:
        """The family's options this spec was built with, as builder keywords, ``num_classes``
        included (it lives in the last layer, not in ``options``): one per command-line flag of
        the family, so settings and reports that quote them say how to build the net again.
        Options a builder records but does not take (derived values) are left out."""
        from graphs.families import FAMILIES

        declared = {o.name for o in FAMILIES[self.family].options} if self.family in FAMILIES else set(self.options)
        return {**{k: v for k, v in self.options.items() if k in declared}, "num_classes": self.num_classes}

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.family}(dim={self.dim}, d={self.d}{', ' + opts if opts else ''})"

    def to_dict(self) -> dict[str, Any]:
        """The whole architecture as JSON data: family, dim, input_shape, options and every
        layer's ``to_dict()`` (a masked layer's mask as nested lists), so two specs with the
        same dict build the same net."""
        return {
            "family": self.family,
            "dim": int(self.dim),
            "input_shape": [int(n) for n in self.input_shape],
            "options": _plain(self.options),
            "layers": [_plain(layer.to_dict()) for layer in self.layers],
        }

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical JSON of ``to_dict()`` (sorted keys, no spaces): the key
        a results store files this architecture under. Equal nets built twice get one key;
        any change of a layer, a size, an option or a random DAG's mask gives another."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists and numpy scalars and arrays as Python data (JSON types)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _shapes(input_shape: tuple[int, ...], layers: tuple[Layer, ...]) -> list[Shape]:
    shapes: list[Shape] = [tuple(input_shape)]
    for i, lay in enumerate(layers, start=1):
        if not isinstance(lay, Layer):
            raise SpecError(f"layer {i}: {type(lay).__name__} is not a graphs.layers.Layer")
        shapes.append(tuple(lay.output_shape(shapes, i)))
    return shapes


def _positive(flag: str, value: int) -> int:
    """``value`` as an int; otherwise a one-line SpecError naming the command-line ``flag`` of
    the builder keyword (``graphs.families`` declares one flag per keyword)."""
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise SpecError(f"{flag}: {value!r} is not a positive integer; give e.g. {flag} {_EXAMPLES.get(flag, 1)}")
    return int(value)


# Drawing a random DAG costs ~10 us per edge draw (a Python loop; the structure must stay the
# same numbers for every seed, so the loop stays): beyond this many draws it takes minutes.
MAX_EDGE_DRAWS = 1_000_000

_EXAMPLES = {"--dims": "32,64", "--widths": "256,256", "--hidden": "64,64", "--strides": "1,2,2", "--classes": 10}


def _kernel(kernel: int) -> int:
    if isinstance(kernel, bool) or int(kernel) != kernel or kernel < 1 or kernel % 2 == 0:
        raise SpecError(
            f"--kernel: {kernel!r} is not an odd positive integer (the padding is kernel // 2); give e.g. --kernel 3"
        )
    return int(kernel)


def dense_spec(d: int, *, widths: tuple[int, ...] = (256, 256), num_classes: int = 10) -> Spec:
    """Fully connected ReLU layers of the given widths, then a linear layer to the logits."""
    d = _positive("--dims", d)
    sizes = (d, *[_positive("--widths", w) for w in widths])
    layers: list[Layer] = [Linear(a, b, relu=True) for a, b in itertools.pairwise(sizes)]
    layers.append(Linear(sizes[-1], _positive("--classes", num_classes), relu=False))
    return Spec("dense", d, (d,), tuple(layers), {"widths": tuple(widths)})


def _cnn_trunk(
    n: int, channels: int, strides: tuple[int, ...], kernel: int, padding: str, in_channels: int, pools
) -> tuple[list[Layer], Shape]:
    layers: list[Layer] = []
    c = in_channels
    pool_iter = iter(pools) if pools is not None else None
    for s in strides:
        s = _positive("--strides", s)
        if pool_iter is None or s == 1:
            layers.append(Conv2d(c, channels, kernel, s, padding, relu=True))
        else:
            window = next(pool_iter, s)
            layers.append(Conv2d(c, channels, kernel, 1, padding, relu=True))
            layers.append(AvgPool2d(_positive("--pool-windows", window)))
        c = channels
    shape = _shapes((in_channels, n, n), tuple(layers))[-1]
    return layers, shape


def strided_cnn_spec(
    n: int,
    *,
    channels: int = 64,
    strides: tuple[int, ...] = PAPER_STRIDES,
    kernel: int = 3,
    padding: str = "zeros",
    in_channels: int = 3,
    num_classes: int = 10,
) -> Spec:
    """The paper's section 4.1 net without batchnorm: ``conv -> ReLU`` layers, then dense."""
    n = _positive("--dims", n)
    if padding not in PADDINGS:
        raise SpecError(f"--padding: unknown padding mode {padding!r}; use one of {', '.join(PADDINGS)}")
    layers, shape = _cnn_trunk(
        n, _positive("--channels", channels), tuple(strides), _kernel(kernel), padding, in_channels, None
    )
    layers.append(Linear(math.prod(shape), _positive("--classes", num_classes), relu=False))
    opts = {"padding": padding, "channels": channels, "strides": tuple(strides), "kernel": kernel}
    return Spec("strided-cnn", n, (in_channels, n, n), tuple(layers), opts)


def avgpool_cnn_spec(
    n: int,
    *,
    channels: int = 64,
    strides: tuple[int, ...] = PAPER_STRIDES,
    kernel: int = 3,
    padding: str = "zeros",
    in_channels: int = 3,
    num_classes: int = 10,
    pools: tuple[int, ...] | None = None,
) -> Spec:
    """The strided net with every strided conv replaced by ``conv(stride 1) -> ReLU -> avgpool``.

    ``pools`` gives the pooling windows in order (default: each layer's stride).
    """
    n = _positive("--dims", n)
    if padding not in PADDINGS:
        raise SpecError(f"--padding: unknown padding mode {padding!r}; use one of {', '.join(PADDINGS)}")
    strides = tuple(strides)
    if pools is None:
        pools = tuple(s for s in strides if s != 1)
    pools = tuple(_positive("--pool-windows", p) for p in pools)
    if len(pools) != sum(1 for s in strides if s != 1):
        raise SpecError(
            f"--pool-windows: {len(pools)} window(s) for {sum(1 for s in strides if s != 1)} strided layer(s); "
            "give one window per stride > 1"
        )
    layers, shape = _cnn_trunk(
        n, _positive("--channels", channels), strides, _kernel(kernel), padding, in_channels, pools
    )
    layers.append(Linear(math.prod(shape), _positive("--classes", num_classes), relu=False))
    opts = {"padding": padding, "channels": channels, "strides": strides, "kernel": kernel, "pools": pools}
    return Spec("avgpool-cnn", n, (in_channels, n, n), tuple(layers), opts)


def random_dag_spec(
    d: int,
    *,
    hidden: tuple[int, ...] = (64, 64, 64),
    max_in_degree: int = 8,
    skip_prob: float = 0.25,
    seed: int = 0,
    num_classes: int = 10,
) -> Spec:
    """A random layered DAG: random in-degrees, skip connections to any earlier layer.

    Each neuron draws its in-degree uniformly in ``1..max_in_degree``; each of its edges
    comes from the previous layer, or with probability ``skip_prob`` from a uniformly chosen
    earlier layer (the input included). Every node of the previous layer then gets at least
    one out-edge, so every input reaches the logits. The structure is a function of
    ``(seed, d)`` alone.
    """
    from graphs.rng import check_seed

    d = _positive("--dims", d)
    _positive("--max-in-degree", max_in_degree)
    if not 0.0 <= skip_prob <= 1.0:
        raise SpecError(
            f"--skip-prob: {skip_prob} is not a probability; give a number in [0, 1], e.g. --skip-prob 0.25"
        )
    seed = check_seed(seed, "--dag-seed")
    widths = [*[_positive("--hidden", w) for w in hidden], _positive("--classes", num_classes)]
    # Each edge draw is a few numpy calls (~10 us): refuse a structure that would take minutes to draw.
    expected_draws = sum(widths) * (max_in_degree + 1) / 2
    if expected_draws > MAX_EDGE_DRAWS:
        most = max(1, int(2 * MAX_EDGE_DRAWS / sum(widths)) - 1)
        raise SpecError(
            f"--max-in-degree: {max_in_degree} means ~{expected_draws:.2g} edge draws for {sum(widths)} neurons "
            f"(minutes or more); give at most --max-in-degree {most}"
        )
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), d]))
    sizes = [d]
    layers: list[Layer] = []
    for li, width in enumerate(widths):
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        total = int(offsets[-1])
        mask = np.zeros((width, total), dtype=np.int64)
        prev_lo, prev_hi = int(offsets[-2]), int(offsets[-1])
        for j in range(width):
            for _ in range(int(rng.integers(1, max_in_degree + 1))):
                if len(sizes) > 1 and rng.random() < skip_prob:
                    src_layer = int(rng.integers(0, len(sizes) - 1))
                    lo, hi = int(offsets[src_layer]), int(offsets[src_layer + 1])
                else:
                    lo, hi = prev_lo, prev_hi
                mask[j, int(rng.integers(lo, hi))] = 1
        orphans = np.flatnonzero(mask[:, prev_lo:prev_hi].sum(axis=0) == 0)
        for s in orphans:
            mask[int(rng.integers(0, width)), prev_lo + int(s)] = 1
        layers.append(MaskedLinear(mask, relu=li < len(widths) - 1))
        sizes.append(width)
    opts = {"hidden": tuple(hidden), "max_in_degree": max_in_degree, "skip_prob": skip_prob, "seed": seed}
    return Spec("random-dag", d, (d,), tuple(layers), opts)


def build_spec(family: str, dim: int, **options) -> Spec:
    """Build ``family`` (a name of ``graphs.families.FAMILIES``) at natural size ``dim`` (image
    side n, or d); ``None`` options take the family's defaults."""
    from graphs.families import family as lookup

    builder = lookup(family).build()
    options = {k: v for k, v in options.items() if v is not None}
    try:
        return builder(dim, **options)
    except TypeError as exc:
        raise SpecError(f"{family}: {exc}; see `verify --help` for the options of each family") from None


def exact_view(spec: Spec) -> tuple[Spec | None, tuple[str, ...]]:
    """The spec the exact side (DAG, path sums, (S), H3, Eq. 13) works on, or None and why not.

    A spec of layer kinds is its own exact view. A user's module (``graphs.layers.ModuleLayer``)
    has the spec ``verify.trace`` read from it when every node has a layer kind; otherwise the
    reasons are the nodes that keep it from one (a ViT: attention, layer norm).
    """
    obstacles = tuple(o for layer in spec.layers for o in layer.exact_obstacles())
    if obstacles:
        return None, obstacles
    traced = getattr(spec.layers[0], "traced", None) if len(spec.layers) == 1 else None
    if isinstance(traced, Spec):
        return Spec(spec.family, spec.dim, spec.input_shape, traced.layers, spec.options), ()
    return spec, ()


def obstacles_text(obstacles: tuple[str, ...] | list[str], limit: int = 6) -> str:
    """The first ``limit`` obstacles joined for one line, and how many more there are."""
    shown = "; ".join(obstacles[:limit])
    more = len(obstacles) - limit
    return shown + (f"; and {more} more" if more > 0 else "")
