"""The architecture families and the options each one declares.

A family is a builder ``(dim, **options) -> Spec`` plus the declaration of its options:
keyword, command-line flag, type, default and help. The command line generates its family
flags from these declarations (``verify.cli.options``), so a family's flags, defaults and
help text live here only. Nothing here imports torch: ``verify --help`` stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from graphs.errors import InputError, SpecError

__all__ = [
    "FAMILIES",
    "HEADS",
    "IMAGE_FAMILIES",
    "ON_OFF",
    "PADDINGS",
    "PAPER_POOLS",
    "PAPER_STRIDES",
    "Family",
    "Option",
    "family",
    "int_tuple",
    "parse_option",
]

PADDINGS = ("zeros", "circular", "reflect")
PAPER_STRIDES = (1, 2, 2, 2, 2, 2)
ON_OFF = ("on", "off")
HEADS = ("avg", "max", "flatten")  # global average pooling, global max pooling, flattened map
PAPER_POOLS = ("max", "avg", "stride")
BN_MODE_CHOICES = ("train", "eval")  # graphs.layers.batchnorm.BN_MODES, without importing torch


def int_tuple(text: str, flag: str) -> tuple[int, ...]:
    """``"1,2,2"`` -> (1, 2, 2) for ``flag``; a one-line InputError names the bad part."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            value = int(part)
        except ValueError:
            raise InputError(f"{flag}: {part!r} is not an integer; give a comma-separated list like 1,2,2") from None
        if value < 1:
            raise InputError(f"{flag}: {value} is not positive; give positive integers")
        out.append(value)
    return tuple(out)


@dataclass(frozen=True)
class Option:
    """One option of a family: builder keyword ``name``, ``flag`` on the command line."""

    name: str
    flag: str
    kind: str  # "int", "float", "ints" (comma-separated positive ints) or "choice"
    default: Any
    help: str
    choices: tuple[str, ...] = ()

    def default_text(self) -> str:
        if isinstance(self.default, tuple):
            return ",".join(str(v) for v in self.default)
        return str(self.default)


def parse_option(option: Option, text: str | int | float) -> Any:
    """The value of ``option`` given on the command line (an InputError names the flag)."""
    flag = option.flag
    if option.kind == "ints":
        return int_tuple(str(text), flag)
    if option.kind == "choice":
        if text not in option.choices:
            raise InputError(f"{flag}: {text!r} is not one of {', '.join(option.choices)}")
        return text
    if option.kind == "int":
        try:
            return int(text)
        except (TypeError, ValueError):
            raise InputError(f"{flag}: {text!r} is not an integer") from None
    if option.kind == "float":
        try:
            return float(text)
        except (TypeError, ValueError):
            raise InputError(f"{flag}: {text!r} is not a number") from None
    raise ValueError(f"unknown option kind {option.kind!r}")  # pragma: no cover


@dataclass(frozen=True)
class Family:
    """An architecture family: its builder (``module:function``), what its size means, its options."""

    name: str
    builder: str
    size: str  # what --dims gives: "image side n" or "input dimension d"
    summary: str
    options: tuple[Option, ...]
    image: bool

    def build(self) -> Callable[..., Any]:
        module, func = self.builder.split(":")
        return getattr(importlib.import_module(module), func)

    def option(self, name: str) -> Option:
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(name)


_CLASSES = Option("num_classes", "--classes", "int", 10, "number of logits K")
_CNN = (
    Option("padding", "--padding", "choice", "zeros", "convolution padding mode", PADDINGS),
    Option("channels", "--channels", "int", 64, "channels of every convolution"),
    Option("strides", "--strides", "ints", PAPER_STRIDES, "stride of each convolution, comma-separated"),
    Option("kernel", "--kernel", "int", 3, "kernel side of every convolution (odd)"),
)

# Shared by resnet (default off: the theorems' setting) and paper-net (default on: the authors' net).
_BN = Option(
    "bn",
    "--bn",
    "choice",
    None,
    "batch norm after every convolution (default: off for resnet, on for paper-net)",
    ON_OFF,
)
_BN_MODE = Option(
    "bn_mode", "--bn-mode", "choice", "train", "batch statistics (train) or running statistics (eval)", BN_MODE_CHOICES
)

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "dense",
            "graphs.spec:dense_spec",
            "input dimension d",
            "fully connected ReLU layers, then a linear layer to the logits",
            (Option("widths", "--widths", "ints", (256, 256), "hidden widths, comma-separated"), _CLASSES),
            image=False,
        ),
        Family(
            "strided-cnn",
            "graphs.spec:strided_cnn_spec",
            "image side n (input 3 x n x n)",
            "the paper's section 4.1 net without batchnorm: conv 3x3 -> ReLU with strides 1,2,2,2,2,2, then dense",
            (*_CNN, _CLASSES),
            image=True,
        ),
        Family(
            "avgpool-cnn",
            "graphs.spec:avgpool_cnn_spec",
            "image side n (input 3 x n x n)",
            "the strided net with each strided conv replaced by conv(stride 1) -> ReLU -> average pooling",
            (
                *_CNN,
                Option("pools", "--pool-windows", "ints", None, "pooling windows in order (default: each stride > 1)"),
                _CLASSES,
            ),
            image=True,
        ),
        Family(
            "random-dag",
            "graphs.spec:random_dag_spec",
            "input dimension d",
            "a random layered DAG with random in-degrees and skip connections",
            (
                Option("hidden", "--hidden", "ints", (64, 64, 64), "hidden widths, comma-separated"),
                Option("max_in_degree", "--max-in-degree", "int", 8, "largest in-degree of a neuron"),
                Option("skip_prob", "--skip-prob", "float", 0.25, "chance that an edge skips layers"),
                Option("seed", "--dag-seed", "int", 0, "seed of the DAG's structure (not of the run)"),
                _CLASSES,
            ),
            image=False,
        ),
        Family(
            "resnet",
            "graphs.resnet:resnet_spec",
            "image side n (input 3 x n x n)",
            "basic-block ResNet: 3x3 stem, stages of (conv 3x3 -> ReLU -> conv 3x3 + skip -> ReLU), "
            "projection skips where the shape changes, global average pooling head, He init, optional BN",
            (
                Option("width", "--width", "int", 16, "channels of the stem and the first stage (doubling per stage)"),
                Option("blocks", "--blocks", "ints", (2, 2, 2), "basic blocks per stage, comma-separated"),
                Option("stage_strides", "--stage-strides", "ints", (1, 2, 2), "stride of each stage's first block"),
                _BN,
                _BN_MODE,
                Option("head", "--head", "choice", "avg", "global avg/max pooling or the flattened map", HEADS),
                Option(
                    "add_relu",
                    "--add-relu",
                    "choice",
                    "on",
                    "ReLU after each residual addition (off: H1 holds)",
                    ON_OFF,
                ),
                Option("padding", "--padding", "choice", "zeros", "convolution padding mode", PADDINGS),
                _CLASSES,
            ),
            image=True,
        ),
        Family(
            "paper-net",
            "graphs.paper_net:paper_net_spec",
            "image side n (input 3 x n x n; a multiple of 32)",
            "the paper's Section 4.2 net as the authors' code builds it: 8 x (reflect pad, conv 3x3 dilated n/32, "
            "bias, pool after convs 2,4,6,8, BN, ReLU), global max-pool head",
            (
                Option("channels", "--channels", "int", 64, "channels of every convolution"),
                Option("pool", "--pool", "choice", "max", "2x2 max or average pooling, or stride-2 convs", PAPER_POOLS),
                _BN,
                _BN_MODE,
                Option("dilation_base", "--dilation-base", "int", 32, "dilation is n / this (the authors: 32)"),
                _CLASSES,
            ),
            image=True,
        ),
        Family(
            "vit",
            "graphs.vit:vit_spec",
            "image side n (input 3 x n x n)",
            "a small vision transformer (patch embedding, pre-norm blocks of multi-head self-attention and a GELU "
            "MLP with residuals, layer norm, mean-token head), Monte Carlo only",
            (
                Option("patch", "--patch", "int", 4, "patch side (fixed patch size: the tokens grow like d)"),
                Option("grid", "--grid", "int", None, "tokens per side instead (fixed token count: patch n / grid)"),
                Option("depth", "--depth", "int", 2, "transformer blocks"),
                Option("embed_dim", "--embed-dim", "int", 64, "token width"),
                Option("heads", "--heads", "int", 4, "attention heads (dividing the width)"),
                Option("mlp_ratio", "--mlp-ratio", "int", 2, "MLP hidden units per token feature"),
                _CLASSES,
            ),
            image=True,
        ),
    )
}
IMAGE_FAMILIES = tuple(name for name, f in FAMILIES.items() if f.image)


def family(name: str) -> Family:
    """The family called ``name``; a one-line InputError lists the known ones."""
    if name not in FAMILIES:
        raise SpecError(f"unknown architecture {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]
