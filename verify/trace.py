"""An ``nn.Module`` read back into a spec with ``torch.fx``: the user's own net on the exact side.

``trace_module(module, input_shape)`` traces the module symbolically, propagates the shapes of
one example batch through it, and maps every node to a layer kind of ``graphs.layers``:

- ``nn.Conv2d`` (one group, square odd kernel, padding ``dilation * (kernel // 2)`` in mode
  zeros, circular or reflect, or no padding right after ``nn.ReflectionPad2d``,
  ``nn.ZeroPad2d``, ``nn.CircularPad2d`` or ``F.pad`` of that width), its bias a ``Bias``
  layer; ``nn.Linear`` (the flatten before it is implicit), its bias a ``Bias`` layer;
- ``nn.BatchNorm1d/2d`` (batch statistics in train mode or without running statistics,
  running ones in eval mode); ``nn.MaxPool2d``/``F.max_pool2d``; ``nn.AvgPool2d`` with
  non-overlapping windows; ``nn.AdaptiveAvg/MaxPool2d(1)`` and ``mean``/``amax`` over the two
  image axes as global pooling heads (a pool whose window is the whole map stays a pooling
  layer with a 1 x 1 output);
- ``+`` of two activations (residual addition; a branch that starts from an earlier
  activation gets a ``Tap``); ReLU, GELU, tanh and leaky ReLU (as modules, functions or
  methods), fused into the layer before them where its pre-activation has no other reader;
- flattens and views that keep the batch axis, ``nn.Identity``, dropout in eval mode: no layer;
- ``verify.trainable.SpecLayerModule``: its own layer.

When every node maps, the result is a spec with the module's weights as params
(``TraceResult.spec``/``params``), checked on the example batch: the functional forward of
the spec must give the module's output. Otherwise ``TraceResult.unknown`` names each node
that keeps the module from the exact side (``"node: what it is"``), and only the Monte Carlo
applies. Tracing runs on a deep copy, so a module in train mode keeps its running statistics.
"""

from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import fx, nn

from graphs.errors import InputError
from graphs.layers import (
    Add,
    AvgPool2d,
    BatchNorm,
    Bias,
    Conv2d,
    GlobalAvgPool,
    GlobalMaxPool,
    Layer,
    Linear,
    MaxPool2d,
    Tap,
    layer_from_dict,
)
from graphs.spec import Spec

__all__ = ["NON_DIFFERENTIABLE", "TraceResult", "non_differentiable_nodes", "trace_module"]

# Operations whose derivative is zero or undefined: on the input path they make the input
# gradient meaningless (``verify.usermodel`` names them).
NON_DIFFERENTIABLE = {
    torch.round,
    torch.floor,
    torch.ceil,
    torch.trunc,
    torch.sign,
    torch.argmax,
    torch.argmin,
    torch.heaviside,
    "round",
    "floor",
    "ceil",
    "trunc",
    "sign",
    "argmax",
    "argmin",
    "detach",
    "detach_",
}

_ACTIVATION_MODULES: dict[type, Callable[[nn.Module], str]] = {
    nn.ReLU: lambda m: "relu",
    nn.GELU: lambda m: "gelu" if getattr(m, "approximate", "none") == "none" else "",
    nn.Tanh: lambda m: "tanh",
    nn.LeakyReLU: lambda m: f"leaky_relu:{m.negative_slope!r}",
}
_ACTIVATION_FUNCTIONS = {
    torch.relu: "relu",
    F.relu: "relu",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    F.gelu: "gelu",
    F.leaky_relu: "leaky_relu",
}
_ACTIVATION_METHODS = {"relu": "relu", "relu_": "relu", "tanh": "tanh"}
_ADDS = {operator.add, operator.iadd, torch.add}
_PADS = {nn.ReflectionPad2d: "reflect", nn.ZeroPad2d: "zeros", nn.CircularPad2d: "circular"}


@dataclass(frozen=True)
class TraceResult:
    """A module's spec (when every node is known) or the nodes that keep it from one."""

    spec: Spec | None
    params: list | None = field(default=None, repr=False)  # float64 copies, one entry per layer
    unknown: tuple[str, ...] = ()

    @property
    def exact(self) -> bool:
        return self.spec is not None


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        from verify.trainable import SpecLayerModule

        return isinstance(m, SpecLayerModule) or super().is_leaf_module(m, module_qualified_name)


class _Shapes(fx.Interpreter):
    """Runs the graph once and records each tensor node's shape (``node.meta["shape"]``)."""

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            n.meta["shape"] = tuple(out.shape)
        elif isinstance(out, (tuple, list)) and any(isinstance(o, torch.Tensor) for o in out):
            n.meta["tensors"] = True  # several tensors (attention's output and weights): no layer kind
        return out


class _Unknown(Exception):
    """A node without a layer kind; the message says what it is."""


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    return node.meta.get("shape")


def _pair(v: Any) -> int:
    """One int from an int or a square pair; _Unknown otherwise."""
    if isinstance(v, int):
        return v
    if isinstance(v, (tuple, list)) and len(v) == 2 and v[0] == v[1]:
        return int(v[0])
    raise _Unknown(f"non-square {v}")


def _f64(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().to(dtype=torch.float64, device="cpu").clone()


@dataclass
class _Emitter:
    """Builds the layer list: ``pos`` maps an fx node to the activation index holding its value."""

    layers: list[Layer] = field(default_factory=list)
    params: list = field(default_factory=list)
    pos: dict[fx.Node, int] = field(default_factory=dict)

    @property
    def last(self) -> int:
        return len(self.layers)

    def emit(self, layer: Layer, param: torch.Tensor | None) -> int:
        self.layers.append(layer)
        self.params.append(param)
        return self.last

    def bring(self, node: fx.Node) -> None:
        """Make ``node``'s value the previous activation (a tap when it is an earlier one)."""
        if self.pos[node] != self.last:
            self.emit(Tap(self.last + 1 - self.pos[node]), None)

    def set_activation(self, name: str) -> None:
        layer = self.layers[-1]
        self.layers[-1] = layer_from_dict({**layer.to_dict(), "relu": name == "relu", "activation": name})


def trace_module(
    module: nn.Module, input_shape: tuple[int, ...], *, family: str = "traced", dim: int | None = None
) -> TraceResult:
    """Read ``module`` (input ``(B, *input_shape)``) into a spec; see the module docstring."""
    work = copy.deepcopy(module)
    try:
        gm = fx.GraphModule(work, _Tracer().trace(work))
    except Exception as exc:  # fx raises many types on dynamic control flow
        return TraceResult(None, None, (f"torch.fx cannot trace {type(module).__name__}: {type(exc).__name__}: {exc}",))
    param = next(iter(work.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    example = torch.randn((2, *input_shape), generator=torch.Generator().manual_seed(0)).to(dtype=dtype, device=device)
    try:
        with torch.no_grad():
            _Shapes(gm).run(example)
    except Exception as exc:
        return TraceResult(None, None, (f"the traced module does not run on a {tuple(example.shape)} batch: {exc}",))
    unknown: list[str] = []
    em = _Emitter()
    modules: dict[str, nn.Module] = dict(gm.named_modules())
    pending_pad: dict[fx.Node, tuple[fx.Node, int, str]] = {}
    output_node = None
    # nodes downstream of an unknown one are not reported: the report names the causes
    tainted: set[fx.Node] = set()
    for node in gm.graph.nodes:
        if node.op == "output":
            output_node = node
        if any(a in tainted for a in node.all_input_nodes):
            tainted.add(node)
            reason = _intrinsic(node, modules)
            if reason is not None:
                unknown.append(f"{node.name}: {reason}")
            continue
        try:
            if node.op == "placeholder":
                if em.pos:
                    raise _Unknown("a second input")
                em.pos[node] = 0
            elif node.op == "output":
                pass
            elif node.meta.get("tensors"):
                raise _Unknown(f"{_what(node)} returns several tensors")
            elif node.op == "get_attr" or _shape(node) is None:
                continue  # parameters read directly, sizes: only their consumers matter
            else:
                _convert(node, modules, em, pending_pad)
        except _Unknown as exc:
            unknown.append(f"{node.name}: {exc}")
            tainted.add(node)
    if output_node is None:
        unknown.append("output: none")
    elif not unknown and output_node not in tainted:
        out = output_node.args[0]
        if not isinstance(out, fx.Node) or out not in em.pos:
            unknown.append(f"output: {out!r} is not one activation")
        else:
            em.bring(out)
    if unknown:
        return TraceResult(None, None, tuple(unknown))
    spec = Spec(family, dim if dim is not None else input_shape[-1], tuple(input_shape), tuple(em.layers))
    return _checked(spec, em.params, module, example)


def _checked(spec: Spec, params: list, module: nn.Module, example: torch.Tensor) -> TraceResult:
    """The spec, if its functional forward gives the module's output on the example batch."""
    from verify.model import forward

    try:
        _ = spec.shapes
    except InputError as exc:
        return TraceResult(None, None, (f"the traced layers do not fit: {exc}",))
    work = copy.deepcopy(module).to(dtype=torch.float64, device="cpu")
    x = example.to(dtype=torch.float64, device="cpu")
    with torch.no_grad():
        want = work(x)
        got = forward(spec, params, x)
    if want.shape != got.shape or not torch.allclose(got, want, rtol=1e-8, atol=1e-10):
        diff = (got - want).abs().max().item() if want.shape == got.shape else math.inf
        return TraceResult(
            None, None, (f"the traced spec does not reproduce the module (largest difference {diff:.3g})",)
        )
    return TraceResult(spec, params, ())


# ----------------------------------------------------------------------------- one node


def _inputs(node: fx.Node) -> list[fx.Node]:
    """The activation arguments of a node (tensor-valued nodes), in order."""
    return [a for a in (*node.args, *node.kwargs.values()) if isinstance(a, fx.Node) and _shape(a) is not None]


def _single(node: fx.Node, em: _Emitter) -> fx.Node:
    ins = [a for a in _inputs(node) if a in em.pos]
    if len(ins) != 1:
        raise _Unknown(f"{_what(node)} reads {len(ins)} activations")
    return ins[0]


def _readers_of_last(em: _Emitter) -> set[fx.Node]:
    """The nodes that read the last activation, looking through the nodes that alias it."""
    holders = {n for n, p in em.pos.items() if p == em.last}
    return {u for n in holders for u in n.users if u not in holders}


def _what(node: fx.Node) -> str:
    if node.op == "call_module":
        owner = node.graph.owning_module
        kind = type(owner.get_submodule(str(node.target))).__name__ if owner is not None else "module"
        return f"module {node.target} ({kind})"
    target = node.target
    name = target if isinstance(target, str) else getattr(target, "__name__", repr(target))
    return f"{'method' if node.op == 'call_method' else 'function'} {name}"


def _activation_of(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    if node.op == "call_module":
        m = modules[str(node.target)]
        fn = _ACTIVATION_MODULES.get(type(m))
        if fn is None:
            return None
        name = fn(m)
        if not name:
            raise _Unknown(f"{_what(node)}: GELU with approximate={m.approximate!r} (only the exact GELU is a kind)")
        return name
    if node.op == "call_function" and node.target in _ACTIVATION_FUNCTIONS:
        name = _ACTIVATION_FUNCTIONS[node.target]
        if node.target is F.gelu and node.kwargs.get("approximate", "none") != "none":
            raise _Unknown(f"{_what(node)}: GELU with approximate={node.kwargs['approximate']!r}")
        if name == "leaky_relu":
            slope: Any = node.args[1] if len(node.args) > 1 else node.kwargs.get("negative_slope", 0.01)
            return f"leaky_relu:{float(slope)!r}"
        return name
    if node.op == "call_method" and node.target in _ACTIVATION_METHODS:
        return _ACTIVATION_METHODS[str(node.target)]
    return None


def _is_alias(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Nodes that carry the value of their input (a flatten keeping the batch axis, identity, eval dropout)."""
    if node.op == "call_module":
        m = modules[str(node.target)]
        if isinstance(m, nn.Identity):
            return True
        if isinstance(m, nn.Dropout):
            return not m.training or m.p == 0
        if isinstance(m, nn.Flatten):
            return m.start_dim == 1 and m.end_dim == -1
        return False
    ins = _inputs(node)
    if len(ins) != 1:
        return False
    shape, src = _shape(node), _shape(ins[0])
    if shape is None or src is None:
        return False
    flat = len(shape) == 2 and shape[0] == src[0] and shape[1] == math.prod(src[1:])
    if node.op == "call_method" and node.target in ("view", "reshape", "flatten", "contiguous", "squeeze"):
        return flat or shape == src
    if node.op == "call_function" and node.target in (torch.flatten, torch.reshape):
        return flat or shape == src
    if node.op == "call_function" and node.target is F.dropout:
        return node.kwargs.get("training", True) is False
    return False


def _conv(m: nn.Conv2d, pad: tuple[int, str] | None) -> Conv2d:
    if m.groups != 1:
        raise _Unknown(f"a grouped convolution (groups={m.groups})")
    k, s, dil = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
    if k % 2 == 0:
        raise _Unknown(f"an even {k}x{k} kernel (the conv kind pads dilation * (kernel // 2) on each side)")
    if isinstance(m.padding, str):
        raise _Unknown(f"padding={m.padding!r}")
    p = _pair(m.padding)
    mode = m.padding_mode
    if pad is not None:
        if p != 0:
            raise _Unknown("an explicit pad before a padded convolution")
        p, mode = pad
    if p != dil * (k // 2):
        raise _Unknown(f"padding {p} (the conv kind pads dilation * (kernel // 2) = {dil * (k // 2)})")
    if mode not in ("zeros", "circular", "reflect"):
        raise _Unknown(f"padding mode {mode!r}")
    return Conv2d(m.in_channels, m.out_channels, k, s, mode, relu=False, dilation=dil)


def _pad_of(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[int, str] | None:
    if node.op == "call_module":
        m = modules[str(node.target)]
        mode = _PADS.get(type(m))
        if mode is None:
            return None
        if isinstance(m, nn.ZeroPad2d) and getattr(m, "value", 0.0) != 0.0:
            return None
        width = tuple(m.padding)  # pyright: ignore[reportArgumentType]
        return (int(width[0]), mode) if len(set(width)) == 1 else None
    if node.op == "call_function" and node.target is F.pad:
        width = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value", None)
        if not isinstance(width, (tuple, list)) or len(width) != 4 or len(set(width)) != 1:
            return None
        modes = {"constant": "zeros", "reflect": "reflect", "circular": "circular"}
        if mode not in modes or (mode == "constant" and value not in (None, 0, 0.0)):
            return None
        first: Any = width[0]
        return int(first), modes[str(mode)]
    return None


def _image_dims(node: fx.Node) -> bool:
    """Whether a mean/amax node reduces exactly the two image axes of a 4-d input."""
    dims: Any = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if not isinstance(dims, (tuple, list)):
        return False
    return sorted(int(d) % 4 for d in dims) == [2, 3]


def _convert(
    node: fx.Node, modules: dict[str, nn.Module], em: _Emitter, pending_pad: dict[fx.Node, tuple[fx.Node, int, str]]
) -> None:
    from verify.trainable import SpecLayerModule

    if _is_alias(node, modules):
        src = _single(node, em)
        em.pos[node] = em.pos[src]
        return
    act = _activation_of(node, modules)
    if act is not None:
        src = _single(node, em)
        fusable = (
            em.pos[src] == em.last
            and em.last > 0
            and em.layers[-1].activation_name == "identity"
            and _readers_of_last(em) == {node}
        )
        if fusable:
            em.set_activation(act)
            em.pos[node] = em.last
        else:
            # the pre-activation has other readers: the activation on a copy of it
            em.pos[node] = em.emit(Tap(em.last + 1 - em.pos[src], activation=act), None)
        return
    pad = _pad_of(node, modules)
    if pad is not None:
        src = _single(node, em)
        users = list(node.users)
        if len(users) != 1 or users[0].op != "call_module" or not isinstance(modules[str(users[0].target)], nn.Conv2d):
            raise _Unknown(f"{_what(node)}: a pad that does not feed one convolution")
        pending_pad[node] = (src, *pad)
        return
    if node.op == "call_module":
        m = modules[str(node.target)]
        if isinstance(m, nn.Conv2d):
            arg = node.args[0]
            assert isinstance(arg, fx.Node)
            if arg in pending_pad:
                src, p, mode = pending_pad.pop(arg)
                layer = _conv(m, (p, mode))
            else:
                src = _single(node, em)
                layer = _conv(m, None)
            em.bring(src)
            em.pos[node] = em.emit(layer, _f64(m.weight))
            if m.bias is not None:
                em.pos[node] = em.emit(Bias(m.out_channels), _f64(m.bias))
            return
        if isinstance(m, nn.Linear):
            src = _single(node, em)
            em.bring(src)
            em.pos[node] = em.emit(Linear(m.in_features, m.out_features, relu=False), _f64(m.weight))
            if m.bias is not None:
                em.pos[node] = em.emit(Bias(m.out_features), _f64(m.bias))
            return
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            src = _single(node, em)
            em.bring(src)
            c = m.num_features
            ones, zeros = torch.ones(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)
            running = m.running_mean is not None and m.running_var is not None
            mode = "train" if m.training or not running else "eval"
            w = torch.stack(
                [
                    _f64(m.weight) if m.weight is not None else ones,
                    _f64(m.bias) if m.bias is not None else zeros,
                    _f64(m.running_mean) if running else zeros,  # pyright: ignore[reportArgumentType]
                    _f64(m.running_var) if running else ones,  # pyright: ignore[reportArgumentType]
                ]
            )
            em.pos[node] = em.emit(BatchNorm(c, mode, float(m.eps)), w)
            return
        if isinstance(m, nn.MaxPool2d):
            if m.dilation not in (1, (1, 1)) or m.ceil_mode or m.return_indices:
                raise _Unknown(f"{_what(node)}: dilation, ceil_mode or indices")
            _pool(node, em, "max", _pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding))
            return
        if isinstance(m, nn.AvgPool2d):
            if m.ceil_mode or m.divisor_override is not None:
                raise _Unknown(f"{_what(node)}: ceil_mode or divisor_override")
            _pool(node, em, "avg", _pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding))
            return
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            size = m.output_size
            if size not in (1, (1, 1)):
                raise _Unknown(f"{_what(node)}: output size {size} (only 1: a global pooling head)")
            src = _single(node, em)
            em.bring(src)
            head = GlobalAvgPool() if isinstance(m, nn.AdaptiveAvgPool2d) else GlobalMaxPool()
            em.pos[node] = em.emit(head, None)
            return
        if isinstance(m, SpecLayerModule):
            ins = [a for a in _inputs(node) if a in em.pos]
            index = em.last + 1
            reads = m.layer.reads(index)
            if reads == (index - 1,) and len(ins) == 1:
                em.bring(ins[0])
            elif [em.pos[a] for a in ins] != list(reads):
                raise _Unknown(
                    f"{_what(node)}: reads activations {[em.pos[a] for a in ins]}, the layer reads {list(reads)}"
                )
            # the module applies the layer's map; its activation is a module of its own
            linear = layer_from_dict({**m.layer.to_dict(), "relu": False, "activation": "identity"})
            em.pos[node] = em.emit(linear, _f64(m.weight))
            return
        raise _Unknown(_what(node))
    if node.op in ("call_function", "call_method"):
        target = node.target
        if target in _ADDS or (node.op == "call_method" and target in ("add", "add_", "__add__", "__iadd__")):
            ins = _inputs(node)
            alpha = node.kwargs.get("alpha", 1)
            if len(ins) != 2 or any(a not in em.pos for a in ins) or alpha != 1:
                raise _Unknown(f"{_what(node)}: not the sum of two activations")
            a, b = ins
            if em.pos[a] != em.last or em.pos[b] == em.last:
                a, b = b, a
            if em.pos[a] != em.last or em.pos[b] == em.last:
                em.emit(Tap(em.last + 1 - em.pos[a]), None)
            em.pos[node] = em.emit(Add(em.last + 1 - em.pos[b]), None)
            return
        if target in (torch.mean, "mean", torch.amax, "amax") and _image_dims(node):
            src = _single(node, em)
            em.bring(src)
            head = GlobalAvgPool() if target in (torch.mean, "mean") else GlobalMaxPool()
            em.pos[node] = em.emit(head, None)
            return
        if target is F.max_pool2d or target is F.avg_pool2d:
            args = list(node.args[1:])
            k = _pair(args[0] if args else node.kwargs.get("kernel_size"))
            stride = args[1] if len(args) > 1 else node.kwargs.get("stride")
            pad = args[2] if len(args) > 2 else node.kwargs.get("padding", 0)
            kind = "max" if target is F.max_pool2d else "avg"
            _pool(node, em, kind, k, _pair(stride) if stride else k, _pair(pad))
            return
        raise _Unknown(_what(node))
    raise _Unknown(f"{node.op} {node.target}")


_KNOWN_MODULES = (
    nn.Conv2d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)


def _intrinsic(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """What keeps a node from a layer kind whatever its inputs (None: a known kind). Used for
    nodes after an unknown one, so the report names every cause and none of their consequences."""
    from verify.trainable import SpecLayerModule

    if node.op in ("placeholder", "output", "get_attr"):
        return None
    if node.meta.get("tensors"):
        return f"{_what(node)} returns several tensors"
    if node.target is operator.getitem and any(a.meta.get("tensors") for a in node.all_input_nodes):
        return None  # an element of a tuple already named
    if _shape(node) is None:
        return None
    try:
        if _is_alias(node, modules) or _activation_of(node, modules) or _pad_of(node, modules):
            return None
    except _Unknown as exc:
        return str(exc)
    if node.op == "call_module":
        m = modules[str(node.target)]
        if isinstance(m, nn.Conv2d):
            try:
                _conv(m, (_pair(m.padding), m.padding_mode) if not isinstance(m.padding, str) else None)
            except _Unknown as exc:
                return str(exc)
        if isinstance(m, (*_KNOWN_MODULES, SpecLayerModule)):
            return None
        return _what(node)
    target = node.target
    if target in _ADDS or (node.op == "call_method" and target in ("add", "add_", "__add__", "__iadd__")):
        return None
    if target in (torch.mean, "mean", torch.amax, "amax") and _image_dims(node):
        return None
    if target is F.max_pool2d or target is F.avg_pool2d:
        return None
    return _what(node)


def _pool(node: fx.Node, em: _Emitter, kind: str, k: int, s: int, p: int) -> None:
    # a window over the whole map stays a pooling layer (output C x 1 x 1): only the explicit
    # heads (adaptive pooling to 1, mean/amax over the image axes) become global pooling
    src = _single(node, em)
    em.bring(src)
    if kind == "max":
        em.pos[node] = em.emit(MaxPool2d(k, None if s == k else s, p), None)
        return
    if s != k or p != 0:
        raise _Unknown(f"{_what(node)}: overlapping or padded average pooling (window {k}, stride {s}, padding {p})")
    em.pos[node] = em.emit(AvgPool2d(k), None)


def non_differentiable_nodes(module: nn.Module) -> list[str]:
    """Nodes of the traced module whose derivative is zero or undefined (round, sign, argmax,
    detach...); [] when fx cannot trace it (the caller then looks at the gradient itself)."""
    try:
        graph = _Tracer().trace(copy.deepcopy(module))
    except Exception:
        return []
    return [
        f"{n.name} ({n.target if isinstance(n.target, str) else getattr(n.target, '__name__', n.target)})"
        for n in graph.nodes
        if n.op in ("call_function", "call_method") and n.target in NON_DIFFERENTIABLE
    ]
