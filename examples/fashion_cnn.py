"""A small convolutional net for one-channel images: a user's file for ``verify trained --model``.

    verify trained --model examples/fashion_cnn.py:fashion_cnn --data fashion-mnist --dims 28,56,112 --seeds 3

``fashion_cnn(n)`` returns the net for ``1 x n x n`` images (Fashion-MNIST and scikit-learn's
digits have one channel) with 10 logits: three 3x3 convolutions (16, 32, 32 channels; the last
two with stride 2), each followed by batch norm and ReLU, global average pooling and a linear
layer. The same parameters at every n, so only the input size changes between sizes; its
batch norm is the module's own (``verify trained`` trains it on batch statistics and measures it
on running ones). Only torch is needed.
"""

from __future__ import annotations

from torch import nn


def fashion_cnn(n: int, channels: int = 16, num_classes: int = 10) -> nn.Module:
    """The net for ``1 x n x n`` images (any n >= 4)."""
    c = channels
    return nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1, bias=False),
        nn.BatchNorm2d(c),
        nn.ReLU(),
        nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(2 * c),
        nn.ReLU(),
        nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(2 * c),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * c, num_classes),
    )
