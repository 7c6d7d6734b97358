"""A small vision transformer as one layer (Monte Carlo only): the ``vit`` family's whole net.

Patch embedding (a ``patch x patch`` convolution with stride ``patch``: T = (n / patch)^2
tokens of ``width`` features) plus a learned position embedding, then ``depth`` pre-norm
blocks ``h + MHSA(LN(h))``, ``h + MLP(LN(h))`` (``heads`` attention heads, an MLP of
``mlp_ratio * width`` hidden units with GELU), a final layer norm, the mean over the tokens and
a linear head. Written with plain matrix products, so ``torch.func`` runs it on any weights.

He draws (``graphs.layers.module``): every linear and convolution weight with variance
2 / fan-in, biases 0, layer norms 1 and 0, the position embedding normal with std 0.02 (the
ViT convention; it does not depend on the input).

Why it has no exact side: attention multiplies activations by activations (the softmax of
q k^T weighs the values), so the net is not a DAG of linear connections and gates; layer norm
divides by a statistic of its own input, and GELU is outside the path-activation model. The
theorems say nothing here; the Monte Carlo measures how it scales, at a fixed patch size (the
token count grows like d) or at a fixed token count (the patch grows like sqrt(d)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from graphs.errors import SpecError
from graphs.layers.base import Shape, register_layer
from graphs.layers.module import Entry, ModuleBacked, module_entries

__all__ = ["ViT", "ViTModule"]


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, c = h.shape
        q, k, v = self.qkv(self.norm1(h)).reshape(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(c // self.heads), dim=-1)
        h = h + self.proj((weights @ v).transpose(1, 2).reshape(b, t, c))
        return h + self.fc2(F.gelu(self.fc1(self.norm2(h))))


class ViTModule(nn.Module):
    """The ViT of the module docstring, for ``in_channels x side x side`` images."""

    def __init__(
        self, side: int, in_channels: int, patch: int, width: int, depth: int, heads: int, mlp_ratio: int, classes: int
    ):
        super().__init__()
        self.embed = nn.Conv2d(in_channels, width, patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(1, (side // patch) ** 2, width))
        self.blocks = nn.ModuleList(_Block(width, heads, mlp_ratio * width) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(dim=1))


@register_layer
@dataclass(frozen=True)
class ViT(ModuleBacked):
    """The whole ViT of an ``in_channels x side x side`` image (module docstring)."""

    kind: ClassVar[str] = "vit"

    side: int
    patch: int = 4
    width: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: int = 2
    num_classes: int = 10
    in_channels: int = 3
    relu: bool = False
    activation: str | None = None

    @cached_property
    def module(self) -> nn.Module:  # pyright: ignore[reportIncompatibleVariableOverride]
        m = ViTModule(
            self.side,
            self.in_channels,
            self.patch,
            self.width,
            self.depth,
            self.heads,
            self.mlp_ratio,
            self.num_classes,
        )
        return m.to(torch.float64)

    @cached_property
    def entries(self) -> tuple[Entry, ...]:  # pyright: ignore[reportIncompatibleVariableOverride]
        return module_entries(self.module, {"pos": "normal:0.02"})

    @property
    def tokens(self) -> int:
        return (self.side // self.patch) ** 2

    def weight_shape(self) -> Shape:
        """Every parameter of ``ViTModule``, counted without building it (``verify.memory`` asks
        before any allocation; ``tests/graphs/test_vit.py`` checks it against ``entries``)."""
        c, hid, k = self.width, self.mlp_ratio * self.width, self.num_classes
        embed = c * self.in_channels * self.patch**2 + c + self.tokens * c
        block = 2 * c + (3 * c * c + 3 * c) + (c * c + c) + 2 * c + (c * hid + hid) + (hid * c + c)
        return (embed + self.depth * block + 2 * c + c * k + k,)

    @property
    def couples_samples(self) -> bool:
        # layer norm is per token: no batch statistics (and no module built to find out)
        return False

    def internal_floats(self) -> int:
        """Floats autograd saves for one sample's backward (measured with saved-tensor hooks in
        ``tests/graphs/test_vit.py``; this count is 0-6% above): per block the layer
        norms' inputs, outputs and statistics, q, k, v, the attention weights of every head
        (``heads T^2``: what grows fastest with the tokens), the heads' output, the MLP's hidden
        units before and after GELU; the patch embedding and the final norm."""
        t, c, hid = self.tokens, self.width, self.mlp_ratio * self.width
        block = 8 * t * c + 2 * t * hid + self.heads * t * t + 4 * t
        return t * c + self.depth * block + t * c + 2 * t + c

    def transient_floats(self) -> int:
        """The attention backward of one block at a time: the gradients flowing into and out of
        its softmax and the scores' gradient, ``heads T^2`` each (``bench/bench_memory.py``:
        without them the engine's estimate was 0.84 of the measured peak at 1024 tokens, with
        two of them 1.02)."""
        return 3 * self.heads * self.tokens**2

    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        prev = tuple(shapes[index - 1])
        if prev != (self.in_channels, self.side, self.side):
            raise SpecError(f"layer {index}: the ViT takes {self.in_channels} x {self.side} x {self.side}, got {prev}")
        if self.patch < 1 or self.side % self.patch:
            raise SpecError(f"layer {index}: patch {self.patch} does not tile a {self.side}x{self.side} image")
        if self.width % self.heads:
            raise SpecError(f"layer {index}: {self.heads} heads do not divide the width {self.width}")
        return (self.num_classes,)

    def init_weight(self, generator: torch.Generator) -> torch.Tensor:
        return self.he_vector(generator, self.own_values(generator))

    def exact_obstacles(self) -> tuple[str, ...]:
        return ("multi-head self-attention (products of activations)", "layer norm", "GELU")

    def hypothesis_notes(self) -> dict[str, str]:
        return {
            "H1": (
                "attention weighs values by a softmax of products of activations, and GELU's derivative depends on "
                "the pre-activation's size: no path-activation model"
            )
        }

    def flops(self, in_shapes: Sequence[Shape], out_shape: Shape) -> int:
        t, c, hid = self.tokens, self.width, self.mlp_ratio * self.width
        per_block = t * (3 * c * c + c * c + 2 * c * hid) + 2 * t * t * c
        return 2 * (t * self.in_channels * self.patch**2 * c + self.depth * per_block + c * self.num_classes)

    def describe(self) -> str:
        return (
            f"vit({self.side}px, patch {self.patch}, {self.tokens} tokens, width {self.width}, depth {self.depth}, "
            f"{self.heads} heads)"
        )

    def to_dict(self) -> dict[str, Any]:
        return self.plain_fields()
