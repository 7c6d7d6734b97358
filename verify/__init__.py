"""The statistical side: torch modules from specs, Monte Carlo, fits, verdicts and the CLI."""

from verify.cli import main
from verify.model import SpecNet, build_module, forward, generator_for, init_params, nominal_fan_in, sample_params
from verify.reporting import (
    atomic_save_figure,
    atomic_write_text,
    ensure_writable_dir,
    library_versions,
    markdown_table,
    resolve_device,
)
from verify.sampling import INPUT_KINDS, InputGradients, input_gradients, sample_inputs, sample_labels

__all__ = [
    "INPUT_KINDS",
    "InputGradients",
    "input_gradients",
    "sample_inputs",
    "sample_labels",
    "SpecNet",
    "atomic_save_figure",
    "atomic_write_text",
    "build_module",
    "ensure_writable_dir",
    "forward",
    "generator_for",
    "init_params",
    "library_versions",
    "main",
    "markdown_table",
    "nominal_fan_in",
    "resolve_device",
    "sample_params",
]
