"""Image data sets for training, offline: Fashion-MNIST from its IDX files, scikit-learn's digits.

Nothing is downloaded. Fashion-MNIST is read from the IDX files that Debian's
``dataset-fashion-mnist`` package installs (``DEFAULT_FASHION_DIR``) or from ``--data-dir``;
the IDX format (a big-endian header: two zero bytes, a type code, the number of axes, then
one uint32 per axis, then the values) is read with ``gzip`` and ``numpy`` alone, gzipped or
not. The digits (1797 images of 8x8, values 0..16) ship with scikit-learn.

Images are float32 in [0, 1] (``pixel range`` 1), shape ``(N, 1, side, side)``. Subsets
(``train_size``, ``test_size``) are drawn without replacement from ``Stream.DATA_SUBSET`` of
the run seed, so one seed gives one subset at every size and in every arm. The input size is
varied as the paper does it: the same images upsampled by copying pixels (``upsample``), so
the information content is the same at every d.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from graphs.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DATASETS",
    "DEFAULT_FASHION_DIR",
    "FASHION_INSTALL",
    "ImageData",
    "load_data",
    "load_digits_data",
    "load_fashion_mnist",
    "read_idx",
    "upsample",
    "upsample_tensor",
]

DEFAULT_FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_INSTALL = "apt-get install dataset-fashion-mnist"
DATASETS = ("fashion-mnist", "digits")
# name -> (native side, classes): known before anything is loaded, for validating --dims
NATIVE_SIDE = {"fashion-mnist": 28, "digits": 8}

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FASHION_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzipped when its name ends in ``.gz``)."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise InputError(f"{str(p)!r} is not an IDX file (bad magic number); point --data-dir at the IDX files")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(v) for v in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - header != count * dtype.itemsize:
        raise InputError(
            f"{str(p)!r}: the header announces shape {shape} but the file holds {len(raw) - header} bytes of data; "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


@dataclass(frozen=True)
class ImageData:
    """Training and held-out images (``(N, C, side, side)`` float32 in [0, 1]) and labels."""

    name: str
    train_x: np.ndarray = field(repr=False)
    train_y: np.ndarray = field(repr=False)
    test_x: np.ndarray = field(repr=False)
    test_y: np.ndarray = field(repr=False)
    classes: int
    source: str  # where the files came from, for the report
    full_train: int  # sizes of the whole sets the subsets were drawn from
    full_test: int

    @property
    def side(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def mean(self) -> float:
        """Pixel mean of the training images (the inputs are normalised with it)."""
        return float(self.train_x.mean(dtype=np.float64))

    @property
    def std(self) -> float:
        """Pixel standard deviation of the training images."""
        return float(self.train_x.std(dtype=np.float64))


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def load_fashion_mnist(data_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The four Fashion-MNIST arrays from ``data_dir`` (default: Debian's package folder)."""
    folder = Path(data_dir or DEFAULT_FASHION_DIR)
    found = {k: _find(folder, stem) for k, stem in _FASHION_FILES.items()}
    missing = [_FASHION_FILES[k] for k, v in found.items() if v is None]
    if missing:
        hint = (
            f"install them with `{FASHION_INSTALL}`"
            if data_dir is None
            else f"pass --data-dir with the folder of the IDX files, or install them with `{FASHION_INSTALL}`"
        )
        raise InputError(f"fashion-mnist: {', '.join(missing)} not found in {str(folder)!r}; {hint}")
    out = {k: read_idx(p) for k, p in found.items() if p is not None}
    for split in ("train", "test"):
        x, y = out[f"{split}_x"], out[f"{split}_y"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise InputError(
                f"fashion-mnist {split}: images of shape {x.shape} and labels of shape {y.shape} do not match"
            )
    return out


def load_digits_data() -> dict[str, np.ndarray]:
    """scikit-learn's bundled digits, split 1500 / 297 in their stored order."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InputError(
            "--data digits needs scikit-learn; install it with `python3 -m pip install scikit-learn`"
        ) from None
    bunch = load_digits()
    images = np.asarray(bunch["images"], dtype=np.float32) / 16.0  # pyright: ignore[reportCallIssue, reportArgumentType]
    labels = np.asarray(bunch["target"], dtype=np.int64)  # pyright: ignore[reportCallIssue, reportArgumentType]
    return {"train_x": images[:1500], "train_y": labels[:1500], "test_x": images[1500:], "test_y": labels[1500:]}


def _subset(n_total: int, size: int, seed: int, split: int) -> np.ndarray:
    from graphs.rng import Stream, numpy_rng

    if size <= 0 or size >= n_total:
        return np.arange(n_total)
    return np.sort(numpy_rng(Stream.DATA_SUBSET, seed, split).choice(n_total, size=size, replace=False))


def load_data(
    name: str, *, data_dir: str | os.PathLike | None = None, train_size: int = 0, test_size: int = 0, seed: int = 0
) -> ImageData:
    """Data set ``name`` (``DATASETS``), with subsets of ``train_size`` / ``test_size`` images
    (0: all) drawn from ``Stream.DATA_SUBSET`` of ``seed``."""
    if name not in DATASETS:
        raise InputError(f"--data {name!r}: choose one of {', '.join(DATASETS)}")
    if name == "fashion-mnist":
        arrays = load_fashion_mnist(data_dir)
        source = str(Path(data_dir or DEFAULT_FASHION_DIR))
        scale = 255.0
    else:
        if data_dir is not None:
            raise InputError("--data-dir applies to --data fashion-mnist only (the digits ship with scikit-learn)")
        arrays = load_digits_data()
        source = "scikit-learn load_digits()"
        scale = 1.0
    full_train, full_test = len(arrays["train_y"]), len(arrays["test_y"])
    tr = _subset(full_train, train_size, seed, 0)
    te = _subset(full_test, test_size, seed, 1)

    def images(x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float32) / np.float32(scale))[:, None, :, :]

    labels = np.concatenate([arrays["train_y"], arrays["test_y"]])
    return ImageData(
        name=name,
        train_x=images(arrays["train_x"][tr]),
        train_y=np.asarray(arrays["train_y"][tr], dtype=np.int64),
        test_x=images(arrays["test_x"][te]),
        test_y=np.asarray(arrays["test_y"][te], dtype=np.int64),
        classes=int(labels.max()) + 1,
        source=source,
        full_train=full_train,
        full_test=full_test,
    )


def upsample(x: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upsampling by an integer ``factor``: each pixel becomes a
    ``factor x factor`` block (arrays ``(..., side, side)``)."""
    if factor == 1:
        return x
    return np.repeat(np.repeat(x, factor, axis=-2), factor, axis=-1)


def upsample_tensor(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``upsample`` for torch tensors (on their device)."""
    if factor == 1:
        return x
    return x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
