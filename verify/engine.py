"""The Monte Carlo engine: per-sample input gradients of He-initialised nets, as long-format records.

For each spec (one input size) and each weight draw i, the weights come from
``sample_params(spec, seed, i)`` and the ``batch`` inputs and labels from
``sample_inputs/sample_labels(spec, seed, i, batch)``, so draw i gives the same numbers
whether it is computed alone, in a chunk or in a full run (on the CPU bit for bit; a test
checks it), and the same weights and inputs on every device (``verify.draws``).

Four evaluation backends give the same numbers (to rounding); ``backend='auto'`` picks one
per spec and device:

- manual (chains of layers that each read only the previous activation and have a
  hand-written adjoint, ``Layer.input_vjp``: dense, strided-cnn and avgpool-cnn with any
  padding): one forward pass stores each ReLU output, then ONE backward pass carries both
  cotangents (softmax - onehot for d_x L, onehot for d_x f_c) stacked along the batch axis,
  through each layer's transposed map (for a convolution ``convolution_backward`` for the
  input only, then the adjoint of circular or reflect padding; in-place ReLU masking).
  Image tensors are channels-last, which lets oneDNN run the convolutions about three times
  faster on CPU than the default layout. The CPU default for chains.
- autograd: ``verify.sampling.input_gradients`` (one forward shared by two backward
  passes), channels-last; the reference, and the CPU backend for layer kinds without a
  hand-written adjoint (skip connections, max pooling, activations other than ReLU, whole
  torch modules: a user's ``--model``, the ViT) too large for vmap. Under batch statistics
  (batch norm in train mode) the samples of a batch are coupled: each sample's own gradient is
  then two backward passes of its own (``verify.sampling.input_gradients`` says what it
  means), the batch of a draw is never split into chunks, and vmap is never used.
- vmap: ``torch.func.vmap`` of ``functional_gradients`` over G draws stacked along a new
  axis, so one call evaluates G draws: a convolution with a different kernel per draw
  becomes one grouped convolution, and per-operation overhead is paid once per group. G is
  picked by the engine (``group_size``) from the device's free memory. The CUDA default for
  every net (there it is where the card is used at all: one draw of 2 inputs is far too
  little work for a GPU), with the group step replayed from a CUDA graph
  (``verify.capture``) and the next draws sampled on CPU threads meanwhile
  (``verify.draws.Prefetcher``). On a CPU only for tiny nets without convolutions.

Measured on 2 CPU cores (``bench/bench_engine.py`` prints it): vmap pays off on a CPU only
for tiny nets without convolutions (random-dag: 1.2x, per-draw work is a few small
matmuls); for dense nets the cost is drawing the weights either way, and for CNNs vmap turns
each convolution into a grouped one and loses the channels-last kernels (2-3x slower).

Threads, device and precision come from the runtime (``verify.runtime``): small draws run on
one thread, large ones on the thread count a ``ThreadTuner`` finds faster while the run goes
(results do not depend on it); ``precision='bf16'`` evaluates in bfloat16 and
``precision_error`` measures what that (or TF32, or float32 itself) costs against float64.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence, overload

import numpy as np
import pandas as pd
import torch

from graphs.errors import InputError
from graphs.spec import Spec
from verify.capture import GraphedStep
from verify.draws import Draw, DrawSampler, Prefetcher, default_workers, stack_draws
from verify.model import forward
from verify.montecarlo import block_records, monte_carlo
from verify.runtime import SINGLE_THREAD_FLOPS, Runtime
from verify.sampling import INPUT_KINDS, input_gradients
from verify.store import TaskKey
from verify.theory import EPS_INF, SCALING_QUANTITIES

__all__ = [
    "BACKENDS",
    "EPS_INF",
    "MAX_GROUP",
    "QUANTITIES",
    "SINGLE_THREAD_FLOPS",
    "VMAP_MAX_FLOPS",
    "PrecisionError",
    "choose_backend",
    "couples_samples",
    "draw_bytes",
    "draw_quantities",
    "forward_flops",
    "functional_gradients",
    "group_size",
    "manual_gradients",
    "measure",
    "precision_error",
    "quantity_tensor",
    "sample_quantities",
    "stacked_quantities",
    "supports_manual",
    "use_vmap",
]

# The quantities and the vulnerability budget are the theory's (verify.theory).
QUANTITIES = SCALING_QUANTITIES

BACKENDS = ("auto", "manual", "autograd", "vmap")

# A convolution-free draw whose forward pass (all its inputs) costs less than this many FLOPs
# is evaluated in vmap stacks under backend='auto' on a CPU: below it per-call overhead dominates.
VMAP_MAX_FLOPS = 1e7

# Activation memory one evaluation may use on a CPU when ``chunk`` is left automatic.
_CHUNK_BYTES = 1 << 30
# Share of the GPU's free memory one group of draws may use, and the largest group: beyond
# ~128 draws of the smallest nets a group is already thousands of samples per kernel.
_GPU_MEMORY_SHARE = 0.5
MAX_GROUP = 128
# Bytes a sample needs per activation float: the stored activation, the two stacked
# cotangents, and room for the grouped convolution's workspace (vmap backend).
_BYTES_FACTOR = 4


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


def quantity_tensor(
    loss_grad: torch.Tensor, logit_grad: torch.Tensor, d: int, *, eps_inf: float = EPS_INF
) -> torch.Tensor:
    """Per-sample quantities as a float64 tensor of shape ``(len(QUANTITIES), B)`` on the gradients' device.

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
    return torch.stack([l1, l2, linf, k_l2, k_coord, eps_inf * l1, eps_inf * math.sqrt(d) * l2])


def sample_quantities(
    loss_grad: torch.Tensor, logit_grad: torch.Tensor, d: int, *, eps_inf: float = EPS_INF
) -> np.ndarray:
    """Per-sample quantities, shape ``(len(QUANTITIES), B)`` in float64, from gradients of shape ``(B, ...)``."""
    return quantity_tensor(loss_grad, logit_grad, d, eps_inf=eps_inf).cpu().numpy()


def _one_hot(labels: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    # F.one_hot checks the labels' range on the host, which a CUDA graph cannot record;
    # a comparison gives the same 0/1 matrix without leaving the device.
    return (labels.unsqueeze(-1) == torch.arange(classes, device=labels.device)).to(dtype)


def _autograd_gradients(spec: Spec, params, x: torch.Tensor, labels: torch.Tensor):
    r = input_gradients(spec, params, x, labels)
    return r.loss_grad, r.logit_grad


def functional_gradients(spec: Spec, params, x: torch.Tensor, labels: torch.Tensor):
    """d_x L and d_x f_c for one draw with torch.func (vmap-able): one forward, two VJPs."""
    # torch annotates vjp's result as the 2-tuple or has_aux's 3-tuple; without has_aux it is the 2-tuple
    logits, vjp_fn = torch.func.vjp(lambda inp: forward(spec, params, inp), x)  # pyright: ignore[reportAssignmentType]
    onehot = _one_hot(labels, logits.shape[-1], logits.dtype)
    # d L / d logits = softmax - onehot for the cross-entropy of each sample
    (loss_grad,) = vjp_fn(torch.softmax(logits, dim=-1) - onehot)
    (logit_grad,) = vjp_fn(onehot)
    return loss_grad, logit_grad


def stacked_quantities(
    spec: Spec, params: Sequence[torch.Tensor | None], x: torch.Tensor, labels: torch.Tensor, *, eps_inf: float
) -> torch.Tensor:
    """Quantities of G stacked draws in one call: ``(G, len(QUANTITIES), B)`` float64 on the device.

    ``params[l]`` is ``(G, *weight_shape)`` (None for constant weights), ``x`` is
    ``(G, B, *input_shape)`` and ``labels`` ``(G, B)``; ``functional_gradients`` is mapped
    over the first axis with ``torch.func.vmap``.
    """
    in_dims = ([None if w is None else 0 for w in params], 0, 0)
    fn = torch.func.vmap(lambda p, a, b: functional_gradients(spec, p, a, b), in_dims=in_dims)
    lg, kg = fn(list(params), x, labels)
    g, b = x.shape[0], x.shape[1]
    q = quantity_tensor(lg.reshape(g * b, -1), kg.reshape(g * b, -1), spec.d, eps_inf=eps_inf)
    return q.view(len(QUANTITIES), g, b).permute(1, 0, 2)


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
    onehot = _one_hot(labels, logits.shape[1], logits.dtype)
    g = torch.cat([torch.softmax(logits, dim=1) - onehot, onehot])
    for layer, w, (shape, out) in zip(reversed(spec.layers), reversed(params), reversed(saved)):
        if out is not None:
            for half in (g[:b], g[b:]):  # contiguous halves: in-place masking, no copy of the mask
                torch.ops.aten.threshold_backward.grad_input(half, out, 0, grad_input=half)
        g = layer.input_vjp(w, g, (2 * b, *shape[1:]))
        assert g is not None  # supports_manual checked has_input_vjp
    return g[:b], g[b:]


def choose_backend(spec: Spec, batch: int, backend: str = "auto", device: torch.device | str | None = None) -> str:
    """The backend ``measure`` uses for ``spec`` on ``device`` (default the CPU): ``backend``
    itself unless it is ``auto``."""
    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "manual" and not supports_manual(spec):
        raise InputError(f"backend 'manual' does not handle {spec.describe()}; use auto, autograd or vmap")
    if backend == "vmap" and couples_samples(spec):
        raise InputError(f"backend 'vmap' does not handle batch statistics ({spec.describe()}); use auto or autograd")
    if backend != "auto":
        return backend
    if device is not None and torch.device(device).type == "cuda":
        # a GPU needs many draws at once to be busy; batch statistics cannot be vmapped per sample
        return "autograd" if couples_samples(spec) else "vmap"
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


def use_vmap(spec: Spec, batch: int, backend: str = "auto", device: torch.device | str | None = None) -> bool:
    """Whether ``measure`` evaluates ``spec`` in vmap stacks of draws."""
    return choose_backend(spec, batch, backend, device) == "vmap"


def draw_bytes(spec: Spec, batch: int, dtype: torch.dtype) -> int:
    """Memory one draw of ``batch`` inputs needs in an evaluation (activations, cotangents, workspace)."""
    return _BYTES_FACTOR * _activation_floats(spec) * batch * torch.finfo(dtype).bits // 8


def group_size(
    spec: Spec,
    batch: int,
    *,
    draws: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    chunk: int | None = None,
    memory: int | None = None,
) -> int:
    """Draws per vmap call, picked by the engine: as many as fit in memory, at most ``MAX_GROUP``,
    and balanced so that the last group is not much smaller than the others.

    The budget is ``memory`` bytes when given, else half the GPU's free memory on CUDA and
    1 GiB on a CPU; ``chunk`` (samples per evaluation) caps it as well.
    """
    device = torch.device(device)
    if memory is None:
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            memory = int(free * _GPU_MEMORY_SHARE)
        else:
            memory = _CHUNK_BYTES
    cap = max(1, memory // max(1, draw_bytes(spec, batch, dtype)))
    if chunk is not None:
        cap = min(cap, max(1, int(chunk) // batch))
    cap = max(1, min(cap, MAX_GROUP, draws))
    groups = -(-draws // cap)
    return -(-draws // groups)


class _Evaluator:
    """Quantities of blocks of draws of one spec on one device: ``(len(ids), len(QUANTITIES), batch)``."""

    def __init__(
        self,
        spec: Spec,
        batch: int,
        *,
        device: torch.device,
        backend: str,
        eps_inf: float,
        chunk: int | None,
        graphs: bool,
    ):
        self.spec = spec
        self.batch = batch
        self.device = device
        self.backend = backend
        self.eps_inf = eps_inf
        # batch statistics are over the whole batch of a draw: never split it
        self.chunk = chunk
        self.step = batch if chunk is None or couples_samples(spec) else max(1, int(chunk))
        self.graphs = graphs and device.type == "cuda"
        self._steps: dict[int, GraphedStep] = {}

    def _stacked(self, params, x, y) -> torch.Tensor:
        return stacked_quantities(self.spec, params, x, y, eps_inf=self.eps_inf)

    def __call__(self, draws: Sequence[Draw]) -> np.ndarray:
        if self.backend == "vmap":
            try:
                return self._group(draws)
            except torch.cuda.OutOfMemoryError:
                # the memory estimate of group_size was short (a workspace, another process):
                # halve the group rather than fail the run
                if len(draws) == 1:
                    raise
                torch.cuda.empty_cache()
                self.graphs = False
                half = len(draws) // 2
                return np.concatenate([self(draws[:half]), self(draws[half:])])
        out = np.empty((len(draws), len(QUANTITIES), self.batch))
        grads = manual_gradients if self.backend == "manual" else _autograd_gradients
        for n, draw in enumerate(draws):
            p = [None if w is None else _to_device_layout(w.to(self.device)) for w in draw.params]
            x, y = draw.x.to(self.device), draw.y.to(self.device)
            for lo in range(0, self.batch, self.step):
                lg, kg = grads(self.spec, p, _to_device_layout(x[lo : lo + self.step]), y[lo : lo + self.step])
                out[n, :, lo : lo + self.step] = sample_quantities(lg, kg, self.spec.d, eps_inf=self.eps_inf)
        return out

    def _group(self, draws: Sequence[Draw]) -> np.ndarray:
        g = len(draws)
        captured = [n for n, s in self._steps.items() if s.captured and n > g]
        if captured and g not in self._steps:
            # a short last group rides in the captured graph, padded with its last draw: a second
            # graph would hold a second memory pool of the size group_size budgeted for one
            n = min(captured)
            return self._group([*draws, *([draws[-1]] * (n - g))])[:g]
        stacked = stack_draws(draws, self.device)
        step = self._steps.get(g)
        if step is None:
            step = self._steps[g] = GraphedStep(self._stacked, enabled=self.graphs)
        return step(stacked.params, stacked.x, stacked.y).cpu().numpy()

    @property
    def fallback_reason(self) -> str | None:
        """Why a CUDA graph capture fell back to eager calls (None when none did)."""
        return next((s.fallback_reason for s in self._steps.values() if s.fallback_reason), None)


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
    graphs: bool = False,
) -> np.ndarray:
    """Quantities of ``draws``: shape ``(len(draws), len(QUANTITIES), batch)``.

    ``backend`` as in ``measure`` (``auto`` picks for ``device``); with vmap all ``draws``
    are evaluated in one stack, otherwise one draw at a time, its inputs in pieces of at most
    ``chunk``. ``graphs``: replay the vmap step from a CUDA graph (CUDA only).
    """
    device = torch.device(device)
    backend = choose_backend(spec, batch, backend, device)
    sampler = DrawSampler(spec, seed, batch, dtype, inputs, base_dim)
    evaluate = _Evaluator(
        spec,
        batch,
        device=device,
        backend=backend,
        eps_inf=eps_inf,
        chunk=None if backend == "vmap" else chunk,
        graphs=graphs,
    )
    with torch.no_grad():
        return evaluate([sampler.sample(i) for i in draws])


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
    (device, thread policy and precision; default: the CPU with the automatic policy, fp32).
    ``chunk`` caps the samples (draws x inputs) per evaluation (None: from a memory budget);
    ``backend`` is ``auto``, ``manual``, ``autograd`` or ``vmap``. ``inputs='upsampled'``
    draws base inputs at the smallest spec's size and upsamples them by copying pixels.
    ``dtype`` float32 becomes bfloat16 under ``rt.precision == 'bf16'``.

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
    """All draws of one spec: vmap groups of draws, or one draw at a time in input chunks."""
    from verify.allocator import retain_freed_memory

    chosen = choose_backend(spec, batch, backend, rt.device)
    cdtype = rt.compute_dtype(dtype)
    vm = chosen == "vmap"
    if vm:
        cap = chunk if chunk is not None else (None if rt.device.type == "cuda" else _auto_chunk(spec, cdtype))
        group = group_size(spec, batch, draws=len(draw_ids), device=rt.device, dtype=cdtype, chunk=cap)
    else:
        group = 1
    cuda = rt.device.type == "cuda"
    sampler = DrawSampler(spec, seed, batch, cdtype, inputs, base_dim, pin=cuda)
    workers = default_workers(rt.device) if rt.prefetch is None else max(0, int(rt.prefetch))
    evaluate = _Evaluator(
        spec,
        batch,
        device=rt.device,
        backend=chosen,
        eps_inf=eps_inf,
        chunk=None if vm else (_auto_chunk(spec, cdtype) if chunk is None else chunk),
        graphs=rt.cuda_graphs and -(-len(draw_ids) // group) >= 3,
    )
    work = forward_flops(spec) * batch
    tuner = rt.thread_tuner(work)

    def block(ids: Sequence[int]) -> dict[str, np.ndarray]:
        draws = prefetch.get(ids)
        threads = tuner.next() if tuner is not None else None
        if threads is not None:
            torch.set_num_threads(threads)
        start = time.perf_counter()
        with torch.no_grad():
            values = evaluate(draws)
        if tuner is not None and threads is not None:
            tuner.record(threads, time.perf_counter() - start, len(ids))
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
            "dtype": str(cdtype),
            "backend": chosen,
            "chunk": evaluate.chunk,
            "device": rt.device.type,
        },
    )
    # keep whole groups of draws ahead (at least 2 draws) while the device computes
    with retain_freed_memory(), Prefetcher(sampler, draw_ids, workers=workers, lookahead=max(2, 2 * group)) as prefetch:
        return monte_carlo(spec, draw_ids, block, rt=rt, block_size=group, work_flops=work, progress=progress, key=key)


@dataclass(frozen=True)
class PrecisionError:
    """How far the run's arithmetic moves the per-sample quantities from float64 (one draw)."""

    precision: str
    dim: int
    draw: int
    max_relative: float  # over every quantity and sample of the draw
    by_quantity: dict[str, float]

    def describe(self) -> str:
        name = {
            "fp32": "fp32 (float32, TF32 off)",
            "tf32": "tf32 (TF32 convolutions and matmuls where the GPU has them)",
            "bf16": "bf16 (bfloat16 nets, float64 sums)",
        }.get(self.precision, self.precision)
        return (
            f"{name}: per-sample quantities within {self.max_relative:.1e} (relative) of float64 "
            f"on draw {self.draw} at dim {self.dim}, measured in this run"
        )


def precision_error(
    spec: Spec,
    *,
    seed: int,
    batch: int,
    rt: Runtime | None = None,
    draw: int = 0,
    inputs: str = "normal",
    base_dim: int | None = None,
    eps_inf: float = EPS_INF,
    backend: str = "auto",
    values: np.ndarray | None = None,
) -> PrecisionError:
    """Draw ``draw`` in the run's precision against the same draw in float64, on the run's device and backend.

    ``values`` (shape ``(len(QUANTITIES), batch)``): the draw's quantities as the run measured
    them, which saves evaluating it again; only the float64 draw is then computed.
    """
    if rt is None:
        rt = Runtime(torch.device("cpu"), None, "fp32", torch.get_num_threads())

    def one(dtype: torch.dtype) -> np.ndarray:
        return draw_quantities(
            spec,
            seed,
            [draw],
            batch,
            device=rt.device,
            dtype=dtype,
            inputs=inputs,
            base_dim=base_dim,
            eps_inf=eps_inf,
            backend=backend,
        )[0]

    run = one(rt.compute_dtype(torch.float32)) if values is None else np.asarray(values, dtype=np.float64)
    ref = one(torch.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(ref != 0, np.abs(run / ref - 1), np.where(run == 0, 0.0, np.inf))
    by = {q: float(rel[k].max()) for k, q in enumerate(QUANTITIES)}
    return PrecisionError(rt.precision, spec.dim, draw, float(rel.max()), by)
