"""Vocabulary and limits shared by the command line and the library, importable without torch
(``verify --help`` must not load it)."""

from __future__ import annotations

__all__ = [
    "COMPARE_ARCHS",
    "COMPARE_BATCH",
    "COMPARE_DIMS",
    "COMPARE_DRAWS",
    "DEVICES",
    "EXACT_MAX_EDGES",
    "PRECISIONS",
]

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "tf32")

# networkx holds ~1 kB per edge and the Fraction DP does ~10^5 edges per second: beyond this
# the exact mode of ``verify paths`` takes minutes and gigabytes, and the operator form gives
# the same numbers in float64.
EXACT_MAX_EDGES = 2_000_000

# ``verify compare``'s default run (``verify.checks.compare`` says why these numbers).
COMPARE_ARCHS = ("strided-cnn", "avgpool-cnn", "resnet", "paper-net", "vit")
COMPARE_DIMS = (32, 64, 128)
COMPARE_DRAWS = 128
COMPARE_BATCH = 2
