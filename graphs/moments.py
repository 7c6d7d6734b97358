"""Exact second moments of the input gradient of a logit under (H) (Theorem 5, Eq. 13).

Under (H), for an input x and a logit o, the proof of Theorem 5 gives

    E[(d_x o)^2] = sum_{p in P(x, o)} prod_{p in p~} E[w_p^2] E[sigma_p^2]

where ``w_p`` is the weight of the edge into node p on the path and ``sigma_p`` its ReLU
gate. The factor of a node therefore depends only on the node:

* a random weight into a node of in-degree ``d_p`` has ``E[w^2] = 2 / d_p`` (He, the ideal
  H3); a pooling weight is the constant ``1/a``, so ``E[w^2] = 1/a^2``;
* ``E[sigma^2] = 1/2`` for a node followed by a ReLU, ``1`` otherwise (pooling nodes, linear
  nodes, the output logits).

That is a path sum with a node factor, computed two ways: by the operator form
(``graphs.operator``: one vector-Jacobian product of a linear network whose edges into p
weigh the factor of p; full-size nets in a second) and by dynamic programming on the DAG
(``graphs.pathsums.path_sums_dp``, exact in ``Fraction``), and the two must agree.

Two variances are offered. ``"he"`` is the ideal H3 above: ``2 / d_p`` with ``d_p`` the
node's in-degree in the DAG. ``"init"`` is what ``verify.model.init_params`` really draws:
``2 / nominal fan-in`` (``C_in k^2`` for a convolution, whatever the padding). They differ
only where a zero-padded convolution reads padding (a boundary neuron has fewer in-edges than
its nominal fan-in), so comparing Monte Carlo with both separates an H3 failure (``he`` vs
``init``) from an H1 failure (``init`` vs Monte Carlo).

Why the (H) value does not depend on widths or d (dense nets, and beyond). For a hidden
ReLU node with random weights the factor is ``(2/d_p)(1/2) = 1/d_p``; for the linear output
logit it is ``2/d_o``. So ``E[(d_x o)^2] = 2 sum_{p} prod_{p in p~} 1/d_p = 2 P(x, o)`` and,
summing over the inputs, Lemma 7 (``sum_x P(x, o) = 1``) gives

    E ||d_x f_k||_2^2 = 2    exactly, for every width, depth and d.

For a dense net each of the ``d`` inputs carries ``2/d`` (Lemma 8). The argument is not
specific to dense nets: every DAG whose hidden nodes are ReLU nodes with random weights and
whose logits are linear gives 2. A pooling node of degree ``a`` has factor ``1/a^2`` instead
of Lemma 7's ``1/a``: one extra ``1/a``. If every path crosses pooling nodes of degrees
``a_1..a_n`` the total is ``2 / prod a_i`` (Theorem 10), whence the slope -1/2 of
``||d_x f_k||_2`` against ``prod a_i``.

When (H) is exact in expectation. For nets without weight sharing (dense, random-dag) with
symmetric weights, Eq. 13 holds exactly, not only under H1: flipping the sign of the weight
vector into a neuron k leaves the law of the weights unchanged, flips its pre-activation and
its gradient and leaves every earlier quantity alone, so ``E[1{h_k > 0} (d_x h_k)^2]`` is
half of ``E[(d_x h_k)^2]``; the cross terms vanish because distinct entries of the next
weight vector are independent and centred. Convolutions share weights across positions, so
that flip is not available and H1 is only an approximation there.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Hashable, Sequence

import networkx as nx
import torch

from graphs.errors import InputError
from graphs.hypotheses import init_variance_from_spec
from graphs.layers import VARIANCES, gate_second_moment
from graphs.operator import NodeFactor, multiplier_maps, operator_vjp
from graphs.pathsums import path_sums_dp
from graphs.spec import Spec

__all__ = [
    "VARIANCES",
    "dag_node_factors",
    "moment_obstacles",
    "predicted_grad_sq_norms",
    "predicted_logit_grad_sq",
    "second_moment_dp",
    "second_moment_factor",
    "second_moment_map",
]


def _check_variance(variance: str) -> None:
    if variance not in VARIANCES:
        raise InputError(f"variance {variance!r}: choose one of {', '.join(VARIANCES)}")


def _gate(activation: str, where: str) -> float:
    gate = gate_second_moment(activation)
    if gate is None:
        raise InputError(
            f"{where}: Eq. 13 has no value after a {activation} activation (its derivative depends on the weights "
            "through the pre-activation's size: the path-activation model fails); use the Monte Carlo"
        )
    return gate


def moment_obstacles(spec: Spec) -> tuple[str, ...]:
    """Why Eq. 13 has no value on ``spec``: one line per layer that refuses it (max pooling,
    batch statistics, an activation outside the path-activation model); () when it has one."""
    probe = torch.ones(1, dtype=torch.float64)

    def obstacle(l: int, lay) -> str | None:
        try:
            lay.second_moment(probe, "he")
            _gate(lay.activation_name, f"layer {l}")
        except InputError as exc:
            return f"layer {l}: {exc}"
        return None

    found = (obstacle(l, lay) for l, lay in enumerate(spec.layers, start=1))
    return tuple(o for o in found if o is not None)


def second_moment_factor(spec: Spec, variance: str = "he") -> NodeFactor:
    """The node factor ``E[w^2] E[sigma^2]`` of Eq. 13 for ``graphs.operator.multiplier_maps``:
    the layer's ``second_moment`` times its activation's gate (1/2 for a ReLU, 1 for none,
    ``graphs.layers.activation.gate_second_moment``); an ``InputError`` names a layer where
    Eq. 13 has no value."""
    _check_variance(variance)

    def factor(layer: int, kind: str, degree: torch.Tensor) -> torch.Tensor:
        lay = spec.layers[layer - 1]
        gate = _gate(lay.activation_name, f"layer {layer} ({lay.describe()})")
        return lay.second_moment(degree, variance) * gate

    return factor


def second_moment_map(
    spec: Spec,
    outputs: Sequence[int] | None = None,
    *,
    variance: str = "he",
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``E[(d_x o)^2]`` for every input x (columns) and each logit o (rows), float64, by the operator form."""
    mult = multiplier_maps(spec, second_moment_factor(spec, variance), device=device)
    return operator_vjp(spec, mult, outputs)


def predicted_grad_sq_norms(
    spec: Spec, outputs: Sequence[int] | None = None, *, variance: str = "he", device: str | torch.device = "cpu"
) -> torch.Tensor:
    """``E ||d_x f_k||_2^2`` for each logit k (sum of the per-input map), float64."""
    return second_moment_map(spec, outputs, variance=variance, device=device).sum(dim=1)


def predicted_logit_grad_sq(
    spec: Spec,
    *,
    variance: str = "he",
    device: str | torch.device = "cpu",
    band: int | None = None,
    progress: bool = False,
) -> float:
    """``E ||d_x f_c||_2^2`` for a label c uniform over the logits, as the Monte Carlo engine draws it.

    A net whose whole operator pass would exceed ``graphs.streaming.STREAM_BYTES`` goes by row
    bands of the input (``graphs.streaming.vjp_bands``, on the CPU), as the path sums do: at
    4096 x 4096 pixels one float64 activation of the paper net is 8.6 GB, a band a few hundred
    MB. Logits with identical in-edges have identical maps (``graphs.pathsums.output_classes``),
    so one row per class is summed and weighted by the class's size. ``band`` forces bands of
    that many input rows (the tests compare them with the whole pass).
    """
    from graphs.pathsums import output_classes
    from graphs.streaming import should_stream, vjp_bands

    classes = output_classes(spec)
    reps = [c[0] for c in classes]
    on_cpu = torch.device(device).type == "cpu"
    if band is None and not (on_cpu and should_stream(spec, len(reps))):
        return float(predicted_grad_sq_norms(spec, variance=variance, device=device).mean())
    totals = torch.zeros(len(reps), dtype=torch.float64)
    factor = second_moment_factor(spec, variance)
    for b in vjp_bands(spec, factor, reps, band=band, progress=progress, desc=f"Eq. 13 dim={spec.dim}"):
        totals += b.values.reshape(len(reps), -1).sum(dim=1)
    weighted = sum(len(c) * float(t) for c, t in zip(classes, totals))
    return weighted / sum(len(c) for c in classes)


# ----------------------------------------------------------------------------- the DAG side


def dag_node_factors(g: nx.MultiDiGraph, spec: Spec | None = None, *, variance: str = "he") -> dict[Hashable, Fraction]:
    """Exact factor ``E[w^2] E[sigma^2]`` of every non-input node of a DAG, as a ``Fraction``.

    The weight kind comes from the node's in-edges (``weight_kind``/``value`` attributes of
    ``graphs.dag.to_dag``; edges without them count as random), the gate from the node's
    ``kind`` ("relu" halves). ``variance="init"`` needs ``spec`` for the nominal fan-ins.
    """
    _check_variance(variance)
    init_variance = None
    if variance == "init":
        if spec is None:
            raise InputError("variance 'init' needs the spec, for the nominal fan-in of each layer")
        init_variance = init_variance_from_spec(spec)
    factors: dict[Hashable, Fraction] = {}
    for v, attrs in g.nodes(data=True):
        edges = list(g.in_edges(v, data=True))
        if not edges:
            continue
        # graphs.dag names each node's activation; graphs without it: "relu" nodes have a ReLU
        activation = attrs.get("activation", "relu" if attrs.get("kind") == "relu" else "identity")
        gate = Fraction(_gate(activation, f"node {v!r}"))
        kinds = {a.get("weight_kind", "random") for _, _, a in edges}
        if not kinds <= {"random", "pool"}:
            raise InputError(
                f"node {v!r} has in-edges of kind {', '.join(sorted(kinds - {'random', 'pool'}))}, whose weights "
                "depend on the values (max pooling, batch statistics): Eq. 13 has no value there"
            )
        if kinds == {"pool"}:
            values = {Fraction(a["value"]) for _, _, a in edges}
            if len(values) != 1:
                raise ValueError(f"pooling node {v!r} has unequal weights {sorted(values)}")
            w2 = values.pop() ** 2
        elif kinds == {"random"}:
            if variance == "he":
                w2 = Fraction(2, len(edges))
            else:
                assert init_variance is not None, "variance 'init' built init_variance above"
                nominal = init_variance(v)
                # only pooling layers have no nominal fan-in, and their in-edges are 'pool', not 'random'
                assert nominal is not None, f"random node {v!r} has no nominal fan-in"
                w2 = nominal
        else:
            raise ValueError(f"node {v!r} mixes pooling and random in-edges; Eq. 13 needs one kind per node")
        factors[v] = w2 * gate
    return factors


def second_moment_dp(
    g: nx.MultiDiGraph, o: Hashable, spec: Spec | None = None, *, variance: str = "he", exact: bool = True
) -> dict[Hashable, Fraction | float]:
    """``E[(d_x o)^2]`` for every input x by dynamic programming on the DAG (``graphs.pathsums``)."""
    factors = dag_node_factors(g, spec, variance=variance)
    return path_sums_dp(g, o, exact=exact, factor=_dp_factor(factors, exact))


def _dp_factor(factors: dict[Hashable, Fraction], exact: bool):
    def factor(node: Hashable, *_args) -> Fraction | float:
        f = factors[node]
        return f if exact else float(f)

    return factor
