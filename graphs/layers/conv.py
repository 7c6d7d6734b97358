"""2-d convolution with zeros, circular or reflect padding (``dilation * (kernel // 2)`` on
each side, so a stride-1 convolution keeps the image size), optionally dilated."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Sequence

import torch
import torch.nn.functional as F

from graphs.errors import SpecError
from graphs.layers.base import Edge, Layer, Shape, register_layer, require_weight
from graphs.layers.padding import PADDINGS, pad_input, pad_input_adjoint, padded_source

__all__ = ["Conv2d"]


@register_layer
@dataclass(frozen=True)
class Conv2d(Layer):
    """``kernel x kernel`` convolution, padding ``dilation * (kernel // 2)`` of the given mode.

    ``dilation`` spaces the kernel's taps ``dilation`` pixels apart: the parameter count stays
    ``C_out C_in k^2`` while the receptive field grows (the paper's Section 4.2 nets dilate by
    n/32 so that one set of weights serves every input size). The fan-in He initialisation
    uses is ``C_in k^2`` whatever the dilation.
    """

    kind: ClassVar[str] = "conv2d"

    in_channels: int
    out_channels: int
    kernel: int = 3
    stride: int = 1
    padding: str = "zeros"
    relu: bool = True
    dilation: int = 1
    activation: str | None = None

    @property
    def pad(self) -> int:
        return self.dilation * (self.kernel // 2)

    @property
    def span(self) -> int:
        """Side of the window the dilated kernel covers."""
        return self.dilation * (self.kernel - 1) + 1

    def _out(self, n: int) -> int:
        return (n + 2 * self.pad - self.span) // self.stride + 1

    # ------------------------------------------------------------------ structure

    def output_shape(self, shapes: Sequence[Shape], index: int) -> Shape:
        prev = shapes[index - 1]
        if len(prev) != 3 or prev[0] != self.in_channels:
            raise SpecError(f"layer {index}: convolution expects {self.in_channels} input channels, got shape {prev}")
        if self.padding not in PADDINGS:
            raise SpecError(
                f"--padding: unknown padding mode {self.padding!r} (layer {index}); use one of {', '.join(PADDINGS)}"
            )
        if self.kernel < 1 or self.kernel % 2 == 0 or self.stride < 1 or self.dilation < 1:
            raise SpecError(f"layer {index}: --kernel must be odd and positive, --strides and the dilation positive")
        h, w = prev[1], prev[2]
        if self.padding == "reflect" and self.pad >= min(h, w):
            raise SpecError(
                f"--padding reflect: layer {index} pads by {self.pad}, which needs a side larger than {self.pad}, "
                f"got {h}; give larger --dims or fewer stride-2 layers"
            )
        if self.padding == "circular" and self.pad > min(h, w):
            raise SpecError(
                f"--padding circular: layer {index} pads by {self.pad}, which wraps more than once around a "
                f"{h}x{w} input; give larger --dims or a smaller --kernel"
            )
        ho, wo = self._out(h), self._out(w)
        if ho < 1 or wo < 1:
            raise SpecError(
                f"--kernel {self.kernel}: layer {index}'s convolution does not fit a {h}x{w} input; "
                "give a smaller --kernel or larger --dims"
            )
        return (self.out_channels, ho, wo)

    # ------------------------------------------------------------------ weights

    def weight_shape(self) -> Shape:
        return (self.out_channels, self.in_channels, self.kernel, self.kernel)

    def fan_in(self) -> int:
        """``C_in k^2`` whatever the padding: zero-padded border neurons have fewer in-edges (H3 fails there)."""
        return self.in_channels * self.kernel * self.kernel

    @property
    def shares_weights(self) -> bool:
        return True

    # ------------------------------------------------------------------ exact side

    def dag_edges(self, index: int, shapes: Sequence[Shape]) -> Iterator[Edge]:
        cin, h, w = shapes[index - 1]
        cout, ho, wo = shapes[index]
        k, s, p, dil = self.kernel, self.stride, self.pad, self.dilation
        src = index - 1
        for oy in range(ho):
            for ox in range(wo):
                for ky in range(k):
                    iy = padded_source(oy * s + ky * dil - p, h, self.padding)
                    if iy is None:
                        continue
                    for kx in range(k):
                        ix = padded_source(ox * s + kx * dil - p, w, self.padding)
                        if ix is None:
                            continue
                        for co in range(cout):
                            dst = (co * ho + oy) * wo + ox
                            for ci in range(cin):
                                yield (
                                    src,
                                    (ci * h + iy) * w + ix,
                                    dst,
                                    {
                                        "weight_kind": "random",
                                        "param": (index, co, ci, ky, kx),
                                        "value": None,
                                    },
                                )

    # ------------------------------------------------------------------ torch side

    def apply(
        self, weight: torch.Tensor | None, inputs: Sequence[torch.Tensor], *, structural: bool = False
    ) -> torch.Tensor:
        (h,) = inputs
        if structural:
            # All-ones weights: every output channel is the same box sum of the channel sum.
            # Computed that way (exact for integers, and C_in * C_out times less work) rather
            # than as a dense convolution, so the exact side's float64 passes stay cheap.
            s = h.sum(1, keepdim=True)
            s = pad_input(s, self.pad, self.padding) if self.padding != "zeros" else s
            ones = torch.ones((1, 1, self.kernel, self.kernel), dtype=h.dtype, device=h.device)
            pad = self.pad if self.padding == "zeros" else 0
            out = F.conv2d(s, ones, stride=self.stride, padding=pad, dilation=self.dilation)
            return out.expand(-1, self.out_channels, -1, -1)
        w = require_weight(self, weight)
        if self.padding == "zeros":
            return F.conv2d(h, w, stride=self.stride, padding=self.pad, dilation=self.dilation)
        return F.conv2d(pad_input(h, self.pad, self.padding), w, stride=self.stride, dilation=self.dilation)

    def row_sources(self, lo: int, hi: int, in_shape: Shape) -> list[int | None]:
        # output row oy reads padded rows oy*s - p + ky*dilation for ky = 0 .. k - 1
        h = in_shape[1]
        first = lo * self.stride - self.pad
        last = (hi - 1) * self.stride - self.pad + (self.kernel - 1) * self.dilation + 1
        return [padded_source(i, h, self.padding) for i in range(first, last)]

    def apply_rows(self, weight: torch.Tensor | None, rows: torch.Tensor, *, structural: bool = False) -> torch.Tensor:
        # rows carry their vertical padding already: pad horizontally only
        p = self.pad
        if structural:
            rows = rows.sum(1, keepdim=True)
            w = torch.ones((1, 1, self.kernel, self.kernel), dtype=rows.dtype, device=rows.device)
        else:
            w = require_weight(self, weight)
        if self.padding == "zeros":
            out = F.conv2d(rows, w, stride=self.stride, padding=(0, p), dilation=self.dilation)
        else:
            padded = F.pad(rows, (p, p, 0, 0), mode=self.padding) if p else rows
            out = F.conv2d(padded, w, stride=self.stride, dilation=self.dilation)
        return out.expand(-1, self.out_channels, -1, -1) if structural else out

    def input_vjp(self, weight: torch.Tensor | None, cotangent: torch.Tensor, input_shape: Shape) -> torch.Tensor:
        channels_last = torch.channels_last
        g = cotangent
        # convolution_backward reads only the shape of the input when only its gradient is asked for
        like = torch.empty(input_shape, dtype=g.dtype, device=g.device, memory_format=channels_last)
        padded = self.padding != "zeros"
        conv_in = like
        if padded:
            p = self.pad
            n, c, h, w = input_shape
            conv_in = torch.empty((n, c, h + 2 * p, w + 2 * p), dtype=g.dtype, device=g.device)
            conv_in = conv_in.contiguous(memory_format=channels_last)
        g = torch.ops.aten.convolution_backward(
            g,
            conv_in,
            require_weight(self, weight),
            None,
            [self.stride] * 2,
            [0 if padded else self.pad] * 2,
            [self.dilation] * 2,
            False,
            [0, 0],
            1,
            [True, False, False],
        )[0]
        if padded:
            g = pad_input_adjoint(g, self.pad, self.padding, like).contiguous(memory_format=channels_last)
        return g

    def flops(self, in_shapes: Sequence[Shape], out_shape: Shape) -> int:
        return 2 * math.prod(out_shape) * self.in_channels * self.kernel**2

    # ------------------------------------------------------------------ reporting

    def hypothesis_notes(self) -> dict[str, str]:
        # Only what no exact check measures: reflect padding makes one weight connect a
        # border pixel to two neurons (two perfectly correlated weights from one node).
        # (S) and H3 depend on the sizes and are measured on the net (graphs.symmetry,
        # graphs.hypotheses); H1 holds for a convolution only approximately (its kernel is
        # shared across positions), which the Monte Carlo against Eq. 13 measures.
        notes = super().hypothesis_notes()
        if self.pad and self.padding == "reflect":
            notes["H5"] = (
                "reflect padding makes one convolution weight connect a border pixel to two neurons: "
                "two perfectly correlated weights from one node"
            )
        return notes

    def describe(self) -> str:
        dil = f", d{self.dilation}" if self.dilation != 1 else ""
        return (
            f"conv2d({self.in_channels}->{self.out_channels}, k{self.kernel}, s{self.stride}{dil}, "
            f"{self.padding}{self._activation_suffix()})"
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "in_channels": int(self.in_channels),
            "out_channels": int(self.out_channels),
            "kernel": int(self.kernel),
            "stride": int(self.stride),
            "padding": str(self.padding),
            **self._activation_dict(),
        }
        # only when dilated: the fingerprint of every undilated net stays what it was
        if self.dilation != 1:
            out["dilation"] = int(self.dilation)
        return out
