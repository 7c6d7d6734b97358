"""verify.data: the IDX reader, the offline data sets, subsets and pixel-copy upsampling."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from graphs.errors import InputError
from verify.data import DEFAULT_FASHION_DIR, FASHION_INSTALL, load_data, read_idx, upsample, upsample_tensor


def _idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}
    head = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write(path: Path, array: np.ndarray, *, gz: bool = True) -> None:
    data = _idx_bytes(array)
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def _fake_fashion(folder: Path, n_train: int = 30, n_test: int = 12, *, gz: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for name, a in arrays.items():
        _write(folder / name, a, gz=gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-5, 7, 1 << 20], dtype=np.int32),
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
    ],
)
def test_read_idx_round_trips(tmp_path, array, gz):
    _write(tmp_path / "a", array, gz=gz)
    back = read_idx(tmp_path / ("a.gz" if gz else "a"))
    assert back.dtype == array.dtype
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_read_idx_refuses_bad_and_truncated_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(InputError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    good = _idx_bytes(np.zeros((4, 2), dtype=np.uint8))
    (tmp_path / "short").write_bytes(good[:-1])
    with pytest.raises(InputError, match="truncated"):
        read_idx(tmp_path / "short")


def test_fashion_loader_scales_subsets_and_reproduces(tmp_path):
    arrays = _fake_fashion(tmp_path, gz=False)
    full = load_data("fashion-mnist", data_dir=tmp_path)
    assert full.train_x.shape == (30, 1, 28, 28)
    assert full.test_x.shape == (12, 1, 28, 28)
    assert full.train_x.dtype == np.float32
    np.testing.assert_array_equal(full.train_x[:, 0] * 255, arrays["train-images-idx3-ubyte"].astype(np.float32))
    np.testing.assert_array_equal(full.test_y, arrays["t10k-labels-idx1-ubyte"])
    sub = load_data("fashion-mnist", data_dir=tmp_path, train_size=10, test_size=5, seed=3)
    again = load_data("fashion-mnist", data_dir=tmp_path, train_size=10, test_size=5, seed=3)
    other = load_data("fashion-mnist", data_dir=tmp_path, train_size=10, test_size=5, seed=4)
    assert sub.train_x.shape[0] == 10
    assert sub.test_x.shape[0] == 5
    np.testing.assert_array_equal(sub.train_x, again.train_x)
    assert not np.array_equal(sub.train_y, other.train_y) or not np.array_equal(sub.train_x, other.train_x)
    # the subset is a subset: every chosen image is one of the full set's
    flat = {row.tobytes() for row in full.train_x}
    assert all(row.tobytes() in flat for row in sub.train_x)
    assert (sub.full_train, sub.full_test, sub.classes) == (30, 12, 10)


def test_missing_fashion_mnist_names_the_install_command(tmp_path):
    with pytest.raises(InputError) as info:
        load_data("fashion-mnist", data_dir=tmp_path / "nowhere")
    message = str(info.value)
    assert FASHION_INSTALL in message
    assert "--data-dir" in message
    assert "\n" not in message


@pytest.mark.skipif(not Path(DEFAULT_FASHION_DIR).is_dir(), reason=f"Fashion-MNIST not installed ({FASHION_INSTALL})")
def test_the_installed_fashion_mnist_test_set():
    folder = Path(DEFAULT_FASHION_DIR)
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28)
    assert images.dtype == np.uint8
    assert labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [1000] * 10


def test_digits_are_bundled_and_split():
    data = load_data("digits", test_size=50)
    assert data.train_x.shape == (1500, 1, 8, 8)
    assert data.test_x.shape == (50, 1, 8, 8)
    assert data.train_x.min() >= 0
    assert data.train_x.max() <= 1
    assert data.classes == 10
    with pytest.raises(InputError, match="--data-dir applies"):
        load_data("digits", data_dir="/tmp")
    with pytest.raises(InputError, match="--data"):
        load_data("cifar")


def test_upsample_copies_pixels_the_same_way_for_numpy_and_torch():
    x = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    up = upsample(x, 2)
    assert up.shape == (2, 1, 6, 6)
    np.testing.assert_array_equal(up[:, :, ::2, ::2], x)
    np.testing.assert_array_equal(up[:, :, 1::2, 1::2], x)
    np.testing.assert_array_equal(up[:, :, ::2, 1::2], x)
    np.testing.assert_array_equal(upsample_tensor(torch.from_numpy(x), 2).numpy(), up)
    assert upsample(x, 1) is x
    # the same information at every size: the mean and the set of values are unchanged
    assert up.mean() == pytest.approx(x.mean())
    assert set(up.ravel()) == set(x.ravel())
