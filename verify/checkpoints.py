"""A checkpoint store for training runs: one file per (size, arm, run, epoch), self-contained.

Layout: ``ROOT/<run key>/dim-<dim>/<arm>/seed-<run>/epoch-<epoch>.pt``. The run key is a
hash of every setting that changes the numbers (``verify.checks.trained.TrainedConfig.
checkpoint_key``), so a run with other settings never resumes from these files. Each file is
written to a temporary name in its folder and renamed into place, so a killed run leaves
either a complete checkpoint or none (and perhaps a stray ``.tmp`` file, ignored and
replaced). A checkpoint is a dict of tensors, numbers and strings that
``torch.load(path, weights_only=True)`` reads back: the model's and the optimiser's state
and the epoch's held-out measurements.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointStore"]

_EPOCH = re.compile(r"^epoch-(\d+)\.pt$")


class CheckpointStore:
    """Checkpoints under ``root`` (created on the first write)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def folder(self, dim: int, arm: str, run: int) -> Path:
        return self.root / f"dim-{int(dim)}" / arm / f"seed-{int(run)}"

    def path(self, dim: int, arm: str, run: int, epoch: int) -> Path:
        return self.folder(dim, arm, run) / f"epoch-{int(epoch):04d}.pt"

    def epochs(self, dim: int, arm: str, run: int) -> list[int]:
        """The epochs with a complete checkpoint, ascending."""
        folder = self.folder(dim, arm, run)
        if not folder.is_dir():
            return []
        found = (_EPOCH.match(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def save(self, dim: int, arm: str, run: int, epoch: int, payload: dict[str, Any]) -> Path:
        """Write one checkpoint atomically (temporary file in the same folder, then rename)."""
        target = self.path(dim, arm, run, epoch)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(payload, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return target

    def load(self, dim: int, arm: str, run: int, epoch: int) -> dict[str, Any]:
        """One checkpoint, read with ``weights_only=True`` onto the CPU."""
        return torch.load(self.path(dim, arm, run, epoch), map_location="cpu", weights_only=True)

    def count(self) -> int:
        """How many complete checkpoints the store holds."""
        if not self.root.is_dir():
            return 0
        return sum(1 for p in self.root.rglob("epoch-*.pt") if _EPOCH.match(p.name))
