"""The activation that follows a layer: its name, its torch function and what the theory says of it.

A layer's ``activation`` is one of ``ACTIVATIONS``: ``identity`` (a linear node), ``relu``
(the theorems' gate), ``leaky_relu`` (slope 0.01 below zero, or ``leaky_relu:A`` for slope
A), ``gelu`` (the exact, erf-based GELU) and ``tanh``. The older boolean ``relu`` of a layer
is the pair ``relu`` / ``identity`` of this name (``graphs.layers.base.Layer``).

What Eq. 13 (``graphs.moments``) needs of an activation is ``E[sigma'(h)^2]``, the second
moment of its derivative at the pre-activation, as one number per node independent of the
weights: the path-activation model of the theorems. ``gate_second_moment`` gives it where
the model holds:

- ``relu``: 1/2 (H1: the gate is 0 or 1 with probability 1/2, independently of the path);
- ``identity``: 1;
- ``leaky_relu`` with slope a: (1 + a^2)/2. The derivative is 1 or a, each with probability
  1/2 when the pre-activation is symmetric, and the sign-flip argument of ``graphs.moments``
  gives independence from the rest of the path exactly as for a ReLU; what breaks is H1 as
  stated (the gate never kills its input);
- ``gelu`` and ``tanh``: none. Their derivative is a continuous function of the
  pre-activation's *magnitude*, which is set by the weights on the path, so the gate is
  neither a two-valued variable nor independent of the weights: the path-activation model
  itself fails, and only the Monte Carlo measures these nets.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from graphs.errors import SpecError

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_LEAKY_SLOPE",
    "activation_notes",
    "apply_activation",
    "canonical_activation",
    "gate_second_moment",
    "leaky_slope",
]

ACTIVATIONS = ("identity", "relu", "leaky_relu", "gelu", "tanh")
DEFAULT_LEAKY_SLOPE = 0.01


def _split(name: str) -> tuple[str, str | None]:
    base, _, arg = str(name).partition(":")
    return base.strip(), (arg.strip() if arg else None)


def canonical_activation(name: str) -> str:
    """``name`` validated and spelled one way (``leaky_relu`` with the default slope, else
    ``leaky_relu:A``); a ``SpecError`` lists the known names."""
    base, arg = _split(name)
    if base not in ACTIVATIONS:
        raise SpecError(f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)} (leaky_relu:SLOPE too)")
    if arg is None:
        return base
    if base != "leaky_relu":
        raise SpecError(f"activation {name!r}: only leaky_relu takes a parameter (leaky_relu:0.2)")
    try:
        slope = float(arg)
    except ValueError:
        raise SpecError(f"activation {name!r}: {arg!r} is not a number; write e.g. leaky_relu:0.2") from None
    if not math.isfinite(slope):
        raise SpecError(f"activation {name!r}: the slope must be finite")
    return "leaky_relu" if slope == DEFAULT_LEAKY_SLOPE else f"leaky_relu:{slope!r}"


def leaky_slope(name: str) -> float:
    """The negative slope of a ``leaky_relu`` activation name."""
    base, arg = _split(name)
    if base != "leaky_relu":
        raise ValueError(f"{name!r} is not a leaky_relu")
    return DEFAULT_LEAKY_SLOPE if arg is None else float(arg)


def apply_activation(h: torch.Tensor, name: str) -> torch.Tensor:
    """The activation ``name`` applied to a batch of pre-activations."""
    base, _ = _split(name)
    if base == "identity":
        return h
    if base == "relu":
        return torch.relu(h)
    if base == "leaky_relu":
        return F.leaky_relu(h, leaky_slope(name))
    if base == "gelu":
        return F.gelu(h)
    if base == "tanh":
        return torch.tanh(h)
    raise SpecError(f"unknown activation {name!r}")


def gate_second_moment(name: str) -> float | None:
    """``E[sigma'(h)^2]`` of the path-activation model, or None where that model does not
    hold (module docstring)."""
    base, _ = _split(name)
    if base == "identity":
        return 1.0
    if base == "relu":
        return 0.5
    if base == "leaky_relu":
        a = leaky_slope(name)
        return (1.0 + a * a) / 2.0
    return None


def activation_notes(name: str) -> dict[str, str]:
    """The hypotheses an activation breaks by construction, each with the reason."""
    base, _ = _split(name)
    if base in ("identity", "relu"):
        return {}
    if base == "leaky_relu":
        return {
            "H1": (
                f"{name}: the gate is 1 or {leaky_slope(name):g}, never 0, so H1 (a ReLU that kills half of its inputs) "
                "fails as stated; the sign-flip argument still makes it independent of the path, so Eq. 13 holds with "
                "E[sigma'^2] = (1 + a^2)/2"
            )
        }
    return {
        "H1": (
            f"{base}: the derivative is a continuous function of the pre-activation's magnitude, which the weights "
            "on the path set, so the gate is neither two-valued nor independent of the weights: the path-activation "
            "model of the theorems fails and Eq. 13 has no value here"
        )
    }
