"""The Monte Carlo engine: per-sample input gradients of He-initialised nets, as long-format records.

For each spec (one input size) and each weight draw i, the weights come from
``sample_params(spec, seed, i)`` and the ``batch`` inputs and labels from
``sample_inputs/sample_labels(spec, seed, i, batch)``, so draw i gives the same numbers
whether it is computed alone, in a chunk or in a full run.

Three evaluation backends give the same numbers (to rounding); ``backend='auto'`` picks one
per spec:

- manual (chains of layers that each read only the previous activation and have a
  hand-written adjoint, ``Layer.input_vjp``: dense, strided-cnn and avgpool-cnn with any
  padding): one forward pass stores each ReLU output, then ONE backward pass carries both
  cotangents (softmax - onehot for d_x L, onehot for d_x f_c) stacked along the batch axis,
  through each layer's transposed map (for a convolution ``convolution_backward`` for the
  input only, then the adjoint of circular or reflect padding; in-place ReLU masking).
  Image tensors are
  channels-last, which lets oneDNN run the convolutions about three times faster on CPU than
  the default layout. On the 3x256x256 paper net this is 1.2x faster than autograd with the
  same layout and 1.4x+ faster than a per-sample ``autograd.grad`` loop
  (``bench/bench_engine.py``).
- autograd: ``verify.sampling.input_gradients`` (one forward shared by two backward
  passes), channels-last; the reference, and the backend for random DAGs too large for vmap,
  for skip connections, max pooling, activations other than ReLU and whole torch modules
  (a user's ``--model``, the ViT). Under batch statistics (batch norm in train mode) the
  samples of a batch are coupled: each sample's own gradient is then two backward passes of
  its own (``verify.sampling.input_gradients`` says what it means), and the batch of a draw
  is never split into chunks.
- vmap: ``torch.func.vmap`` over draws stacked along a new axis, so one call evaluates many
  draws and per-operation overhead is paid once per stack instead of once per draw.

Measured on 2 CPU cores (``bench/bench_engine.py`` prints it): vmap pays off only for tiny
nets without convolutions (random-dag: 1.2x, per-draw work is a few small matmuls); for
dense nets the cost is drawing the weights either way (manual is marginally faster), and for CNNs vmap turns each convolution into a
grouped one and loses the channels-last kernels (2-3x slower). ``backend='auto'`` therefore
takes manual where it applies (dense nets and CNNs), else vmap for nets without weight
sharing (no convolution) whose draw costs under ``VMAP_MAX_FLOPS`` (random DAGs), else
autograd.

Threads and device come from the runtime (``verify.runtime``): small draws run on one thread.
"""

from __future__ import annotations

import math
from typing import Sequence, overload

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from graphs.errors import InputError
from graphs.spec import Spec
from verify.model import forward, sample_params
from verify.montecarlo import block_records, monte_carlo
from verify.runtime import SINGLE_THREAD_FLOPS, Runtime
from verify.sampling import INPUT_KINDS, input_gradients, sample_inputs, sample_labels
from verify.store import TaskKey
from verify.theory import EPS_INF, SCALING_QUANTITIES

__all__ = [
    "BACKENDS",
    "EPS_INF",
    "QUANTITIES",
    "SINGLE_THREAD_FLOPS",
    "VMAP_MAX_FLOPS",
    "choose_backend",
    "couples_samples",
    "draw_quantities",
    "forward_flops",
    "functional_gradients",
    "manual_gradients",
    "measure",
    "sample_quantities",
    "supports_manual",
    "use_vmap",
]

# The quantities and the vulnerability budget are the theory's (verify.theory).
QUANTITIES = SCALING_QUANTITIES

BACKENDS = ("auto", "manual", "autograd", "vmap")

# A convolution-free draw whose forward pass (all its inputs) costs less than this many FLOPs
# is evaluated in vmap stacks under backend='auto': below it per-call overhead dominates.
VMAP_MAX_FLOPS = 1e7


# Activation memory one evaluation may use when ``chunk`` is left automatic.
_CHUNK_BYTES = 1 << 30


def forward_flops(spec: Spec) -> int:
    """Multiply-adds times two of one sample's forward pass (pooling and ReLU not counted).

    A backward pass to the input costs the same again (the transposed maps have as many
    multiply-adds), which is how ``bench/bench_engine.py`` counts FLOPs.
    """
    shapes = spec.shapes
    return sum(
        layer.flops([shapes[j] for j in layer.reads(l)], shapes[l]) for l, layer in enumerate(spec.layers, start=1)
    )


def _activation_floats(spec: Spec) -> int:
    return sum(spec.sizes)


@overload
def _to_device_layout(t: torch.Tensor) -> torch.Tensor: ...
@overload
def _to_device_layout(t: None) -> None: ...


def _to_device_layout(t: torch.Tensor | None) -> torch.Tensor | None:
    """Channels-last for 4-d tensors (conv weights, image batches): the fast oneDNN layout."""
    if t is not None and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    return t


def sample_quantities(
    loss_grad: torch.Tensor, logit_grad: torch.Tensor, d: int, *, eps_inf: float = EPS_INF
) -> np.ndarray:
    """Per-sample quantities, shape ``(len(QUANTITIES), B)`` in float64, from gradients of shape ``(B, ...)``.

    vuln_p = eps_p * ||g||_q with eps_p = eps_inf * d^(1/p): eps_inf * ||g||_1 for p = inf,
    eps_inf * sqrt(d) * ||g||_2 for p = 2.
    """
    g = loss_grad.reshape(loss_grad.shape[0], -1)
    k = logit_grad.reshape(logit_grad.shape[0], -1)
    ag = g.abs()
    l1 = ag.sum(1, dtype=torch.float64)
    l2 = torch.linalg.vector_norm(g, dim=1, dtype=torch.float64)
    linf = ag.amax(1).to(torch.float64)
    k_l2 = torch.linalg.vector_norm(k, dim=1, dtype=torch.float64)
    k_coord = k.abs().sum(1, dtype=torch.float64) / d
    out = torch.stack([l1, l2, linf, k_l2, k_coord, eps_inf * l1, eps_inf * math.sqrt(d) * l2])
    return out.cpu().numpy()


def _autograd_gradients(spec: Spec, params, x: torch.Tensor, labels: torch.Tensor):
    r = input_gradients(spec, params, x, labels)
    return r.loss_grad, r.logit_grad


def functional_gradients(spec: Spec, params, x: torch.Tensor, labels: torch.Tensor):
    """d_x L and d_x f_c for one draw with torch.func (vmap-able): one forward, two VJPs."""
    # torch annotates vjp's result as the 2-tuple or has_aux's 3-tuple; without has_aux it is the 2-tuple
    logits, vjp_fn = torch.func.vjp(lambda inp: forward(spec, params, inp), x)  # pyright: ignore[reportAssignmentType]
    onehot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    # d L / d logits = softmax - onehot for the cross-entropy of each sample
    (loss_grad,) = vjp_fn(torch.softmax(logits, dim=1) - onehot)
    (logit_grad,) = vjp_fn(onehot)
    return loss_grad, logit_grad


def supports_manual(spec: Spec) -> bool:
    """Whether ``manual_gradients`` handles ``spec``: a chain (every layer reads only the
    previous activation, no skip connections) of layers with a hand-written ``input_vjp``,
    each followed by a ReLU or nothing, none coupling the samples of a batch."""
    return all(
        layer.reads(l) == (l - 1,)
        and layer.has_input_vjp()
        and layer.activation_name in ("relu", "identity")
        and not layer.couples_samples
        for l, layer in enumerate(spec.layers, start=1)
    )


def couples_samples(spec: Spec) -> bool:
    """Whether a sample's output depends on the rest of its batch (batch norm with batch statistics)."""
    return any(layer.couples_samples for layer in spec.layers)


def manual_gradients(spec: Spec, params, x: torch.Tensor, labels: torch.Tensor):
    """d_x L and d_x f_c for a batch by one forward and one stacked backward pass (no autograd).

    Both input gradients are vector-Jacobian products of the same net at the same point, so
    their cotangents (softmax - onehot, and onehot) go down together as a batch of 2B, and
    each ReLU mask is applied to both halves in place. Uses the same layer definitions as
    ``verify.model.forward`` (a test checks both against finite differences).
    """
    if not supports_manual(spec):
        raise ValueError(f"manual_gradients does not handle {spec.describe()}; use input_gradients")
    h = x
    saved: list[tuple[tuple[int, ...], torch.Tensor | None]] = []
    for layer, w in zip(spec.layers, params):
        shape = tuple(h.shape)
        h = layer.apply(w, [h])
        if layer.relu:
            h = torch.relu_(h)
        saved.append((shape, h if layer.relu else None))
    logits = h
    b = x.shape[0]
    onehot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    g = torch.cat([torch.softmax(logits, dim=1) - onehot, onehot])
    for layer, w, (shape, out) in zip(reversed(spec.layers), reversed(params), reversed(saved)):
        if out is not None:
            for half in (g[:b], g[b:]):  # contiguous halves: in-place masking, no copy of the mask
                torch.ops.aten.threshold_backward.grad_input(half, out, 0, grad_input=half)
        g = layer.input_vjp(w, g, (2 * b, *shape[1:]))
        assert g is not None  # supports_manual checked has_input_vjp
    return g[:b], g[b:]


def choose_backend(spec: Spec, batch: int, backend: str = "auto") -> str:
    """The backend ``measure`` uses for ``spec``: ``backend`` itself unless it is ``auto``."""
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "manual" and not supports_manual(spec):
        raise InputError(f"backend 'manual' does not handle {spec.describe()}; use auto, autograd or vmap")
    if backend == "vmap" and couples_samples(spec):
        raise InputError(f"backend 'vmap' does not handle batch statistics ({spec.describe()}); use auto or autograd")
    if backend != "auto":
        return backend
    if supports_manual(spec):
        return "manual"
    if couples_samples(spec):
        # each sample's own gradient is a separate backward pass (verify.sampling)
        return "autograd"
    # vmap turns a layer that shares weights across positions (a convolution) into a grouped one
    shared = any(layer.shares_weights for layer in spec.layers)
    if not shared and forward_flops(spec) * batch < VMAP_MAX_FLOPS:
        return "vmap"
    return "autograd"


def use_vmap(spec: Spec, batch: int, backend: str = "auto") -> bool:
    """Whether ``measure`` evaluates ``spec`` in vmap stacks of draws."""
    return choose_backend(spec, batch, backend) == "vmap"


def draw_quantities(
    spec: Spec,
    seed: int,
    draws: Sequence[int],
    batch: int,
    *,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    inputs: str = "normal",
    base_dim: int | None = None,
    eps_inf: float = EPS_INF,
    backend: str = "auto",
    chunk: int | None = None,
) -> np.ndarray:
    """Quantities of ``draws``: shape ``(len(draws), len(QUANTITIES), batch)``.

    ``backend`` as in ``measure``; with vmap all ``draws`` are evaluated in one stack,
    otherwise one draw at a time, its inputs in pieces of at most ``chunk``.
    """
    backend = choose_backend(spec, batch, backend)
    params = [sample_params(spec, seed, i, dtype=dtype, device=device) for i in draws]
    xs = [
        sample_inputs(spec, seed, i, batch, kind=inputs, base_dim=base_dim, dtype=dtype, device=device) for i in draws
    ]
    ys = [sample_labels(spec, seed, i, batch, device=device) for i in draws]
    out = np.empty((len(draws), len(QUANTITIES), batch))
    if backend == "vmap":
        stacked = [None if w is None else torch.stack([p[j] for p in params]) for j, w in enumerate(params[0])]
        x, y = torch.stack(xs), torch.stack(ys)
        in_dims = ([None if w is None else 0 for w in stacked], 0, 0)
        fn = torch.func.vmap(lambda p, a, b: functional_gradients(spec, p, a, b), in_dims=in_dims)
        lg, kg = fn(stacked, x, y)
        for n in range(len(draws)):
            out[n] = sample_quantities(lg[n], kg[n], spec.d, eps_inf=eps_inf)
        return out
    # batch statistics are over the whole batch of a draw: never split it
    step = batch if chunk is None or couples_samples(spec) else max(1, int(chunk))
    for n in range(len(draws)):
        p = [_to_device_layout(w) for w in params[n]]
        for lo in range(0, batch, step):
            x = _to_device_layout(xs[n][lo : lo + step])
            grads = manual_gradients if backend == "manual" else _autograd_gradients
            lg, kg = grads(spec, p, x, ys[n][lo : lo + step])
            out[n, :, lo : lo + step] = sample_quantities(lg, kg, spec.d, eps_inf=eps_inf)
    return out


def _auto_chunk(spec: Spec, dtype: torch.dtype) -> int:
    """Samples per evaluation so that stored activations (and their two cotangents) fit the budget."""
    per_sample = 3 * _activation_floats(spec) * torch.finfo(dtype).bits // 8
    return max(1, _CHUNK_BYTES // per_sample)


def measure(
    specs: Sequence[Spec],
    *,
    draws: int | Sequence[int],
    batch: int,
    seed: int,
    inputs: str = "normal",
    eps_inf: float = EPS_INF,
    rt: Runtime | None = None,
    progress: bool = False,
    chunk: int | None = None,
    dtype: torch.dtype = torch.float32,
    backend: str = "auto",
) -> pd.DataFrame:
    """Monte Carlo over He initialisation: every quantity of ``QUANTITIES`` for every sample.

    For each spec: weight draws ``0..draws-1`` (or the given draw ids), ``batch`` inputs per
    draw, through the one Monte Carlo loop (``verify.montecarlo``) under the runtime ``rt``
    (device and thread policy; default: the CPU with the automatic policy). ``chunk`` caps the
    samples (draws x inputs) per evaluation (None: from a memory budget); ``backend`` is
    ``auto``, ``manual``, ``autograd`` or ``vmap``. ``inputs='upsampled'`` draws base inputs
    at the smallest spec's size and upsamples them by copying pixels.

    Returns long-format records: columns ``arch, dim, d, draw, input, quantity, value``.
    """
    draw_ids = list(range(int(draws))) if isinstance(draws, (int, np.integer)) else [int(i) for i in draws]
    if not draw_ids or batch < 1:
        raise InputError(f"draws and batch must be positive, got {len(draw_ids)} draw(s) and batch={batch}")
    if inputs not in INPUT_KINDS:
        raise InputError(f"inputs {inputs!r}: choose one of {', '.join(INPUT_KINDS)}")
    if not eps_inf > 0:
        raise InputError(f"eps_inf must be positive, got {eps_inf}")
    if not specs:
        raise InputError("measure needs at least one spec")
    if rt is None:
        rt = Runtime(torch.device("cpu"), None, "fp32", torch.get_num_threads())
    base_dim = min(s.dim for s in specs) if inputs == "upsampled" else None
    frames = [
        _measure_spec(spec, draw_ids, batch, seed, rt, dtype, inputs, base_dim, eps_inf, backend, chunk, progress)
        for spec in specs
    ]
    return pd.concat(frames, ignore_index=True)


def _measure_spec(
    spec: Spec,
    draw_ids: list[int],
    batch: int,
    seed: int,
    rt: Runtime,
    dtype: torch.dtype,
    inputs: str,
    base_dim: int | None,
    eps_inf: float,
    backend: str,
    chunk: int | None,
    progress: bool,
) -> pd.DataFrame:
    """All draws of one spec: vmap stacks of draws, or one draw at a time in input chunks."""
    chosen = choose_backend(spec, batch, backend)
    vm = chosen == "vmap"
    cap = _auto_chunk(spec, dtype) if chunk is None else max(1, int(chunk))
    group = max(1, cap // batch) if vm else 1

    def block(ids: Sequence[int]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            values = draw_quantities(
                spec,
                seed,
                ids,
                batch,
                device=rt.device,
                dtype=dtype,
                inputs=inputs,
                base_dim=base_dim,
                eps_inf=eps_inf,
                backend=chosen,
                chunk=None if vm else cap,
            )
        return block_records(ids, QUANTITIES, values)

    # Everything besides the spec and the draw id that changes a stored number (verify.store);
    # bump "revision" whenever a change of this module changes the numbers.
    key = TaskKey(
        "engine",
        seed,
        {
            "revision": 1,
            "batch": batch,
            "inputs": inputs,
            "base_dim": base_dim,
            "eps_inf": eps_inf,
            "dtype": str(dtype),
            "backend": chosen,
            "chunk": cap,
            "device": rt.device.type,
        },
    )
    return monte_carlo(
        spec,
        draw_ids,
        block,
        rt=rt,
        block_size=group,
        work_flops=forward_flops(spec) * batch,
        progress=progress,
        key=key,
    )
