"""Vocabulary and limits shared by the command line and the library, importable without torch
(``verify --help`` must not load it)."""

from __future__ import annotations

__all__ = [
    "COMPARE_ARCHS",
    "COMPARE_BATCH",
    "COMPARE_DIMS",
    "COMPARE_DRAWS",
    "DEVICES",
    "EPS_INF",
    "EXACT_MAX_EDGES",
    "PRECISIONS",
    "SCALING_QUANTITIES",
]

DEVICES = ("auto", "cpu", "cuda")
# fp32: float32 with TF32 off (the default); tf32: float32 with TF32 convolutions and matmuls
# on GPUs that have them; bf16: bfloat16 weights, inputs and activations (float32
# accumulation inside the GPU's kernels). Every per-sample quantity is summed in float64.
PRECISIONS = ("fp32", "tf32", "bf16")

# networkx holds ~1 kB per edge and the Fraction DP does ~10^5 edges per second: beyond this
# the exact mode of ``verify paths`` takes minutes and gigabytes, and the operator form gives
# the same numbers in float64.
EXACT_MAX_EDGES = 2_000_000

# ``verify compare``'s default run (``verify.checks.compare`` says why these numbers).
COMPARE_ARCHS = ("strided-cnn", "avgpool-cnn", "resnet", "paper-net", "vit")
COMPARE_DIMS = (32, 64, 128)
COMPARE_DRAWS = 128
COMPARE_BATCH = 2

# The paper's larger l_inf budget (0.5% of the pixel range); ``verify.theory`` uses it. It
# scales the two vulnerability quantities, so it moves their intercept, never their slope.
EPS_INF = 0.005

# The scaling check's quantities, in the order of ``verify.theory.SCALING_PREDICTIONS`` (a test
# checks that they agree); here so that ``verify scaling --help`` can list them without numpy.
SCALING_QUANTITIES = (
    "loss_grad_l1",
    "loss_grad_l2",
    "loss_grad_linf",
    "logit_grad_l2",
    "logit_grad_coord",
    "vuln_linf",
    "vuln_l2",
)
