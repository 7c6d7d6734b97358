"""The operator form in bounded memory: row bands of image layers, from the output down.

The exact side's passes over a full-size net (path sums, the (S) test's modular passes, the
in-degrees behind H3 and Eq. 13) are linear maps of the whole activation tensors: in float64
at 4096 x 4096 pixels, one 64-channel activation is 8.6 GB. For a net whose bottom layers
are *row-local* (``Layer.row_sources``: a convolution or a pooling reads a window of input
rows per output row), this module never holds such a tensor:

- the in-degree of layer l's nodes on output rows ``lo..hi-1`` is its structural map on the
  input rows those read (``degree_bands``);
- the cotangent of the multiplier network at activation 0 is produced band by band
  (``vjp_bands``): the rows of activation l that a band needs are computed from the rows of
  activation l+1 whose windows touch them (``Layer.row_sources``, inverted), recursively, up
  to the first activation above the row-local layers, which is small and computed whole once.
  Halo rows are recomputed per band; every row's value is the same sum of the same terms as
  in the whole pass, so integer (modular) passes give identical results and float64 passes
  agree to rounding (a test checks both against the whole pass).

Band heights come from a memory budget (``BAND_BYTES``); a progress bar (stderr, terminal
only) follows the bands when asked.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from graphs.layers import Layer, Shape
from graphs.spec import Spec

__all__ = [
    "BAND_BYTES",
    "STREAM_BYTES",
    "Band",
    "Multiplier",
    "band_rows",
    "collapse_broadcast",
    "degree_bands",
    "layer_degree",
    "local_prefix",
    "max_out_degree",
    "should_stream",
    "vjp_bands",
    "whole_pass_bytes",
]

# (layer index >= 1, node kind, in-degree tensor of some of its nodes) -> multiplier tensor
Multiplier = Callable[[int, str, torch.Tensor], torch.Tensor]

# Bytes the tensors of one band may take (a few copies of the largest activation's rows).
BAND_BYTES = 256 << 20
# The whole-tensor passes are used below this estimate of their peak memory, bands above it.
STREAM_BYTES = 512 << 20
# float64 copies of an activation a pass holds at once (cotangent, degrees, multipliers, products, gradients)
_COPIES = 6
EXACT_FLOAT = 2**53


def _is_row_local(spec: Spec, l: int) -> bool:
    layer = spec.layers[l - 1]
    shapes = spec.shapes
    if layer.reads(l) != (l - 1,) or len(shapes[l - 1]) != 3 or len(shapes[l]) != 3:
        return False
    return layer.row_sources(0, 1, shapes[l - 1]) is not None


def local_prefix(spec: Spec) -> int:
    """The largest t such that layers 1..t are row-local and no layer above reads below t.

    Activations 0..t are then computed in row bands; t = 0 means the exact side handles the
    whole net at once (dense nets, random DAGs).
    """
    t = 0
    while t < len(spec.layers) and _is_row_local(spec, t + 1):
        t += 1
    while t > 0 and any(min(layer.reads(l)) < t for l, layer in enumerate(spec.layers, start=1) if l > t):
        t -= 1
    return t


def whole_pass_bytes(spec: Spec, rows: int = 1) -> int:
    """Peak memory estimate of one whole-tensor pass with ``rows`` cotangent rows (outputs)."""
    return 8 * _COPIES * max(rows, 1) * max(spec.sizes)


def should_stream(spec: Spec, rows: int = 1, budget: int | None = None) -> bool:
    """Whether the exact side should go by bands: row-local bottom layers and a whole pass
    over ``budget`` bytes (default ``STREAM_BYTES``)."""
    budget = STREAM_BYTES if budget is None else budget
    return local_prefix(spec) > 0 and whole_pass_bytes(spec, rows) > budget


def band_rows(spec: Spec, rows: int = 1, budget: int | None = None) -> int:
    """Input rows per band so that one band's tensors fit ``budget`` bytes (default ``BAND_BYTES``)."""
    budget = BAND_BYTES if budget is None else budget
    t = local_prefix(spec)
    if t == 0:
        return spec.shapes[0][1] if len(spec.shapes[0]) == 3 else 1
    # rows of activation l per input row <= 1 (strides >= 1), plus halos
    per_row = max(8 * _COPIES * max(rows, 1) * s[0] * s[2] for s in spec.shapes[: t + 1])
    return int(min(spec.shapes[0][1], max(1, budget // per_row)))


def collapse_broadcast(t: torch.Tensor) -> torch.Tensor:
    """``t`` without the axes it is broadcast along (stride 0): the same values, once.

    A structural convolution's degree map is one map expanded over the output channels;
    its distinct values, or a function of them, need not touch the copies.
    """
    index = [slice(0, 1) if st == 0 and n > 1 else slice(None) for st, n in zip(t.stride(), t.shape)]
    return t[tuple(index)]


def _broadcast_dims(t: torch.Tensor) -> set[int]:
    return {k for k, (st, n) in enumerate(zip(t.stride(), t.shape)) if st == 0 and n > 1}


def _bmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a * b`` (same number of axes), computed once along the axes both are broadcast along."""
    shape = torch.broadcast_shapes(a.shape, b.shape)
    common = {
        k for k in range(len(shape)) if (a.shape[k] == 1 or a.stride(k) == 0) and (b.shape[k] == 1 or b.stride(k) == 0)
    }
    if not any(shape[k] > 1 for k in common):
        return a * b
    index = tuple(slice(0, 1) if k in common else slice(None) for k in range(len(shape)))
    return (a[index] * b[index]).expand(shape)


def _ones_rows(sources: Sequence[int | None], shape: Shape, dtype: torch.dtype) -> torch.Tensor:
    """Rows of ones (zeros where the source is padding), broadcast over channels and columns."""
    c, _, w = shape
    rows = torch.ones((1, 1, len(sources), 1), dtype=dtype)
    missing = [k for k, r in enumerate(sources) if r is None]
    if missing:
        rows[:, :, missing] = 0
    return rows.expand(1, c, len(sources), w)


def layer_degree(spec: Spec, l: int, lo: int | None = None, hi: int | None = None) -> torch.Tensor:
    """In-degree (with multiplicity) of layer ``l``'s nodes, float64, shaped like its output
    (rows ``lo..hi-1`` of an image output when given: a row-local layer only)."""
    layer = spec.layers[l - 1]
    shapes = spec.shapes
    weight = layer.structural_weight(torch.float64)
    if lo is not None:
        hi = shapes[l][1] if hi is None else hi
        src = layer.row_sources(lo, hi, shapes[l - 1])
        assert src is not None, "layer_degree with rows needs a row-local layer"
        return layer.apply_rows(weight, _ones_rows(src, shapes[l - 1], torch.float64), structural=True)[0]
    history: list[torch.Tensor | None] = [None] * l
    for j in layer.reads(l):
        history[j] = torch.ones((1, *shapes[j]), dtype=torch.float64)
    return layer.apply(weight, [history[j] for j in layer.reads(l)], structural=True)[0]  # pyright: ignore[reportArgumentType]


def degree_bands(spec: Spec, l: int, *, budget: int | None = None) -> Iterator[torch.Tensor]:
    """Layer ``l``'s in-degrees in pieces: row bands of a row-local layer (of about ``budget``
    bytes, default ``BAND_BYTES``), else the whole map."""
    budget = BAND_BYTES if budget is None else budget
    shapes = spec.shapes
    if not _is_row_local(spec, l):
        yield layer_degree(spec, l)
        return
    c, h, w = shapes[l]
    step = max(1, budget // (8 * _COPIES * max(c * w, shapes[l - 1][0] * shapes[l - 1][2])))
    for lo in range(0, h, step):
        yield layer_degree(spec, l, lo, min(h, lo + step))


def _layer_vjp_whole(layer: Layer, l: int, shapes: Sequence[Shape], cot: torch.Tensor) -> dict[int, torch.Tensor]:
    """Transpose of layer ``l``'s structural map applied to ``cot`` (whole activations)."""
    reads = layer.reads(l)
    n = cot.shape[0]
    history = [torch.zeros((n, *shapes[j]), dtype=cot.dtype, requires_grad=True) for j in reads]
    with torch.enable_grad():
        out = layer.apply(layer.structural_weight(cot.dtype), history, structural=True)
        # (out * cot).sum() rather than grad_outputs=cot: the same exact products, and
        # torch.autograd.grad's grad_outputs check imports sympy (seconds) on first use
        grads = torch.autograd.grad((out * cot.reshape(out.shape)).sum(), history, allow_unused=True)
    return {j: (torch.zeros_like(h) if g is None else g) for j, h, g in zip(reads, history, grads)}


def _rows_vjp(layer: Layer, sources: Sequence[int | None], in_shape: Shape, cot: torch.Tensor) -> torch.Tensor:
    """Transpose of ``apply_rows`` (structural) at gathered rows ``sources``, applied to ``cot``."""
    n = cot.shape[0]
    c, _, w = in_shape
    # the structural map is linear: its transpose does not depend on the point, so a broadcast zero will do
    rows = torch.zeros((), dtype=cot.dtype).expand(n, c, len(sources), w).requires_grad_()
    with torch.enable_grad():
        out = layer.apply_rows(layer.structural_weight(cot.dtype), rows, structural=True)
        (g,) = torch.autograd.grad(_bmul(out, cot).sum(), rows)
    return g


def _runs(rows: np.ndarray) -> list[tuple[int, int, int]]:
    """Contiguous runs of sorted distinct ``rows``: (start position in rows, first row, end row)."""
    if len(rows) == 0:
        return []
    cuts = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(rows)]])
    return [(int(s), int(rows[s]), int(rows[e - 1]) + 1) for s, e in zip(starts, ends)]


def _guard(t: torch.Tensor, what: str) -> None:
    # Every sum of the modular passes adds non-negative integers: a result below 2^53 proves
    # that no partial sum was rounded.
    if t.numel() and float(t.max()) >= EXACT_FLOAT:
        raise ArithmeticError(f"{what}: an intermediate reached 2^53; the modulus is too large for exact float64")


@dataclass(frozen=True)
class Band:
    """Rows ``lo..hi-1`` of the input (all of it for a vector input) and the pass's values
    there: shape ``(outputs, *input_shape with those rows)``."""

    lo: int
    hi: int
    values: torch.Tensor

    def flat_index(self, input_shape: Shape) -> np.ndarray:
        """Indices into the flattened (C-major) input of ``values[o].flatten()``."""
        if len(input_shape) != 3:
            return np.arange(self.lo, self.hi)
        c, h, w = input_shape
        ch = np.arange(c)[:, None, None]
        rr = np.arange(self.lo, self.hi)[None, :, None]
        cc = np.arange(w)[None, None, :]
        return ((ch * h + rr) * w + cc).reshape(-1)


class _Backward:
    """The multiplier network's cotangents, activation by activation, on the rows asked for."""

    def __init__(self, spec: Spec, factor: Multiplier, outputs: Sequence[int], modulus: int | None):
        self.spec = spec
        self.shapes = spec.shapes
        self.factor = factor
        self.modulus = modulus
        self.t = local_prefix(spec)
        self.readers = {
            l: _readers_of(spec.layers[l - 1], self.shapes[l - 1], self.shapes[l]) for l in range(1, self.t + 1)
        }
        self.top = self._top(list(outputs))

    def _mod(self, t: torch.Tensor, what: str) -> torch.Tensor:
        if self.modulus is None:
            return t
        c = collapse_broadcast(t)
        _guard(c, what)
        return torch.remainder(c, self.modulus).expand(t.shape)

    def _mult(self, l: int, degree: torch.Tensor) -> torch.Tensor:
        return self.factor(l, self.spec.node_kind(l), degree)

    def _top(self, outputs: list[int]) -> torch.Tensor:
        """The whole cotangent at activation t, from the chosen outputs down through layers L..t+1."""
        spec, shapes = self.spec, self.shapes
        L = len(spec.layers)
        n = len(outputs)
        top = torch.zeros((n, spec.sizes[L]), dtype=torch.float64)
        top[torch.arange(n), torch.as_tensor(outputs, dtype=torch.long)] = 1
        acc: dict[int, torch.Tensor] = {L: top.reshape((n, *shapes[L]))}
        for l in range(L, self.t, -1):
            cot = self._mod(acc.pop(l) * self._mult(l, layer_degree(spec, l)).unsqueeze(0), f"layer {l} product")
            for j, g in _layer_vjp_whole(spec.layers[l - 1], l, shapes, cot).items():
                acc[j] = self._mod(acc[j] + g if j in acc else g, f"layer {j} sum")
        return acc[self.t]

    def rows(self, l: int, rows: np.ndarray) -> torch.Tensor:
        """Cotangent at activation ``l`` (< t: image) on ``rows``: ``(n, C_l, len(rows), W_l)``."""
        if l == self.t:
            return self.top[:, :, torch.as_tensor(rows, dtype=torch.long)]
        layer = self.spec.layers[l]  # layer l + 1 reads activation l
        above = np.unique(np.concatenate([self.readers[l + 1][r] for r in rows]))
        cot_above = self.rows(l + 1, above)
        c, _, w = self.shapes[l]
        where = np.full(self.shapes[l][1], -1, dtype=np.int64)
        where[rows] = np.arange(len(rows))
        pieces = []
        for start, lo, hi in _runs(above):
            piece = cot_above[:, :, start : start + hi - lo]
            mult = self._mult(l + 1, layer_degree(self.spec, l + 1, lo, hi)).unsqueeze(0)
            piece = self._mod(_bmul(piece, mult), f"layer {l + 1} product")
            sources = layer.row_sources(lo, hi, self.shapes[l])
            assert sources is not None
            pieces.append((sources, _rows_vjp(layer, sources, self.shapes[l], piece)))
        # a structural convolution's transpose is the same for every input channel: keep one
        flat_channels = all(1 in _broadcast_dims(g) for _, g in pieces)
        n = cot_above.shape[0]
        out = torch.zeros((n, 1 if flat_channels else c, len(rows), w), dtype=torch.float64)
        for sources, g in pieces:
            _scatter_rows(out, g[:, :1] if flat_channels else g, sources, where)
        out = self._mod(out, f"layer {l} sum")
        return out.expand(n, c, len(rows), w) if flat_channels else out


def vjp_bands(
    spec: Spec,
    factor: Multiplier,
    outputs: Sequence[int],
    *,
    modulus: int | None = None,
    budget: int | None = None,
    band: int | None = None,
    progress: bool = False,
    desc: str = "operator pass",
) -> Iterator[Band]:
    """Rows ``sum_{paths x->o} prod m(p)`` of the multiplier network (edge into p weighs
    ``factor(layer, kind, in-degree)``), one ``Band`` of inputs at a time, for each output o.

    ``modulus``: exact integer arithmetic mod p (the (S) test), every intermediate guarded
    below 2^53. ``band`` fixes the input rows per band (default from ``budget``). Without
    row-local bottom layers the whole input is one band.
    """
    outputs = [int(o) for o in outputs]
    back = _Backward(spec, factor, outputs, modulus)
    shape0 = spec.shapes[0]
    if back.t == 0:
        yield Band(0, spec.d if len(shape0) != 3 else shape0[1], back.top.reshape((len(outputs), *shape0)))
        return
    height = shape0[1]
    step = band if band is not None else band_rows(spec, len(outputs), budget)
    step = max(1, min(int(step), height))
    from tqdm import tqdm

    with tqdm(
        total=height,
        desc=desc,
        unit="row",
        disable=not (progress and sys.stderr.isatty()),
        file=sys.stderr,
        leave=False,
    ) as bar:
        for lo in range(0, height, step):
            hi = min(height, lo + step)
            yield Band(lo, hi, back.rows(0, np.arange(lo, hi)))
            bar.update(hi - lo)


def _readers_of(layer: Layer, in_shape: Shape, out_shape: Shape) -> list[np.ndarray]:
    """For each input row of a row-local layer: the output rows that read it."""
    found: list[list[int]] = [[] for _ in range(in_shape[1])]
    for oy in range(out_shape[1]):
        for r in layer.row_sources(oy, oy + 1, in_shape) or []:
            if r is not None:
                found[r].append(oy)
    return [np.unique(np.asarray(f, dtype=np.int64)) for f in found]


def max_out_degree(spec: Spec, *, budget: int | None = None) -> int:
    """Largest out-degree (with multiplicity) of any node: the transposed all-ones maps of the
    layers, in row bands of the input where one row-local layer alone reads an activation."""
    budget = BAND_BYTES if budget is None else budget
    shapes = spec.shapes
    readers_of: dict[int, list[int]] = {}
    for l, layer in enumerate(spec.layers, start=1):
        for j in layer.reads(l):
            readers_of.setdefault(j, []).append(l)
    best = 1.0
    for j, layers in readers_of.items():
        if len(layers) == 1 and _is_row_local(spec, layers[0]):
            l = layers[0]
            best = max(best, _banded_out_degree(spec.layers[l - 1], shapes[j], shapes[l], budget))
            continue
        total: torch.Tensor | None = None
        for l in layers:
            ones = torch.ones((1, *shapes[l]), dtype=torch.float64)
            g = _layer_vjp_whole(spec.layers[l - 1], l, shapes, ones)[j]
            total = g if total is None else total + g
        if total is not None and total.numel():
            best = max(best, float(total.max()))
    return int(best)


def _banded_out_degree(layer: Layer, in_shape: Shape, out_shape: Shape, budget: int) -> float:
    c_in, h_in, w_in = in_shape
    c, _, w_out = out_shape
    readers = _readers_of(layer, in_shape, out_shape)
    step = max(1, budget // (8 * _COPIES * max(c * w_out, c_in * w_in)))
    best = 0.0
    for lo in range(0, h_in, step):
        rows = np.arange(lo, min(h_in, lo + step))
        above = np.unique(np.concatenate([readers[r] for r in rows]))
        where = np.full(h_in, -1, dtype=np.int64)
        where[rows] = np.arange(len(rows))
        pieces = []
        for _, a, b in _runs(above):
            sources = layer.row_sources(a, b, in_shape)
            assert sources is not None
            ones = torch.ones((), dtype=torch.float64).expand(1, c, b - a, w_out)
            pieces.append((sources, _rows_vjp(layer, sources, in_shape, ones)))
        flat_channels = all(1 in _broadcast_dims(g) for _, g in pieces)
        acc = torch.zeros((1, 1 if flat_channels else c_in, len(rows), w_in), dtype=torch.float64)
        for sources, g in pieces:
            _scatter_rows(acc, g[:, :1] if flat_channels else g, sources, where)
        best = max(best, float(acc.max()))
    return best


def _scatter_rows(acc: torch.Tensor, g: torch.Tensor, sources: Sequence[int | None], where: np.ndarray) -> None:
    """``acc[:, :, where[r]] += g[:, :, k]`` for each gathered row k of source row r kept in ``acc``."""
    pos = np.array([-1 if r is None else where[r] for r in sources], dtype=np.int64)
    keep = np.flatnonzero(pos >= 0)
    if len(keep):
        acc.index_add_(2, torch.as_tensor(pos[keep]), g[:, :, torch.as_tensor(keep)])
