"""What the paper predicts, in one place: slopes, pooling factors, the attack-size convention.

Every number a check compares its evidence with comes from here (``../shared/THEOREMS.md``
states each one). Hypothesis names are those of the paper's (H) and (S):

- H1 ReLU gates kill half of their inputs, independently of the weights;
- H2 a path crosses each layer at most once;
- H3 weights have mean 0 and variance 2 / in-degree (He initialisation);
- H4 weights of different layers are independent;
- H5 two distinct weights from one node are uncorrelated;
- (S) every input has the same multiset of path-degrees to each output;
- (S-bounded) the weaker condition Corollary 6's slopes need: ``d * P(x, o)`` bounded above
  and below uniformly in d (exact (S) gives 1 everywhere).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from verify import settings as _settings

__all__ = [
    "CORRECTIONS",
    "DP_BOUND_RATIO",
    "EPS_INF",
    "FLIP_DISTANCE_PAPERS",
    "FLIP_DISTANCE_SLOPE",
    "HYPOTHESES",
    "LEMMA2_RATIO",
    "LEMMA7_TOTAL",
    "LEMMA8_SCALED_PATH_SUM",
    "LEMMA9_HYPOTHESES",
    "PROP3_ORDER_BOUND",
    "PROP3_SMOOTH_ORDER",
    "REMARK1_RATIO",
    "SCALING_PREDICTIONS",
    "SCALING_QUANTITIES",
    "SECOND_MOMENT_PREDICTION",
    "SECOND_MOMENT_UNDER_H",
    "SNR_SPREAD",
    "THEOREM10_SLOPE",
    "THEOREM10_SQ_SLOPE",
    "Prediction",
    "correction_factor",
    "dp_bounded",
    "dp_range_ratios",
    "eps_for_norm",
    "finite_size_exponent",
    "theorem11_ratio",
]

HYPOTHESES = ("H1", "H2", "H3", "H4", "H5", "(S)", "(S-bounded)")

# The paper's larger l_inf budget (0.5% of the pixel range). It scales the two vulnerability
# quantities, so it moves their intercept, never their slope. Defined in verify.settings so
# that the command line's --help reads it without numpy.
EPS_INF = _settings.EPS_INF


def eps_for_norm(eps_inf: float, p: float, d: int) -> float:
    """Eq. 3: the l_p budget ``eps_p = eps_inf * d^(1/p)`` (p = inf gives eps_inf)."""
    return float(eps_inf) if math.isinf(p) else float(eps_inf) * d ** (1.0 / p)


@dataclass(frozen=True)
class Prediction:
    """The slope a theorem predicts for a quantity against log d.

    ``hypotheses``: what the statement needs. ``(S)`` stands for the symmetry the theorem
    assumes; a net that breaks (S) but keeps d * P(x, o) bounded still gets the slopes of
    Corollary 6 (``weak_symmetry_suffices``). ``correction``: a known factor (name in
    ``CORRECTIONS``) the means are divided by before the slope is fitted.
    """

    quantity: str
    slope: float
    statement: str
    source: str
    hypotheses: tuple[str, ...]
    correction: str | None = None

    @property
    def needs_symmetry(self) -> bool:
        return "(S)" in self.hypotheses


_H = ("H1", "H2", "H3", "H4", "H5")

SCALING_PREDICTIONS: dict[str, Prediction] = {
    p.quantity: p
    for p in (
        Prediction(
            "loss_grad_l1", 0.5, "E||d_x L||_1 ~ d^(1/2)", "Thm 4/5 + (S), Cor 6: E||g||_1 ~ d^(1 - 1/2)", (*_H, "(S)")
        ),
        Prediction(
            "loss_grad_l2",
            0.0,
            "E||d_x L||_2 independent of d",
            "Thm 5: eps_2 E||g||_2 ~ sqrt(d), eps_2 = eps_inf sqrt(d)",
            _H,
        ),
        Prediction(
            "loss_grad_linf",
            -0.5,
            "E||d_x L||_inf ~ d^(-1/2) times the expected maximum of d Gaussians",
            "Thm 4/5 + (S): E||g||_inf ~ d^(-1/2) up to the maximum of d coordinates",
            (*_H, "(S)"),
            correction="max_abs_normal",
        ),
        Prediction(
            "logit_grad_l2", 0.0, "E||d_x f_k||_2 independent of d", "Thm 5: ||d_x f_k||_2 independent of d", _H
        ),
        Prediction(
            "logit_grad_coord",
            -0.5,
            "E|(d_x f_k)_i| ~ d^(-1/2)",
            "Thm 4/5 + (S): coordinates of d_x f_k ~ 1/sqrt(d)",
            (*_H, "(S)"),
        ),
        Prediction(
            "vuln_linf",
            0.5,
            "eps_inf E||d_x L||_1 ~ d^(1/2)",
            "Thm 4/5 + (S), Cor 6: eps_inf E||g||_1 ~ sqrt(d)",
            (*_H, "(S)"),
        ),
        Prediction("vuln_l2", 0.5, "eps_2 E||d_x L||_2 ~ d^(1/2)", "Thm 5: eps_2 E||g||_2 ~ sqrt(d)", _H),
    )
}
SCALING_QUANTITIES = tuple(SCALING_PREDICTIONS)


def _max_abs_normal(d: np.ndarray) -> np.ndarray:
    from verify.stats import expected_max_abs_normal

    return np.asarray(expected_max_abs_normal(d), dtype=np.float64)


# Known factors a prediction holds up to. ``max_abs_normal``: E||g||_inf is the maximum of d
# coordinates of size ~1/sqrt(d); under (S) they share one scale, so E||g||_inf / E max|Z_i|
# (d standard normals) is the pure power d^(-1/2).
CORRECTIONS = {"max_abs_normal": _max_abs_normal}


def correction_factor(name: str, d) -> np.ndarray:
    """The factor ``name`` of ``CORRECTIONS`` at ``d``."""
    if name not in CORRECTIONS:
        raise ValueError(f"unknown correction {name!r}; known: {', '.join(CORRECTIONS)}")
    return CORRECTIONS[name](np.asarray(d, dtype=np.float64))


# The first-order statements (``verify first-order``), each a ratio or an order whose limit the
# paper states:
# - Lemma 2: E[L(x + delta) - L(x)] / E[eps_p ||d_x L||_q] -> 1 as eps -> 0 for the optimal
#   eps-sized l_p attack (a PGD schedule that stops short of the optimum tends instead to its
#   linear-model efficiency, ``verify.attacks.pgd_linear_efficiency``);
# - Prop. 3: L~_eps - L_eps = o(eps), i.e. the order of E|L~_eps - L_eps| in eps exceeds 1
#   (2 for a loss twice differentiable along the attack);
# - Eq. 3 / Appendix C: with eps_p = eps_inf d^(1/p), ||x||_2 / ||delta||_2 is the same for
#   every p and d (pixel-sized attacks), so the largest over smallest of its means is 1;
# - Remark 1 / Eq. 9: uncorrelated logit gradients of equal mean square norm G give
#   E[||d_x L||_2^2 | q] = G ((1 - q_c)^2 + sum_{k != c} q_k^2): the slope through 0 over G is 1.
LEMMA2_RATIO = 1.0
PROP3_ORDER_BOUND = 1.0
PROP3_SMOOTH_ORDER = 2.0
SNR_SPREAD = 1.0
REMARK1_RATIO = 1.0

# Theorem 10: ||d_x f_k||_2 ~ 1/prod sqrt(a_i), so slope -1/2 against prod a_i; the squared
# norm, which Eq. 13 computes exactly under (H), has slope -1.
THEOREM10_SLOPE = -0.5
THEOREM10_SQ_SLOPE = -1.0


def theorem11_ratio(prod_a: int) -> float:
    """Theorem 11 (our reading of Appendix B): pooled/strided ``E||d_x f_k||_2 = 1/sqrt(prod a_i)``."""
    return 1.0 / math.sqrt(prod_a)


# Under (H) E||d_x f_k||_2^2 = 2 for every DAG whose hidden nodes are ReLU nodes with random
# weights and whose logits are linear (Lemma 7; graphs.moments).
SECOND_MOMENT_UNDER_H = 2.0

# (S-bounded) is judged from the sizes at hand: the ratio max/min of d * P(x, o) must not grow
# with d. Over the sizes checked, a spread that changes by less than this factor counts as
# bounded (the 3x3 stride-2 circular net: 0.2775..1.9731 at every size, ratio constant).
DP_BOUND_RATIO = 1.05


def dp_range_ratios(smaller: tuple[float, float], larger: tuple[float, float]) -> tuple[float, float]:
    """(S-bounded)'s evidence between two sizes: the ratios larger / smaller of the minimum and
    of the maximum of d * P(x, o), each given as ``(min, max)``; inf where the smaller size's
    end is not positive (a range that reaches 0 is not bounded below)."""
    lo = larger[0] / smaller[0] if smaller[0] > 0 else math.inf
    hi = larger[1] / smaller[1] if smaller[1] > 0 else math.inf
    return lo, hi


def dp_bounded(smaller: tuple[float, float], larger: tuple[float, float]) -> bool:
    """(S-bounded) judged on two sizes (the two largest checked): both ends of the range of
    d * P(x, o) agree within ``DP_BOUND_RATIO`` and the larger size's minimum is positive."""
    ratios = dp_range_ratios(smaller, larger)
    return all(1 / DP_BOUND_RATIO <= r <= DP_BOUND_RATIO for r in ratios) and larger[0] > 0


# The one scaling quantity whose value (H) fixes exactly at every size (Eq. 13, graphs.moments):
# E||d_x f_c||_2^2, measured as the square of the engine's logit_grad_l2. Its (H) value is 2 for
# every net without pooling (2 / prod a_i with pooling), so its predicted slope is 0; with the
# variances the initialisation really draws (zero padding's border) it is the exact finite-size
# curve the Monte Carlo is compared with, size by size.
SECOND_MOMENT_PREDICTION = Prediction(
    "logit_grad_l2_sq",
    0.0,
    "E||d_x f_k||_2^2 independent of d (= 2 under (H), Eq. 13)",
    "Thm 5, Eq. 13 and Lemma 7: E||d_x f_k||_2^2 = 2 sum_x P(x, o) = 2 under (H)",
    _H,
)


def finite_size_exponent(spec) -> tuple[float, str]:
    """The leading finite-size correction of ``log E[Q]`` for a family at ``spec``'s options,
    as the exponent e of ``c d^e``, and why.

    - A padded image net (zeros, reflect) has a border where H3 (zeros) or H5 (reflect)
      fails; its share of the neurons of every layer is about 4 (k // 2) / n_l, and
      n_l = n / (product of strides so far), so it falls like 1/n = sqrt(3/d): e = -1/2.
    - Without a border (dense, random-dag, circular padding) the net's law depends on d
      through averages over the d input coordinates or over the P ~ d positions of the last
      feature map (the logits are sums over them), whose smooth functions have biases of
      order 1/d (law of large numbers, delta method): e = -1. Random DAGs redraw their
      structure with d, so for them this is a guess rather than a derivation.
    """
    padding = getattr(spec, "padding", None)
    if padding in ("zeros", "reflect"):
        return -0.5, (
            f"{padding} padding: the border's share of each layer's neurons falls like 1/n = sqrt(3/d), "
            "so log E[Q] = beta log d + alpha + c d^(-1/2) + ..."
        )
    return -1.0, (
        "no border: the net depends on d through averages over d inputs (or over the ~d positions of the last "
        "feature map), whose biases are O(1/d), so log E[Q] = beta log d + alpha + c / d + ..."
    )


# Beyond the paper: for random ReLU networks, a perturbation of l_2 size about ||x|| / sqrt(d) in
# the gradient's direction flips the output, so ||delta||_2 / ||x||_2 ~ d^(-1/2) (for l_inf
# perturbations too: ||delta||_2 / ||x||_2 = ||delta||_inf / rms(x) for a sign step).
FLIP_DISTANCE_SLOPE = -0.5
FLIP_DISTANCE_PAPERS = (
    "Daniely and Schacham (2020), Most ReLU networks suffer from l2 adversarial perturbations, NeurIPS",
    "Bubeck, Cherapanamjeri, Gidel and Tachet des Combes (2021), A single gradient step finds adversarial examples on random two-layers neural networks, NeurIPS",
    "Bartlett, Bubeck and Cherapanamjeri (2021), Adversarial examples in multi-layer random ReLU networks, NeurIPS",
    "Montanari and Wu (2023), Adversarial examples in random neural networks with general activations, Mathematical Statistics and Learning",
)

# Lemma 7: sum_x P(x, o) = 1 for every output o of every DAG (a random walk up from o ends at
# an input). Lemma 8: under (S), d * P(x, o) = 1 for every input x and output o.
LEMMA7_TOTAL = 1.0
LEMMA8_SCALED_PATH_SUM = 1.0

# Lemma 9 is a statement about weights alone (no ReLU gate enters a path product), so of (H) it
# uses: each path crosses a layer once (H2), centred weights (the mean part of H3; the variance
# does not enter), independent layers (H4) and uncorrelated weights from one node (H5).
LEMMA9_HYPOTHESES = ("H2", "H3", "H4", "H5")
