"""The smallest perturbations that change a net's predicted class: line search, DeepFool, first order.

Everything is batched over the first axis (``x`` of shape ``(B, *input)``) and works on any
``logits_fn: x -> (B, K)`` that is differentiable (``verify.model.forward`` of a spec). The
predicted class is ``c = argmax_k f_k(x)``; a perturbation "flips" when the argmax changes.

- ``logit_jacobian``: ``d_x f_k`` for every logit k (K backward passes).
- ``first_order_distance``: the linearised distance to the nearest decision boundary,
  ``min_{k != c} (f_c - f_k) / ||d_x (f_c - f_k)||_q`` with q the dual of the attack norm p.
  For a bias-free ReLU net (every family here: no biases, zero or circular padding, average
  pooling) f is positively homogeneous of degree 1 and piecewise linear, so
  ``f_k(x) = <d_x f_k(x), x>`` exactly (Euler's identity; ``homogeneity_residual`` measures
  it) and the l_2 prediction is ``min_k |cos(x, d_x (f_c - f_k))| ||x||_2``: the flip distance
  relative to ||x|| is the cosine between the input and a logit-gap gradient.
- ``line_search_flip``: along a fixed unit direction (the normalised loss gradient for l_2, its
  sign for l_inf: the optimal one-step attacks of Lemma 2), the smallest step t with a flipped
  class: a geometric bracket, a uniform scan of the bracket for the first flipped point (a ray
  can leave and re-enter the class region), then bisection to relative precision ``rtol``.
  NaN where no step up to ``t_max`` flips it (far along the ray ``f(x + t u) ~ t f(u)``, so
  the class tends to ``argmax f(u)``, which may be c).
- ``deepfool``: Moosavi-Dezfooli, Fawzi and Frossard (2016), multi-class, l_2 or l_inf: at each
  iterate, step to the nearest linearised boundary, accumulate, and stop when the class of
  ``x + (1 + overshoot) r`` differs from c. NaN where ``max_iter`` iterations do not flip it.
  On a linear model the first step lands on the nearest boundary exactly, so the result is
  ``(1 + overshoot)`` times the closed form.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

__all__ = [
    "DeepFoolResult",
    "deepfool",
    "first_order_distance",
    "homogeneity_residual",
    "line_search_flip",
    "logit_jacobian",
]

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def _flat(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape[0], -1)


def logit_jacobian(logits_fn: LogitsFn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(B, K)`` and their input gradients ``(B, K, d)`` (flattened inputs)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = logits_fn(x)
        rows = []
        for k in range(logits.shape[1]):
            (g,) = torch.autograd.grad(logits[:, k].sum(), x, retain_graph=k + 1 < logits.shape[1])
            rows.append(_flat(g))
    return logits.detach(), torch.stack(rows, dim=1)


def homogeneity_residual(logits: torch.Tensor, jacobian: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per input, ``max_k |f_k(x) - <d_x f_k(x), x>|`` over ``max_k |f_k(x)|``: 0 up to rounding
    for a positively homogeneous net (bias-free ReLU)."""
    euler = torch.einsum("bkd,bd->bk", jacobian, _flat(x))
    scale = logits.abs().amax(dim=1).clamp_min(torch.finfo(logits.dtype).tiny)
    return (logits - euler).abs().amax(dim=1) / scale


def _dual(p: float) -> float:
    return 1.0 if math.isinf(p) else 2.0


def first_order_distance(logits: torch.Tensor, jacobian: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``min_{k != c} (f_c - f_k) / ||d_x (f_c - f_k)||_q`` per input, and the minimising k.

    ``p`` is 2 or inf (q = 2 or 1). Classes whose gap gradient vanishes are never nearest.
    """
    c = logits.argmax(dim=1)
    idx = torch.arange(logits.shape[0], device=logits.device)
    gap = logits[idx, c].unsqueeze(1) - logits  # (B, K), >= 0
    w = jacobian[idx, c].unsqueeze(1) - jacobian  # (B, K, d)
    norm = torch.linalg.vector_norm(w, ord=_dual(p), dim=2)
    dist = torch.where(norm > 0, gap / norm.clamp_min(torch.finfo(norm.dtype).tiny), torch.full_like(gap, math.inf))
    dist[idx, c] = math.inf
    best, k = dist.min(dim=1)
    return best, k


def _predict(logits_fn: LogitsFn, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return logits_fn(x).argmax(dim=1)


def line_search_flip(
    logits_fn: LogitsFn,
    x: torch.Tensor,
    direction: torch.Tensor,
    *,
    t0: torch.Tensor | float,
    t_max: torch.Tensor | float,
    scan: int = 16,
    rtol: float = 1e-9,
    max_bisect: int = 100,
) -> torch.Tensor:
    """Smallest ``t > 0`` (per input) with ``argmax f(x + t u) != argmax f(x)``, NaN if none up to ``t_max``.

    ``direction`` u has the shape of ``x``; ``t0`` (> 0) is the first bracket guess (e.g. the
    first-order distance), doubled until the class flips or ``t_max`` is passed.
    """
    b = x.shape[0]
    view = (b, *([1] * (x.dim() - 1)))
    c = _predict(logits_fn, x)
    t0 = torch.as_tensor(t0, dtype=x.dtype, device=x.device).expand(b).clone()
    t_max = torch.as_tensor(t_max, dtype=x.dtype, device=x.device).expand(b).clone()

    def flipped(t: torch.Tensor) -> torch.Tensor:
        return _predict(logits_fn, x + t.reshape(view) * direction) != c

    hi = torch.minimum(t0.clamp_min(torch.finfo(x.dtype).tiny), t_max)
    found = flipped(hi)
    while not bool(found.all()):
        grow = ~found & (hi < t_max)
        if not bool(grow.any()):
            break
        hi = torch.where(grow, torch.minimum(2 * hi, t_max), hi)
        found = found | (grow & flipped(hi))
    # The first flipped point of a uniform scan of (0, hi]: the class region along a ray need not be an interval.
    first = hi.clone()
    for j in range(scan, 0, -1):
        t = hi * (j / scan)
        f = flipped(t)
        first = torch.where(found & f, t, first)
    lo = torch.where(found, first - hi / scan, torch.zeros_like(hi)).clamp_min(0.0)
    hi = first
    for _ in range(max_bisect):
        if not bool(((hi - lo) > rtol * hi).any()):
            break
        mid = (lo + hi) / 2
        f = flipped(mid)
        hi = torch.where(found & f, mid, hi)
        lo = torch.where(found & ~f, mid, lo)
    return torch.where(found, hi, torch.full_like(hi, math.nan))


class DeepFoolResult(NamedTuple):
    """``perturbation`` (shape of x; NaN rows where it did not flip), ``iterations`` per input."""

    perturbation: torch.Tensor
    iterations: torch.Tensor
    flipped: torch.Tensor


def deepfool(
    logits_fn: LogitsFn, x: torch.Tensor, p: float, *, overshoot: float = 0.02, max_iter: int = 50
) -> DeepFoolResult:
    """DeepFool (multi-class) in l_2 (``p = 2``) or l_inf (``p = inf``); see the module docstring."""
    if not (p == 2.0 or math.isinf(p)):
        raise ValueError(f"deepfool: p must be 2 or inf, got {p}")
    b = x.shape[0]
    c = _predict(logits_fn, x)
    idx = torch.arange(b, device=x.device)
    r = torch.zeros_like(_flat(x))
    active = torch.ones(b, dtype=torch.bool, device=x.device)
    iterations = torch.zeros(b, dtype=torch.long, device=x.device)
    for _ in range(max_iter):
        current = x + ((1 + overshoot) * r).reshape(x.shape)
        logits, jac = logit_jacobian(logits_fn, current)
        active = active & (logits.argmax(dim=1) == c)
        if not bool(active.any()):
            break
        gap = logits[idx, c].unsqueeze(1) - logits  # >= 0 while the class is c
        w = jac - jac[idx, c].unsqueeze(1)  # gradient of f_k - f_c, (B, K, d)
        norm = torch.linalg.vector_norm(w, ord=_dual(p), dim=2)
        dist = torch.where(norm > 0, gap / norm.clamp_min(torch.finfo(norm.dtype).tiny), math.inf)
        dist[idx, c] = math.inf
        best, k = dist.min(dim=1)
        wl = w[idx, k]
        if math.isinf(p):
            step = best.unsqueeze(1) * torch.sign(wl)
        else:
            step = (best / norm[idx, k].clamp_min(torch.finfo(norm.dtype).tiny)).unsqueeze(1) * wl
        step = torch.where((active & torch.isfinite(best)).unsqueeze(1), step, torch.zeros_like(step))
        r = r + step
        iterations = iterations + active.long()
    final = x + ((1 + overshoot) * r).reshape(x.shape)
    flipped = _predict(logits_fn, final) != c
    pert = ((1 + overshoot) * r).reshape(x.shape)
    pert = torch.where(flipped.reshape(-1, *([1] * (x.dim() - 1))), pert, torch.full_like(pert, math.nan))
    return DeepFoolResult(pert, iterations, flipped)
