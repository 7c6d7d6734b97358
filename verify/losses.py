"""The two robust training losses of section 2 and the cross-entropy they are built on.

- Eq. 4, gradient penalty: ``L_eps(x) = L(x) + (eps/2) ||d_x L||_q``, the first-order loss
  after an eps/2-sized l_p attack (q the dual of p; q = 2 is double backpropagation). The
  input gradient is taken with ``create_graph=True`` so the result can be differentiated
  again with respect to the weights.
- Eq. 5, adversarial augmentation: ``L~_eps(x) = (L(x) + L(x + eps delta)) / 2`` with delta
  the optimal *unit* l_p attack at x (||delta||_p = 1, ``g . delta = ||g||_q``).
- Prop. 3: ``L~_eps = L_eps + o(eps)`` for the same eps, p and its dual q.

All losses are per sample, shape ``(B,)``; ``loss_fn`` maps a batch of inputs to per-sample losses.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from graphs.spec import Spec
from verify.attacks import dual_exponent, lp_norm, optimal_attack, parse_norm
from verify.model import forward

__all__ = ["augmented_loss", "cross_entropy_loss", "penalized_loss", "prop3_difference"]

LossFn = Callable[[torch.Tensor], torch.Tensor]


def cross_entropy_loss(spec: Spec, params: Sequence[torch.Tensor | None], labels: torch.Tensor) -> LossFn:
    """``x -> L(x, c)`` per sample for the network ``(spec, params)`` and labels c.

    The weights are captured as given: if they require grad, every loss below is
    differentiable with respect to them.
    """

    def loss(x: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(forward(spec, params, x), labels, reduction="none")

    return loss


def _input_gradient(loss_fn: LossFn, x: torch.Tensor, create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(x)
        # Samples do not interact, so the gradient of the sum is each sample's own gradient.
        (g,) = torch.autograd.grad(loss.sum(), x, create_graph=create_graph)
    return loss, g


def penalized_loss(
    loss_fn: LossFn, x: torch.Tensor, eps: float | torch.Tensor, q: float, *, create_graph: bool = True
) -> torch.Tensor:
    """Eq. 4: ``L(x) + (eps/2) ||d_x L(x)||_q`` per sample (q = 1, 2 or inf).

    With ``create_graph=True`` (the default, needed for training) the penalty is
    differentiable with respect to anything ``loss_fn`` depends on (double backprop).
    """
    q = parse_norm(q)
    loss, g = _input_gradient(loss_fn, x, create_graph)
    e = torch.as_tensor(eps, dtype=loss.dtype, device=loss.device)
    out = loss + 0.5 * e * lp_norm(g, q)
    return out if create_graph else out.detach()


def augmented_loss(
    loss_fn: LossFn, x: torch.Tensor, eps: float | torch.Tensor, p: float, *, delta: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 5: ``(L(x) + L(x + eps delta)) / 2`` per sample, delta the optimal unit l_p attack.

    The attack is generated on the fly and then treated as data (no gradient flows through
    delta), as in FGSM-augmented training; pass ``delta`` to reuse a precomputed one.
    """
    p = parse_norm(p)
    if delta is None:
        _, g = _input_gradient(loss_fn, x, create_graph=False)
        delta = optimal_attack(g, p, 1.0)
    e = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    e = e if e.ndim == 0 else e.reshape(-1, *([1] * (x.ndim - 1)))
    x = x.detach()
    return 0.5 * (loss_fn(x) + loss_fn(x + e * delta.detach()))


def prop3_difference(
    loss_fn: LossFn,
    x: torch.Tensor,
    eps: float | torch.Tensor,
    p: float,
    *,
    grad: torch.Tensor | None = None,
) -> torch.Tensor:
    """``L~_eps,p - L_eps,q`` per sample (q dual to p); Prop. 3 says it is o(eps).

    Pass ``grad`` (the input gradient at x) to skip recomputing it.
    """
    p = parse_norm(p)
    x = x.detach()
    if grad is None:
        pen = penalized_loss(loss_fn, x, eps, dual_exponent(p), create_graph=False)
        aug = augmented_loss(loss_fn, x, eps, p)
    else:
        with torch.no_grad():
            e = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
            pen = loss_fn(x) + 0.5 * e * lp_norm(grad, dual_exponent(p))
            aug = augmented_loss(loss_fn, x, eps, p, delta=optimal_attack(grad, p, 1.0))
    return (aug - pen).detach()
