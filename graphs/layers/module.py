"""A whole ``nn.Module`` as one layer: the Monte Carlo side of nets outside the layer kinds.

``ModuleBacked`` is the base of the layers whose map is a torch module rather than a formula
(a user's module, ``ModuleLayer``; the ViT family, ``graphs.layers.vit``). Its weight, for the
engine, is one flat float64 vector of every floating-point parameter and buffer of the module
(``entries``), and ``apply`` runs the module on it with ``torch.func.functional_call``, so weight
draws, batches and every check of the statistical side work as for any spec. It has no exact
side: no DAG, no path sums (``exact_obstacles`` says why).

How a draw initialises the entries (``init="he"``): every convolution and linear weight (and
an attention's input projection) normal with variance 2 / fan-in, drawn in the module's
parameter order from the draw's generator; their biases 0; normalisation weights 1 and biases
0; batch-norm running statistics 0 and 1; any other entry (a position embedding, a class
token) as the module built it. ``init="keep"``: the module's own values, from a checkpoint
when one was loaded, else from the module rebuilt for each draw with the global torch RNG
seeded from the draw's generator (``ModuleLayer.rebuild``), so draw i is reproducible and the
draws sample the module's own initialisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Sequence

import torch
from torch import nn

from graphs.errors import InputError, SpecError
from graphs.layers.base import Edge, Layer, Shape, register_layer, require_weight

__all__ = ["INITS", "Entry", "ModuleBacked", "ModuleLayer", "module_entries"]

INITS = ("he", "keep")


@dataclass(frozen=True)
class Entry:
    """One floating-point tensor of a module: its name, shape and how a He draw sets it."""

    name: str
    shape: tuple[int, ...]
    rule: str  # "he", "zero", "one", "keep" or "normal:STD"
    fan_in: int = 0
    buffer: bool = False

    @property
    def size(self) -> int:
        return math.prod(self.shape)


_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def module_entries(module: nn.Module, special: dict[str, str] | None = None) -> tuple[Entry, ...]:
    """The floating-point parameters, then buffers, of ``module`` with their He-draw rule.

    ``special`` overrides the rule of named entries (the ViT's position embedding).
    """
    special = special or {}
    rules: dict[str, tuple[str, int]] = {}
    for prefix, m in module.named_modules():
        dot = f"{prefix}." if prefix else ""
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            rules[f"{dot}weight"] = ("he", int(m.weight[0].numel()))
            rules[f"{dot}bias"] = ("zero", 0)
        elif isinstance(m, nn.MultiheadAttention):
            rules[f"{dot}in_proj_weight"] = ("he", int(m.embed_dim))
            rules[f"{dot}in_proj_bias"] = ("zero", 0)
        elif isinstance(m, _NORMS):
            rules[f"{dot}weight"] = ("one", 0)
            rules[f"{dot}bias"] = ("zero", 0)
            rules[f"{dot}running_mean"] = ("zero", 0)
            rules[f"{dot}running_var"] = ("one", 0)
    out = []
    for buffer, items in ((False, module.named_parameters()), (True, module.named_buffers())):
        for name, t in items:
            if not t.is_floating_point():
                continue
            rule, fan = rules.get(name, ("keep", 0))
            out.append(Entry(name, tuple(t.shape), special.get(name, rule), fan, buffer))
    return tuple(out)


class ModuleBacked(Layer):
    """A layer computed by a torch module; subclasses provide ``module`` and ``entries``."""

    module: nn.Module
    entries: tuple[Entry, ...]

    def node_kind(self) -> str:
        return "linear"

    def reads(self, index: int) -> tuple[int, ...]:
        return (index - 1,)

    # ------------------------------------------------------------------ weights

    def weight_shape(self) -> Shape:
        return (sum(e.size for e in self.entries),)

    @property
    def shares_weights(self) -> bool:
        # vmap over a module's convolutions makes them grouped ones (verify.engine)
        return True

    def own_values(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The module's own values of every entry (``keep``)."""
        state = {**dict(self.module.named_parameters()), **dict(self.module.named_buffers())}
        return {e.name: state[e.name].detach() for e in self.entries}

    def he_vector(self, generator: torch.Generator, own: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for e in self.entries:
            if e.rule == "he":
                t = torch.randn(e.shape, generator=generator, dtype=torch.float64) * math.sqrt(2.0 / max(e.fan_in, 1))
            elif e.rule == "zero":
                t = torch.zeros(e.shape, dtype=torch.float64)
            elif e.rule == "one":
                t = torch.ones(e.shape, dtype=torch.float64)
            elif e.rule.startswith("normal:"):
                t = torch.randn(e.shape, generator=generator, dtype=torch.float64) * float(e.rule.split(":")[1])
            else:
                t = own[e.name].to(dtype=torch.float64, device="cpu")
            parts.append(t.reshape(-1))
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)

    def flat(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [values[e.name].detach().to(dtype=torch.float64, device="cpu").reshape(-1) for e in self.entries]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)

    def unflatten(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        out, at = {}, 0
        for e in self.entries:
            t = weight[at : at + e.size].view(e.shape)
            # running statistics are updated in place in train mode: never on the draw's vector
            out[e.name] = t.clone() if e.buffer else t
            at += e.size
        return out

    # ------------------------------------------------------------------ exact side

    def exact_obstacles(self) -> tuple[str, ...]:
        return (f"{self.describe()}: a torch module outside the layer kinds",)

    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        raise InputError(f"{self.describe()} has no exact side: {'; '.join(self.exact_obstacles())}")

    def second_moment(self, degree: torch.Tensor, variance: str) -> torch.Tensor:
        raise InputError(f"{self.describe()} has no exact side: {'; '.join(self.exact_obstacles())}")

    # ------------------------------------------------------------------ torch side

    def apply(
        self, weight: torch.Tensor | None, inputs: Sequence[torch.Tensor], *, structural: bool = False
    ) -> torch.Tensor:
        if structural:
            raise InputError(f"{self.describe()} has no exact side: {'; '.join(self.exact_obstacles())}")
        (x,) = inputs
        w = require_weight(self, weight)
        return torch.func.functional_call(self.module, self.unflatten(w), (x,), strict=False)

    @property
    def couples_samples(self) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in self.module.modules())


@register_layer
@dataclass(frozen=True, eq=False)
class ModuleLayer(ModuleBacked):
    """A user's module for one input size (``verify.usermodel`` builds it); compared by identity.

    ``traced`` is the module read into a spec (``verify.trace``) when every node has a layer
    kind: the exact side of the net. ``obstacles`` names the nodes that keep it from one.
    """

    kind: ClassVar[str] = "module"

    module: nn.Module = field(repr=False)
    label: str = "module"
    input_shape: tuple[int, ...] = ()
    num_classes: int = 2
    init: str = "he"
    entries: tuple[Entry, ...] = field(default=(), repr=False)
    rebuild: Callable[[], nn.Module] | None = field(default=None, repr=False)
    checkpoint: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    checkpoint_digest: str = ""
    traced: Any = field(default=None, repr=False)  # graphs.spec.Spec | None
    obstacles: tuple[str, ...] = ()
    flop_count: int = 0
    saved_floats: int = 0  # per sample, measured by verify.usermodel (internal_floats)
    relu: bool = False
    activation: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init not in INITS:
            raise SpecError(f"--init {self.init!r}: choose one of {', '.join(INITS)}")
        if not self.entries:
            object.__setattr__(self, "entries", module_entries(self.module))

    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        if tuple(shapes[index - 1]) != tuple(self.input_shape):
            raise SpecError(f"layer {index}: {self.label} takes input {self.input_shape}, got {shapes[index - 1]}")
        return (self.num_classes,)

    def init_weight(self, generator: torch.Generator) -> torch.Tensor:
        if self.init == "keep":
            if self.checkpoint is not None:
                return self.flat(self.checkpoint)
            return self.flat(self._own_draw(generator))
        return self.he_vector(generator, self.own_values(generator))

    def _own_draw(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The module rebuilt with the global RNG seeded from the draw (its own initialisation)."""
        if self.rebuild is None:
            return self.own_values(generator)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self.rebuild()
        state = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        return {e.name: state[e.name].detach() for e in self.entries}

    def exact_obstacles(self) -> tuple[str, ...]:
        return () if self.traced is not None else self.obstacles

    def hypotheses_broken(self) -> tuple[str, ...]:
        if self.traced is None:
            return ()
        return tuple(sorted({h for layer in self.traced.layers for h in layer.hypotheses_broken()}))

    def hypothesis_notes(self) -> dict[str, str]:
        if self.traced is None:
            return {}
        return {h: n for layer in self.traced.layers for h, n in layer.hypothesis_notes().items()}

    def flops(self, in_shapes: Sequence[Shape], out_shape: Shape) -> int:
        return int(self.flop_count)

    def internal_floats(self) -> int:
        return int(self.saved_floats)

    def describe(self) -> str:
        return f"module({self.label}, init {self.init})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "model": self.label,
            "input_shape": [int(n) for n in self.input_shape],
            "num_classes": int(self.num_classes),
            "init": self.init,
            "mode": "train" if self.module.training else "eval",
        }
        if self.checkpoint_digest:
            out["weights_sha256"] = self.checkpoint_digest
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModuleLayer:
        raise InputError("a user's module is not rebuilt from plain data: run it again with --model FILE.py:FACTORY")
