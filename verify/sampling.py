"""Inputs, labels and per-sample input gradients for one weight draw.

Every sampler takes ``(seed, draw)``: weights of draw i come from the ``Stream.WEIGHTS``
stream (see ``verify.model``), its inputs from ``Stream.INPUTS`` and its labels from
``Stream.LABELS`` (``graphs.rng``), so any draw can be recomputed alone. Random numbers are
drawn on the CPU and moved, so a seed gives the same numbers on every device.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from graphs.errors import InputError
from graphs.rng import Stream, generator_for
from graphs.spec import Spec
from verify.model import forward

__all__ = ["INPUT_KINDS", "InputGradients", "input_gradients", "sample_inputs", "sample_labels"]

INPUT_KINDS = ("normal", "upsampled")


def _upsample(base: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Copy adjacent pixels (nearest neighbour by an integer factor), as the paper's section 4.2."""
    if len(shape) == 3:
        factor = shape[1] // base.shape[-1]
        return base.repeat_interleave(factor, dim=-1).repeat_interleave(factor, dim=-2)
    factor = shape[0] // base.shape[-1]
    return base.repeat_interleave(factor, dim=-1)


def sample_inputs(
    spec: Spec,
    seed: int,
    draw: int,
    batch: int,
    *,
    kind: str = "normal",
    base_dim: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``batch`` inputs of draw ``draw``: standard normal, or normal base inputs at natural size
    ``base_dim`` upsampled to ``spec.dim`` by copying (the same base images at every size)."""
    g = generator_for(Stream.INPUTS, seed, draw)
    if kind == "normal":
        x = torch.randn((batch, *spec.input_shape), generator=g, dtype=torch.float64)
    elif kind == "upsampled":
        if base_dim is None:
            raise InputError("--inputs upsampled needs a base size: the smallest of --dims")
        if spec.dim % base_dim:
            raise InputError(
                f"--inputs upsampled: size {spec.dim} is not a multiple of the smallest size {base_dim}; "
                "use dims that are multiples of the smallest"
            )
        base_shape = (spec.input_shape[0], base_dim, base_dim) if len(spec.input_shape) == 3 else (base_dim,)
        base = torch.randn((batch, *base_shape), generator=g, dtype=torch.float64)
        x = _upsample(base, spec.input_shape)
    else:
        raise InputError(f"--inputs {kind!r}: choose one of {', '.join(INPUT_KINDS)}")
    return x.to(dtype=dtype, device=device)


def sample_labels(spec: Spec, seed: int, draw: int, batch: int, *, device: str | torch.device = "cpu") -> torch.Tensor:
    """Labels uniform over the K classes for draw ``draw``."""
    g = generator_for(Stream.LABELS, seed, draw)
    return torch.randint(0, spec.num_classes, (batch,), generator=g).to(device)


class InputGradients(NamedTuple):
    """Per-sample results for a batch: ``loss`` (B,), ``logits`` (B, K), ``loss_grad`` = d_x L and
    ``logit_grad`` = d_x f_c for the label c, both of the input's shape."""

    loss: torch.Tensor
    logits: torch.Tensor
    loss_grad: torch.Tensor
    logit_grad: torch.Tensor


def input_gradients(
    spec: Spec, params: Sequence[torch.Tensor | None], x: torch.Tensor, labels: torch.Tensor
) -> InputGradients:
    """Per-sample input gradients: ``d L_i / d x_i`` and ``d f_{c_i}(x_i) / d x_i`` for each sample i.

    When the samples of a batch do not interact, the gradient of the *sum* of per-sample
    losses with respect to the batch holds each sample's own gradient: two batched backward
    passes. When they do (batch norm with batch statistics, ``Layer.couples_samples``), the
    gradient of sample i's own loss with respect to its own input, the rest of the batch held
    as it is and the statistics differentiated, is the diagonal block of the batch Jacobian
    (``graphs.layers.batchnorm`` says why that is the attack's quantity): two backward passes
    per sample. Weights need no gradient.
    """
    x = x.detach().requires_grad_(True)
    coupled = any(layer.couples_samples for layer in spec.layers)
    with torch.enable_grad():
        logits = forward(spec, params, x)
        loss = F.cross_entropy(logits, labels, reduction="none")
        picked = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
        if not coupled:
            (loss_grad,) = torch.autograd.grad(loss.sum(), x, retain_graph=True)
            (logit_grad,) = torch.autograd.grad(picked.sum(), x)
        else:
            loss_grad, logit_grad = torch.empty_like(x), torch.empty_like(x)
            for i in range(x.shape[0]):
                (g,) = torch.autograd.grad(loss[i], x, retain_graph=True)
                loss_grad[i] = g[i]
                (g,) = torch.autograd.grad(picked[i], x, retain_graph=i + 1 < x.shape[0])
                logit_grad[i] = g[i]
    return InputGradients(loss.detach(), logits.detach(), loss_grad, logit_grad)
