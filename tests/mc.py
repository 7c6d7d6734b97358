"""The one helper that compares a Monte Carlo estimate with its exact value."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["assert_mc_close"]


def assert_mc_close(samples, exact: float, *, k: float = 4.0, what: str = "estimate") -> None:
    """Assert ``|mean(samples) - exact| <= k * sigma / sqrt(n)``; print both on failure.

    ``samples`` are independent draws of the quantity whose expectation is ``exact``; with
    k = 4 a correct estimator fails about once in 16,000 runs (Gaussian tail), and seeds in
    tests are fixed, so a failure means a real discrepancy.
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    n = x.size
    if n < 2:
        raise ValueError("need at least two samples to estimate a standard error")
    mean = float(x.mean())
    sigma = float(x.std(ddof=1))
    tol = k * sigma / math.sqrt(n)
    if not abs(mean - exact) <= tol:
        raise AssertionError(
            f"{what}: Monte Carlo mean {mean:.6g} vs exact {exact:.6g}: "
            f"|difference| {abs(mean - exact):.3g} > {k} sigma/sqrt(n) = {tol:.3g} (sigma {sigma:.3g}, n {n})"
        )
