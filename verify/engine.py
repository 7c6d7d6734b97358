"""The Monte Carlo engine: per-sample input gradients of He-initialised nets, as long-format records.

For each spec (one input size) and each weight draw i, the weights come from
``sample_params(spec, seed, i)`` and the ``batch`` inputs and labels from
``sample_inputs/sample_labels(spec, seed, i, batch)``, so draw i gives the same numbers
whether it is computed alone, in a chunk or in a full run.

Three evaluation paths give the same numbers (to rounding); ``path='auto'`` picks one per spec:

- manual (sequential nets of convolutions, average poolings and dense layers, i.e. dense,
  strided-cnn and avgpool-cnn with any padding): one forward pass stores each
  ReLU output, then ONE backward pass carries both cotangents (softmax - onehot for d_x L,
  onehot for d_x f_c) stacked along the batch axis, through the transposed maps
  (``convolution_backward`` for the input only, then the adjoint of circular or reflect
  padding from ``graphs.layers``; in-place ReLU masking). Image tensors are
  channels-last, which lets oneDNN run the convolutions about three times faster on CPU than
  the default layout. On the 3x256x256 paper net this is 1.2x faster than autograd with the
  same layout and 1.4x+ faster than a per-sample ``autograd.grad`` loop
  (``bench/bench_engine.py``).
- autograd: ``verify.sampling.input_gradients`` (one forward shared by two backward
  passes), channels-last; the reference, and the path for random DAGs too large for vmap.
- vmap: ``torch.func.vmap`` over draws stacked along a new axis, so one call evaluates many
  draws and per-operation overhead is paid once per stack instead of once per draw.

Measured on 2 CPU cores (``bench/bench_engine.py`` prints it): vmap pays off only for tiny
nets without convolutions (random-dag: 1.2x, per-draw work is a few small matmuls); for
dense nets the cost is drawing the weights either way (manual is marginally faster), and for CNNs vmap turns each convolution into a
grouped one and loses the channels-last kernels (2-3x slower). ``path='auto'`` therefore
takes manual where it applies (dense nets and CNNs), else vmap for convolution-free
nets whose draw costs under ``VMAP_MAX_FLOPS`` (random DAGs), else autograd.

Threads: a draw whose forward pass costs under ``SINGLE_THREAD_FLOPS`` runs on one thread
(``threads=None``). Its operations are too small to split across cores, and with two
threads every operation is a parallel region that stalls for a scheduler quantum whenever
another process holds a core: measured on 2 cores under load, the 32x32 CNN took 6 ms per
draw on one thread in every round but up to 270 ms on two; when idle, two threads were only
10-30% faster at these sizes. Large draws (the 3x256x256 net) keep all threads.
"""

from __future__ import annotations

import math
import sys
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from graphs.errors import InputError
from graphs.layers import pad_input, pad_input_adjoint
from graphs.spec import AvgPool2d, Conv2d, Linear, MaskedLinear, Spec
from verify.model import forward, sample_params
from verify.sampling import INPUT_KINDS, input_gradients, sample_inputs, sample_labels

__all__ = [
    "QUANTITIES",
    "EPS_INF",
    "PATHS",
    "VMAP_MAX_FLOPS",
    "SINGLE_THREAD_FLOPS",
    "forward_flops",
    "functional_gradients",
    "manual_gradients",
    "supports_manual",
    "choose_path",
    "sample_quantities",
    "draw_quantities",
    "use_vmap",
    "measure",
]

QUANTITIES = (
    "loss_grad_l1",
    "loss_grad_l2",
    "loss_grad_linf",
    "logit_grad_l2",
    "logit_grad_coord",
    "vuln_linf",
    "vuln_l2",
)

# The paper's larger l_inf budget (0.5% of the pixel range). It only scales the two
# vulnerability quantities, so it moves their intercept, never their slope.
EPS_INF = 0.005

PATHS = ("auto", "manual", "autograd", "vmap")

# A convolution-free draw whose forward pass (all its inputs) costs less than this many FLOPs
# is evaluated in vmap stacks under path='auto': below it per-call overhead dominates.
VMAP_MAX_FLOPS = 1e7

# Draws (all inputs) whose forward pass costs fewer FLOPs than this run single-threaded when
# ``threads`` is left automatic (module docstring).
SINGLE_THREAD_FLOPS = 1e9

# Activation memory one evaluation may use when ``chunk`` is left automatic.
_CHUNK_BYTES = 1 << 30


def forward_flops(spec: Spec) -> int:
    """Multiply-adds times two of one sample's forward pass (pooling and ReLU not counted).

    A backward pass to the input costs the same again (the transposed maps have as many
    multiply-adds), which is how ``bench/bench_engine.py`` counts FLOPs.
    """
    total = 0
    shapes = spec.shapes
    for layer, out in zip(spec.layers, shapes[1:]):
        if isinstance(layer, Conv2d):
            total += 2 * math.prod(out) * layer.in_channels * layer.kernel**2
        elif isinstance(layer, Linear):
            total += 2 * layer.in_features * layer.out_features
        elif isinstance(layer, MaskedLinear):
            # a masked layer runs as a dense matmul over all its sources
            total += 2 * layer.in_features * layer.out_features
    return total


def _activation_floats(spec: Spec) -> int:
    return sum(spec.sizes)


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
    logits, vjp_fn = torch.func.vjp(lambda inp: forward(spec, params, inp), x)
    onehot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    # d L / d logits = softmax - onehot for the cross-entropy of each sample
    (loss_grad,) = vjp_fn(torch.softmax(logits, dim=1) - onehot)
    (logit_grad,) = vjp_fn(onehot)
    return loss_grad, logit_grad


def supports_manual(spec: Spec) -> bool:
    """Whether ``manual_gradients`` handles ``spec``: a chain of convolutions (any padding),
    average poolings and dense layers (no skip connections)."""
    for layer in spec.layers:
        if isinstance(layer, Conv2d):
            continue
        if isinstance(layer, AvgPool2d):
            if layer.relu:
                return False
        elif not isinstance(layer, Linear):
            return False
    return True


def manual_gradients(spec: Spec, params, x: torch.Tensor, labels: torch.Tensor):
    """d_x L and d_x f_c for a batch by one forward and one stacked backward pass (no autograd).

    Both input gradients are vector-Jacobian products of the same net at the same point, so
    their cotangents (softmax - onehot, and onehot) go down together as a batch of 2B, and
    each ReLU mask is applied to both halves in place. Uses the same layer definitions as
    ``verify.model.forward`` (a test checks both against finite differences).
    """
    if not supports_manual(spec):
        raise ValueError(f"manual_gradients does not handle {spec.describe()}; use input_gradients")
    channels_last = torch.channels_last
    h = x
    saved: list[tuple[tuple[int, ...], torch.Tensor | None]] = []
    for layer, w in zip(spec.layers, params):
        shape = tuple(h.shape)
        if isinstance(layer, Conv2d) and layer.padding != "zeros":
            h = F.conv2d(pad_input(layer, h), w, stride=layer.stride)
        elif isinstance(layer, Conv2d):
            h = F.conv2d(h, w, stride=layer.stride, padding=layer.pad)
        elif isinstance(layer, AvgPool2d):
            h = F.avg_pool2d(h, layer.window)
        else:
            h = F.linear(h.flatten(1), w)
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
        full = (2 * b, *shape[1:])
        if isinstance(layer, Linear):
            g = (g @ w).view(full)
            if g.dim() == 4:
                g = g.contiguous(memory_format=channels_last)
        elif isinstance(layer, Conv2d):
            # only the shape of the input is read when just the input gradient is asked for
            like = torch.empty(full, dtype=g.dtype, device=g.device, memory_format=channels_last)
            padded = layer.padding != "zeros"
            conv_in = like
            if padded:
                p = layer.pad
                conv_in = torch.empty((*full[:2], full[2] + 2 * p, full[3] + 2 * p), dtype=g.dtype, device=g.device)
                conv_in = conv_in.contiguous(memory_format=channels_last)
            g = torch.ops.aten.convolution_backward(
                g, conv_in, w, None, [layer.stride] * 2, [0 if padded else layer.pad] * 2, [1, 1], False, [0, 0], 1,
                [True, False, False],
            )[0]
            if padded:
                g = pad_input_adjoint(layer, g, like).contiguous(memory_format=channels_last)
        else:
            like = torch.empty(full, dtype=g.dtype, device=g.device, memory_format=channels_last)
            k = [layer.window] * 2
            g = torch.ops.aten.avg_pool2d_backward(g, like, k, k, [0, 0], False, True, None)
    return g[:b], g[b:]


def choose_path(spec: Spec, batch: int, path: str = "auto") -> str:
    """The path ``measure`` uses for ``spec``: ``path`` itself unless it is ``auto``."""
    if path not in PATHS:
        raise InputError(f"path {path!r}: choose one of {', '.join(PATHS)}")
    if path == "manual" and not supports_manual(spec):
        raise InputError(f"path 'manual' does not handle {spec.describe()}; use auto, autograd or vmap")
    if path != "auto":
        return path
    if supports_manual(spec):
        return "manual"
    if not any(isinstance(layer, Conv2d) for layer in spec.layers) and forward_flops(spec) * batch < VMAP_MAX_FLOPS:
        return "vmap"
    return "autograd"


def use_vmap(spec: Spec, batch: int, path: str = "auto") -> bool:
    """Whether ``measure`` evaluates ``spec`` in vmap stacks of draws."""
    return choose_path(spec, batch, path) == "vmap"


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
    path: str = "auto",
    chunk: int | None = None,
) -> np.ndarray:
    """Quantities of ``draws``: shape ``(len(draws), len(QUANTITIES), batch)``.

    ``path`` as in ``measure``; with vmap all ``draws`` are evaluated in one stack, otherwise
    one draw at a time, its inputs in pieces of at most ``chunk``.
    """
    path = choose_path(spec, batch, path)
    params = [sample_params(spec, seed, i, dtype=dtype, device=device) for i in draws]
    xs = [sample_inputs(spec, seed, i, batch, kind=inputs, base_dim=base_dim, dtype=dtype, device=device) for i in draws]
    ys = [sample_labels(spec, seed, i, batch, device=device) for i in draws]
    out = np.empty((len(draws), len(QUANTITIES), batch))
    if path == "vmap":
        stacked = [None if w is None else torch.stack([p[j] for p in params]) for j, w in enumerate(params[0])]
        x, y = torch.stack(xs), torch.stack(ys)
        in_dims = ([None if w is None else 0 for w in stacked], 0, 0)
        fn = torch.func.vmap(lambda p, a, b: functional_gradients(spec, p, a, b), in_dims=in_dims)
        lg, kg = fn(stacked, x, y)
        for n in range(len(draws)):
            out[n] = sample_quantities(lg[n], kg[n], spec.d, eps_inf=eps_inf)
        return out
    step = batch if chunk is None else max(1, int(chunk))
    for n in range(len(draws)):
        p = [_to_device_layout(w) for w in params[n]]
        for lo in range(0, batch, step):
            x = _to_device_layout(xs[n][lo : lo + step])
            grads = manual_gradients if path == "manual" else _autograd_gradients
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
    samples: int,
    batch: int,
    seed: int,
    device: str | torch.device = "cpu",
    inputs: str = "normal",
    progress: bool = True,
    chunk: int | None = None,
    eps_inf: float = EPS_INF,
    dtype: torch.dtype = torch.float32,
    path: str = "auto",
    draws: Iterable[int] | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Monte Carlo over He initialisation: every quantity of ``QUANTITIES`` for every sample.

    For each spec: weight draws ``0..samples-1`` (or the given ``draws``), ``batch`` inputs
    per draw. ``chunk`` caps the samples (draws x inputs) per evaluation (None: from a memory
    budget); ``path`` is ``auto``, ``manual``, ``autograd`` or ``vmap``; ``threads`` fixes the
    torch threads (None: one thread for small draws, torch's setting otherwise; see the
    module docstring). The thread setting is restored on return. ``inputs='upsampled'`` draws base
    inputs at the smallest spec's size and upsamples them by copying pixels.

    Returns long-format records: columns ``arch, dim, d, draw, input, quantity, value``.
    """
    if samples < 1 or batch < 1:
        raise InputError(f"samples and batch must be positive, got samples={samples}, batch={batch}")
    if inputs not in INPUT_KINDS:
        raise InputError(f"inputs {inputs!r}: choose one of {', '.join(INPUT_KINDS)}")
    if eps_inf <= 0:
        raise InputError(f"eps_inf must be positive, got {eps_inf}")
    if not specs:
        raise InputError("measure needs at least one spec")
    device = torch.device(device)
    draw_ids = list(range(samples)) if draws is None else [int(i) for i in draws]
    base_dim = min(s.dim for s in specs) if inputs == "upsampled" else None
    saved_threads = torch.get_num_threads()
    try:
        frames = [
            _measure_spec(
                spec, draw_ids, batch, seed, device, dtype, inputs, base_dim, eps_inf, path, chunk, threads, saved_threads, progress
            )
            for spec in specs
        ]
    finally:
        torch.set_num_threads(saved_threads)
    return pd.concat(frames, ignore_index=True)


def _measure_spec(
    spec: Spec,
    draw_ids: list[int],
    batch: int,
    seed: int,
    device: torch.device,
    dtype: torch.dtype,
    inputs: str,
    base_dim: int | None,
    eps_inf: float,
    path: str,
    chunk: int | None,
    threads: int | None,
    default_threads: int,
    progress: bool,
) -> pd.DataFrame:
    """All draws of one spec, under the thread setting the module docstring explains."""
    if threads is None:
        small = device.type == "cpu" and forward_flops(spec) * batch < SINGLE_THREAD_FLOPS
        threads = 1 if small else default_threads
    torch.set_num_threads(max(1, int(threads)))
    chosen = choose_path(spec, batch, path)
    vm = chosen == "vmap"
    cap = _auto_chunk(spec, dtype) if chunk is None else max(1, int(chunk))
    group = max(1, cap // batch) if vm else 1
    values = np.empty((len(draw_ids), len(QUANTITIES), batch))
    bar = tqdm(
        total=len(draw_ids),
        desc=f"{spec.family} dim={spec.dim} (d={spec.d})",
        unit="draw",
        disable=not progress,
        file=sys.stderr,
        leave=True,
    )
    with bar, torch.no_grad():
        for lo in range(0, len(draw_ids), group):
            ids = draw_ids[lo : lo + group]
            values[lo : lo + len(ids)] = draw_quantities(
                spec,
                seed,
                ids,
                batch,
                device=device,
                dtype=dtype,
                inputs=inputs,
                base_dim=base_dim,
                eps_inf=eps_inf,
                path=chosen,
                chunk=None if vm else cap,
            )
            bar.update(len(ids))
    return _records(spec, draw_ids, batch, values)


def _records(spec: Spec, draw_ids: list[int], batch: int, values: np.ndarray) -> pd.DataFrame:
    """Long format from ``values[draw, quantity, input]``."""
    n_d, n_q, n_b = values.shape
    draw = np.repeat(np.asarray(draw_ids, dtype=np.int64), n_q * n_b)
    quantity = np.tile(np.repeat(np.asarray(QUANTITIES, dtype=object), n_b), n_d)
    inp = np.tile(np.arange(n_b, dtype=np.int64), n_d * n_q)
    return pd.DataFrame(
        {
            "arch": spec.family,
            "dim": spec.dim,
            "d": spec.d,
            "draw": draw,
            "input": inp,
            "quantity": quantity,
            "value": values.reshape(-1),
        }
    )
