"""Vocabulary and limits shared by the command line and the library, importable without torch
(``verify --help`` must not load it)."""

from __future__ import annotations

from typing import Any

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
    "TRAINED_PROFILES",
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

# ``verify trained``'s defaults of each profile; every one can be overridden by its flag. ``family`` holds family
# options set unless given (the quick profile narrows paper-net so that 112 px trains on a CPU).
TRAINED_PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "train_size": 600,
        "test_size": 80,
        "epochs": 3,
        "batch_size": 32,
        "lr": 0.003,
        "optimizer": "adam",
        "lambdas": "0.01",
        "train_pgd_steps": 2,
        "train_pgd_step_size": 0.6,
        "attack_steps": 4,
        "attack_step_size": 0.5,
        "seeds": 3,
        "family": {"paper-net": {"channels": 8}},
    },
    "full": {
        "train_size": 0,
        "test_size": 1000,
        "epochs": 20,
        "batch_size": 128,
        "lr": 0.001,
        "optimizer": "adam",
        "lambdas": "0.003,0.01,0.03",
        "train_pgd_steps": 7,
        "train_pgd_step_size": 0.2,
        "attack_steps": 10,
        "attack_step_size": 0.25,
        "seeds": 5,
        "family": {},
    },
}
