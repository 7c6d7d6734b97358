"""The ``resnet`` family: residual nets of basic blocks, He-initialised, with or without batch norm.

A 3x3 stem convolution (``width`` channels), then stages of basic blocks. Stage s has
``width * 2^s`` channels, ``blocks[s]`` blocks and stride ``stage_strides[s]`` (taken by its
first block). A basic block is

    conv 3x3 (stride) -> [BN] -> ReLU -> conv 3x3 -> [BN] -> (+ skip) -> ReLU

with an identity skip, or, where the block changes the channels or the size, a projection
skip: ``Tap`` (the block's input) -> 1x1 convolution with the block's stride -> [BN].
``add_relu="off"`` drops the ReLU after the addition (the residual stream is then never
gated): the ReLU after an addition breaks H1 by construction (``graphs.layers.add``), so
this variant is the residual net on which Eq. 13 is the theorems' own value. The
head is global average pooling (``head="avg"``, as torchvision's ResNets), global max pooling
(``"max"``) or the flattened feature map (``"flatten"``), then a linear layer with a bias.
Convolutions have no bias (batch norm would cancel it), as in torchvision.

Every layer is a kind of ``graphs.layers``, so without batch norm (``bn="off"``, the
default: the theorems' setting at initialisation) the whole exact side applies: the DAG sees
both branches of every block, path sums cover the skips, and Eq. 13 gives E||d_x f||^2 under
(H). With ``bn="on"``, ``bn_mode`` picks batch statistics (``train``, a net in training) or
the running ones (``eval``).
"""

from __future__ import annotations

import math

from graphs.errors import SpecError
from graphs.families import HEADS, ON_OFF, PADDINGS
from graphs.layers import Add, BatchNorm, Bias, Conv2d, GlobalAvgPool, GlobalMaxPool, Layer, Linear, Tap
from graphs.layers.batchnorm import BN_MODES
from graphs.spec import Spec, _positive, _shapes

__all__ = ["resnet_spec"]


def resnet_spec(
    n: int,
    *,
    width: int = 16,
    blocks: tuple[int, ...] = (2, 2, 2),
    stage_strides: tuple[int, ...] = (1, 2, 2),
    bn: str = "off",
    bn_mode: str = "train",
    head: str = "avg",
    add_relu: str = "on",
    padding: str = "zeros",
    in_channels: int = 3,
    num_classes: int = 10,
) -> Spec:
    """A basic-block ResNet for ``in_channels x n x n`` images (module docstring)."""
    n = _positive("--dims", n)
    width = _positive("--width", width)
    blocks, stage_strides = tuple(blocks), tuple(stage_strides)
    if len(blocks) != len(stage_strides) or not blocks:
        raise SpecError(
            f"--blocks gives {len(blocks)} stages and --stage-strides {len(stage_strides)}; give one of each per stage"
        )
    for flag, values in (("--blocks", blocks), ("--stage-strides", stage_strides)):
        for v in values:
            _positive(flag, v)
    if bn not in ON_OFF:
        raise SpecError(f"--bn {bn!r}: choose one of {', '.join(ON_OFF)}")
    if add_relu not in ON_OFF:
        raise SpecError(f"--add-relu {add_relu!r}: choose one of {', '.join(ON_OFF)}")
    gate = add_relu == "on"
    if bn_mode not in BN_MODES:
        raise SpecError(f"--bn-mode {bn_mode!r}: choose one of {', '.join(BN_MODES)}")
    if head not in HEADS:
        raise SpecError(f"--head {head!r}: choose one of {', '.join(HEADS)}")
    if padding not in PADDINGS:
        raise SpecError(f"unknown padding {padding!r}; use one of {', '.join(PADDINGS)}")
    use_bn = bn == "on"
    layers: list[Layer] = []

    def conv(cin: int, cout: int, kernel: int, stride: int, relu: bool) -> None:
        # with batch norm the activation moves after it
        layers.append(Conv2d(cin, cout, kernel, stride, padding, relu=relu and not use_bn))
        if use_bn:
            layers.append(BatchNorm(cout, bn_mode, relu=relu))

    conv(in_channels, width, 3, 1, True)
    c = width
    for s, (count, stride) in enumerate(zip(blocks, stage_strides)):
        w = width * 2**s
        for b in range(count):
            step = stride if b == 0 else 1
            start = len(layers)  # activation index of the block's input
            conv(c, w, 3, step, True)
            conv(w, w, 3, 1, False)
            if step != 1 or c != w:
                main_end = len(layers)
                layers.append(Tap(len(layers) + 1 - start))
                conv(c, w, 1, step, False)
                layers.append(Add(len(layers) + 1 - main_end, relu=gate))
            else:
                layers.append(Add(len(layers) + 1 - start, relu=gate))
            c = w
    if head == "avg":
        layers.append(GlobalAvgPool())
    elif head == "max":
        layers.append(GlobalMaxPool())
    shape = _shapes((in_channels, n, n), tuple(layers))[-1]
    classes = _positive("--classes", num_classes)
    layers += [Linear(math.prod(shape), classes, relu=False), Bias(classes)]
    opts = {
        "width": width,
        "blocks": blocks,
        "stage_strides": stage_strides,
        "bn": bn,
        "bn_mode": bn_mode,
        "head": head,
        "add_relu": add_relu,
        "padding": padding,
    }
    return Spec("resnet", n, (in_channels, n, n), tuple(layers), opts)
