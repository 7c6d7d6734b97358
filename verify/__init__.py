"""The statistical side of the toolkit: checks of the theorems, their result types, statistics and CLI.

Run a check from Python with its config object and read its typed result::

    from graphs import build_spec
    from verify import ScalingConfig, check_scaling

    specs = tuple(build_spec("strided-cnn", n, padding="circular") for n in (16, 32, 64))
    result = check_scaling(ScalingConfig(specs, draws=32))
    result.claims          # one Claim per quantity: verdict, interval, hypotheses
    result.records         # long format: arch, dim, d, draw, input, quantity, value

Importing ``verify`` has no side effects and is cheap: every name below is loaded from its
module on first use (PEP 562), so the command line starts without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verify.attacks import (
        ATTACK_NORMS,
        PGD_NORMS,
        dual_exponent,
        dual_norm,
        lp_norm,
        norm_label,
        optimal_attack,
        parse_norm,
        pgd_attack,
        pgd_linear_efficiency,
        project,
        random_start,
    )
    from verify.checks.calibrate import CalibrateConfig, CalibrateResult, check_calibrate
    from verify.checks.compare import CompareConfig, CompareResult, check_compare
    from verify.checks.first_order import FirstOrderConfig, FirstOrderResult, check_first_order
    from verify.checks.flip_distance import FlipConfig, FlipResult, check_flip_distance
    from verify.checks.lemma9 import Lemma9Config, Lemma9Result, check_lemma9
    from verify.checks.paths import PathsConfig, PathsResult, check_paths
    from verify.checks.pooling import PoolingConfig, PoolingResult, check_pooling
    from verify.checks.scaling import ScalingConfig, ScalingResult, check_scaling
    from verify.checks.second_moments import SecondMomentAgreement, second_moment_agreement
    from verify.cli import main
    from verify.engine import (
        BACKENDS,
        QUANTITIES,
        choose_backend,
        forward_flops,
        functional_gradients,
        manual_gradients,
        measure,
        sample_quantities,
    )
    from verify.losses import augmented_loss, cross_entropy_loss, penalized_loss, prop3_difference
    from verify.model import Params, SpecNet, build_module, forward, init_params, sample_params, trainable_module
    from verify.montecarlo import RECORD_COLUMNS, block_records, monte_carlo
    from verify.results import Claim, Interval, RunInfo, Verdict
    from verify.runtime import Runtime, resolve_device, runtime
    from verify.sampling import INPUT_KINDS, InputGradients, input_gradients, sample_inputs, sample_labels
    from verify.stats import (
        AsymptoticFit,
        Proportion,
        SlopeFit,
        band_verdict,
        binomial_interval,
        bootstrap_interval,
        bound_verdict,
        draw_means,
        expected_max_abs_normal,
        fit_asymptotic_power_law,
        fit_power_law,
        holm,
        ols_slope,
        rejection_verdict,
        samples_to_settle,
        t_interval,
    )
    from verify.theory import (
        EPS_INF,
        SCALING_PREDICTIONS,
        SCALING_QUANTITIES,
        Prediction,
        eps_for_norm,
        theorem11_ratio,
    )
    from verify.trace import TraceResult, trace_module
    from verify.usermodel import UserModel, model_specs
    from verify.version import __version__

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "Verdict": "verify.results",
    "Interval": "verify.results",
    "Claim": "verify.results",
    "RunInfo": "verify.results",
    "SlopeFit": "verify.stats",
    "band_verdict": "verify.stats",
    "bound_verdict": "verify.stats",
    "rejection_verdict": "verify.stats",
    "bootstrap_interval": "verify.stats",
    "t_interval": "verify.stats",
    "ols_slope": "verify.stats",
    "holm": "verify.stats",
    "fit_power_law": "verify.stats",
    "draw_means": "verify.stats",
    "samples_to_settle": "verify.stats",
    "expected_max_abs_normal": "verify.stats",
    "AsymptoticFit": "verify.stats",
    "Proportion": "verify.stats",
    "binomial_interval": "verify.stats",
    "fit_asymptotic_power_law": "verify.stats",
    "EPS_INF": "verify.theory",
    "SCALING_PREDICTIONS": "verify.theory",
    "SCALING_QUANTITIES": "verify.theory",
    "Prediction": "verify.theory",
    "eps_for_norm": "verify.theory",
    "theorem11_ratio": "verify.theory",
    "Runtime": "verify.runtime",
    "runtime": "verify.runtime",
    "resolve_device": "verify.runtime",
    "RECORD_COLUMNS": "verify.montecarlo",
    "monte_carlo": "verify.montecarlo",
    "block_records": "verify.montecarlo",
    "BACKENDS": "verify.engine",
    "QUANTITIES": "verify.engine",
    "measure": "verify.engine",
    "manual_gradients": "verify.engine",
    "functional_gradients": "verify.engine",
    "choose_backend": "verify.engine",
    "forward_flops": "verify.engine",
    "sample_quantities": "verify.engine",
    "Params": "verify.model",
    "SpecNet": "verify.model",
    "build_module": "verify.model",
    "forward": "verify.model",
    "init_params": "verify.model",
    "sample_params": "verify.model",
    "trainable_module": "verify.model",
    "INPUT_KINDS": "verify.sampling",
    "InputGradients": "verify.sampling",
    "input_gradients": "verify.sampling",
    "sample_inputs": "verify.sampling",
    "sample_labels": "verify.sampling",
    "ATTACK_NORMS": "verify.attacks",
    "PGD_NORMS": "verify.attacks",
    "dual_exponent": "verify.attacks",
    "dual_norm": "verify.attacks",
    "lp_norm": "verify.attacks",
    "norm_label": "verify.attacks",
    "optimal_attack": "verify.attacks",
    "parse_norm": "verify.attacks",
    "pgd_attack": "verify.attacks",
    "pgd_linear_efficiency": "verify.attacks",
    "project": "verify.attacks",
    "random_start": "verify.attacks",
    "augmented_loss": "verify.losses",
    "cross_entropy_loss": "verify.losses",
    "penalized_loss": "verify.losses",
    "prop3_difference": "verify.losses",
    "ScalingConfig": "verify.checks.scaling",
    "CompareConfig": "verify.checks.compare",
    "CompareResult": "verify.checks.compare",
    "check_compare": "verify.checks.compare",
    "TraceResult": "verify.trace",
    "trace_module": "verify.trace",
    "UserModel": "verify.usermodel",
    "model_specs": "verify.usermodel",
    "ScalingResult": "verify.checks.scaling",
    "check_scaling": "verify.checks.scaling",
    "PathsConfig": "verify.checks.paths",
    "PathsResult": "verify.checks.paths",
    "check_paths": "verify.checks.paths",
    "PoolingConfig": "verify.checks.pooling",
    "PoolingResult": "verify.checks.pooling",
    "check_pooling": "verify.checks.pooling",
    "SecondMomentAgreement": "verify.checks.second_moments",
    "second_moment_agreement": "verify.checks.second_moments",
    "Lemma9Config": "verify.checks.lemma9",
    "Lemma9Result": "verify.checks.lemma9",
    "check_lemma9": "verify.checks.lemma9",
    "FirstOrderConfig": "verify.checks.first_order",
    "FirstOrderResult": "verify.checks.first_order",
    "check_first_order": "verify.checks.first_order",
    "CalibrateConfig": "verify.checks.calibrate",
    "CalibrateResult": "verify.checks.calibrate",
    "check_calibrate": "verify.checks.calibrate",
    "FlipConfig": "verify.checks.flip_distance",
    "FlipResult": "verify.checks.flip_distance",
    "check_flip_distance": "verify.checks.flip_distance",
    "main": "verify.cli",
    "__version__": "verify.version",
}

__all__ = [
    "ATTACK_NORMS",
    "BACKENDS",
    "EPS_INF",
    "INPUT_KINDS",
    "PGD_NORMS",
    "QUANTITIES",
    "RECORD_COLUMNS",
    "SCALING_PREDICTIONS",
    "SCALING_QUANTITIES",
    "AsymptoticFit",
    "CalibrateConfig",
    "CalibrateResult",
    "Claim",
    "CompareConfig",
    "CompareResult",
    "FirstOrderConfig",
    "FirstOrderResult",
    "FlipConfig",
    "FlipResult",
    "InputGradients",
    "Interval",
    "Lemma9Config",
    "Lemma9Result",
    "Params",
    "PathsConfig",
    "PathsResult",
    "PoolingConfig",
    "PoolingResult",
    "Prediction",
    "Proportion",
    "RunInfo",
    "Runtime",
    "ScalingConfig",
    "ScalingResult",
    "SecondMomentAgreement",
    "SlopeFit",
    "SpecNet",
    "TraceResult",
    "UserModel",
    "Verdict",
    "__version__",
    "augmented_loss",
    "band_verdict",
    "binomial_interval",
    "block_records",
    "bootstrap_interval",
    "bound_verdict",
    "build_module",
    "check_calibrate",
    "check_compare",
    "check_first_order",
    "check_flip_distance",
    "check_lemma9",
    "check_paths",
    "check_pooling",
    "check_scaling",
    "choose_backend",
    "cross_entropy_loss",
    "draw_means",
    "dual_exponent",
    "dual_norm",
    "eps_for_norm",
    "expected_max_abs_normal",
    "fit_asymptotic_power_law",
    "fit_power_law",
    "forward",
    "forward_flops",
    "functional_gradients",
    "holm",
    "init_params",
    "input_gradients",
    "lp_norm",
    "main",
    "manual_gradients",
    "measure",
    "model_specs",
    "monte_carlo",
    "norm_label",
    "ols_slope",
    "optimal_attack",
    "parse_norm",
    "penalized_loss",
    "pgd_attack",
    "pgd_linear_efficiency",
    "project",
    "prop3_difference",
    "random_start",
    "rejection_verdict",
    "resolve_device",
    "runtime",
    "sample_inputs",
    "sample_labels",
    "sample_params",
    "sample_quantities",
    "samples_to_settle",
    "second_moment_agreement",
    "t_interval",
    "theorem11_ratio",
    "trace_module",
    "trainable_module",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'verify' has no attribute {name!r}")
    # A user's graphs.py beside their script would otherwise fail deep inside, as "'graphs' is not a package".
    from verify.installation import require_installation

    require_installation()
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
