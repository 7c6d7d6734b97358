"""The ``vit`` family: a small vision transformer (``graphs.layers.vit``), Monte Carlo only.

Two ways to grow the input. With a fixed patch size (``patch``, default 4) the number of
tokens grows like d and every token sees a fixed number of pixels; with a fixed token count
(``grid`` tokens per side) the patch grows like sqrt(d) and each token embeds more pixels.
The family answers which of the two keeps the gradient (and the first-order vulnerability)
from growing with d; the theorems do not cover attention, so only the Monte Carlo speaks.
"""

from __future__ import annotations

from graphs.errors import SpecError
from graphs.layers.vit import ViT
from graphs.spec import Spec, _positive

__all__ = ["vit_spec"]


def vit_spec(
    n: int,
    *,
    patch: int = 4,
    grid: int | None = None,
    embed_dim: int = 64,
    depth: int = 2,
    heads: int = 4,
    mlp_ratio: int = 2,
    in_channels: int = 3,
    num_classes: int = 10,
) -> Spec:
    """A ViT for ``in_channels x n x n`` images: patch ``patch``, or ``n / grid`` when ``grid`` is given."""
    n = _positive("--dims", n)
    if grid is not None:
        grid = _positive("--grid", grid)
        if n % grid:
            raise SpecError(f"--grid {grid}: the image side {n} is not a multiple of it; use sides divisible by {grid}")
        patch = n // grid
    patch = _positive("--patch", patch)
    if n % patch:
        raise SpecError(f"--patch {patch} does not tile a {n}x{n} image; use sides that are multiples of {patch}")
    if _positive("--embed-dim", embed_dim) % _positive("--heads", heads):
        raise SpecError(f"--heads {heads} does not divide --embed-dim {embed_dim}; give e.g. --heads 1")
    layer = ViT(
        n,
        patch,
        _positive("--embed-dim", embed_dim),
        _positive("--depth", depth),
        _positive("--heads", heads),
        _positive("--mlp-ratio", mlp_ratio),
        _positive("--classes", num_classes),
        in_channels,
    )
    opts = {
        "patch": patch,
        "grid": grid,
        "tokens": layer.tokens,
        "embed_dim": embed_dim,
        "depth": depth,
        "heads": heads,
        "mlp_ratio": mlp_ratio,
    }
    spec = Spec("vit", n, (in_channels, n, n), (layer,), opts)
    _ = spec.shapes  # validate now
    return spec
