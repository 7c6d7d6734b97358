"""verify.checkpoints: one file per (size, arm, run, epoch), atomic, loadable with weights_only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from verify.checkpoints import CheckpointStore


def _payload(module: nn.Module, epoch: int) -> dict:
    opt = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    module(torch.ones(2, 3)).sum().backward()
    opt.step()
    return {
        "format": 1,
        "epoch": epoch,
        "model": module.state_dict(),
        "optimizer": opt.state_dict(),
        "eval": {"loss": torch.arange(4, dtype=torch.float64)},
        "train_loss": torch.tensor([2.0, 1.5]),
        "arm": "pgd-0.01",
    }


def test_save_load_round_trip_with_weights_only(tmp_path):
    store = CheckpointStore(tmp_path / "ck")
    assert store.epochs(28, "plain", 0) == []
    assert store.count() == 0
    module = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    path = store.save(28, "plain", 0, 1, _payload(module, 1))
    assert path == tmp_path / "ck" / "dim-28" / "plain" / "seed-0" / "epoch-0001.pt"
    back = torch.load(path, weights_only=True)
    for k, v in module.state_dict().items():
        assert torch.equal(back["model"][k], v)
    assert back["arm"] == "pgd-0.01"
    assert torch.equal(back["eval"]["loss"], torch.arange(4, dtype=torch.float64))
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    fresh.load_state_dict(store.load(28, "plain", 0, 1)["model"])
    opt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    opt.load_state_dict(back["optimizer"])  # the optimiser's state survives too (momentum buffers)
    assert all("momentum_buffer" in s for s in opt.state.values())


def test_epochs_lists_complete_files_only_and_no_temporary_is_left(tmp_path):
    store = CheckpointStore(tmp_path)
    module = nn.Linear(3, 1)
    for e in (2, 0, 1):
        store.save(56, "nobn", 1, e, _payload(module, e))
    folder = store.folder(56, "nobn", 1)
    (folder / ".epoch-0003.pt.abc.tmp").write_bytes(b"half a file")  # what a kill mid-write leaves
    assert store.epochs(56, "nobn", 1) == [0, 1, 2]
    assert store.count() == 3
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "epoch-0000.pt",
        "epoch-0001.pt",
        "epoch-0002.pt",
    ]


def test_a_failed_write_leaves_nothing(tmp_path):
    store = CheckpointStore(tmp_path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        store.save(28, "plain", 0, 1, {"bad": Unpicklable()})
    assert list(store.folder(28, "plain", 0).iterdir()) == []
    assert store.epochs(28, "plain", 0) == []
