"""The ``paper-net`` family: the CNN of the paper's Section 4.2, as the authors' code builds it.

Facts taken from the authors' code (github.com/facebookresearch/AdversarialAndDimensionality,
``nets.py`` classes ``ConvNet``, ``ConvLayer`` and ``MaxPoolOut``, ``configs/config_bcifar.txt``
and ``utils.py`` ``initialize_params``; read, not copied: that code is under a
non-commercial licence):

- 8 convolution layers (``n_layers = 8``) of 64 output channels, kernel 3x3, each preceded
  by reflection padding of ``dilation`` pixels and applied without padding: the same size as
  our reflect-padded ``Conv2d`` with ``pad = dilation * (kernel // 2)``;
- convolutions have a bias (PyTorch's default), initialised to 0;
- pooling after layers 1, 3, 5, 7 counted from 0 (``poolings = [1, 3, 5, 7]``: the 2nd,
  4th, 6th and 8th convolution), of type ``maxpool`` (a 2x2 max pool after the convolution),
  ``avgpool`` (a 2x2 average pool) or ``subsamp`` (the convolution itself with stride 2);
- the order inside one layer: pad -> conv -> pool -> batch norm -> ReLU;
- dilation ``img_size / 32`` (``dilations = 4`` at 128 px), the same for all 8 layers, so the
  parameter count does not depend on the input size;
- head ``MaxPoolOut``: a max pool over the whole remaining map (side n/16), then a linear
  layer to the classes, with a bias;
- no batch norm on the input (``normalize_inputs`` is on by default, which replaces it);
- weights normal with std ``gain / sqrt(fan_in)``, gain sqrt(2) except the last linear layer
  (``unit_gain``: gain 1), biases 0; batch norm weight 1, bias 0, running stats 0 and 1.

Two departures, both named: the toolkit's He initialisation gives the last linear layer gain
sqrt(2) too (a constant factor 2 on E||d_x f||^2, which moves no slope); and the dilation is
``n / dilation_base`` with ``dilation_base = 32`` by default, so that tests can build the same
net at small sizes (``n`` must be a multiple of it), and data of another native side can keep
dilation = upsampling factor (Fashion-MNIST: ``dilation_base = 28``; with max pooling or
strides the maps round as PyTorch's do, 28 -> 14 -> 7 -> 3).

Options: ``pool`` (max, avg or stride), ``bn`` (on or off) and ``bn_mode`` (train: batch
statistics, as while the authors' nets train and their training-time gradient norms were
logged; eval: running statistics).
"""

from __future__ import annotations

from graphs.errors import SpecError
from graphs.families import ON_OFF, PAPER_POOLS
from graphs.layers import AvgPool2d, BatchNorm, Bias, Conv2d, GlobalMaxPool, Layer, Linear, MaxPool2d
from graphs.layers.batchnorm import BN_MODES
from graphs.spec import Spec, _positive

__all__ = ["PAPER_DEPTH", "PAPER_POOL_LAYERS", "paper_net_spec"]

PAPER_DEPTH = 8
PAPER_POOL_LAYERS = (1, 3, 5, 7)  # counted from 0, as the authors' ``poolings``


def paper_net_spec(
    n: int,
    *,
    channels: int = 64,
    pool: str = "max",
    bn: str = "on",
    bn_mode: str = "train",
    dilation_base: int = 32,
    in_channels: int = 3,
    num_classes: int = 10,
) -> Spec:
    """The Section 4.2 net for ``in_channels x n x n`` images (module docstring)."""
    n = _positive("--dims", n)
    channels = _positive("--channels", channels)
    base = _positive("--dilation-base", dilation_base)
    if pool not in PAPER_POOLS:
        raise SpecError(f"--pool {pool!r}: choose one of {', '.join(PAPER_POOLS)}")
    if bn not in ON_OFF:
        raise SpecError(f"--bn {bn!r}: choose one of {', '.join(ON_OFF)}")
    if bn_mode not in BN_MODES:
        raise SpecError(f"--bn-mode {bn_mode!r}: choose one of {', '.join(BN_MODES)}")
    # Average pooling must tile its map; max pooling and stride-2 convolutions round down (up), as
    # PyTorch's do, so a 28-pixel image (Fashion-MNIST) gives maps 28, 14, 7, 3.
    if n % base or (pool == "avg" and n % 16):
        raise SpecError(
            f"paper-net: image side {n} must be a multiple of --dilation-base {base} (dilation n/{base} keeps the "
            "parameter count fixed)"
            + (" and of 16 (four 2x2 average poolings)" if pool == "avg" else "")
            + "; use e.g. --dims 32,64,128,256"
        )
    dilation = n // base
    layers: list[Layer] = []
    c = in_channels
    bn_on = bn == "on"
    for i in range(PAPER_DEPTH):
        pooled = i in PAPER_POOL_LAYERS
        stride = 2 if pooled and pool == "stride" else 1
        pool_layer = pooled and pool in ("max", "avg")
        # the ReLU follows the last operation of the layer: bias, pooling or batch norm
        layers.append(Conv2d(c, channels, 3, stride, "reflect", relu=False, dilation=dilation))
        layers.append(Bias(channels, relu=not (pool_layer or bn_on)))
        if pool_layer:
            layers.append(MaxPool2d(2, relu=not bn_on) if pool == "max" else AvgPool2d(2, relu=not bn_on))
        if bn_on:
            layers.append(BatchNorm(channels, bn_mode, relu=True))
        c = channels
    classes = _positive("--classes", num_classes)
    layers += [GlobalMaxPool(), Linear(channels, classes, relu=False), Bias(classes)]
    # ``dilation`` is derived (n / dilation_base), recorded for the report; the rest are the builder's keywords.
    opts = {
        "channels": channels,
        "pool": pool,
        "bn": bn,
        "bn_mode": bn_mode,
        "dilation_base": base,
        "dilation": dilation,
    }
    spec = Spec("paper-net", n, (in_channels, n, n), tuple(layers), opts)
    _ = spec.shapes  # validate now: a dilation too large for the last feature maps is an input error
    return spec
