"""A small vision transformer in plain torch: a user's file for ``--model``.

    verify scaling --model examples/small_vit.py:small_vit --dims 32,64,128

``small_vit(n)`` returns a ViT for ``3 x n x n`` images with 8 x 8 patches: a strided
convolution embeds the patches, a learned position embedding and a class token are added,
then four pre-norm transformer blocks (``nn.MultiheadAttention`` and a GELU MLP, residual
connections, layer norm) and a linear head on the class token. The number of tokens grows
with n (fixed patch size). Attention is outside the layer kinds: the toolkit runs its Monte
Carlo and names the nodes that keep it from the exact side.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class SmallViT(nn.Module):
    def __init__(self, image: int, patch: int = 8, dim: int = 64, depth: int = 4, heads: int = 4, classes: int = 10):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        tokens = (image // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, 2 * dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1) + self.pos
        h = self.norm(self.blocks(h))
        return self.head(h[:, 0])


def small_vit(n: int) -> nn.Module:
    """A 4-block ViT with 8 x 8 patches for 3 x n x n images (n a multiple of 8)."""
    return SmallViT(n)
