"""Architectures side by side: the scaling check of each, one table of slopes.

``check_compare(config)`` runs ``verify.checks.scaling.check_scaling`` on every architecture
of ``config.archs`` over the same sizes and draws, and puts beside each fitted slope what the
exact side says of that architecture:

- the hypotheses it breaks (by construction of its layer kinds, and (S), (S-bounded), H3 at
  the sizes checked), or that it has no exact side at all;
- where Eq. 13 has a value (no max pooling, no batch statistics, ReLU or no activation), the
  slope of ``sqrt(E||d_x f||_2^2)`` under (H) against d: 0 for Theorem 5's nets, -1/2 when
  every path averages over ~d positions (Theorem 10), whatever the Monte Carlo finds.

An architecture is ``ARCH`` (a family, with the comparison's default options: ``DEFAULTS``)
or ``ARCH:FLAG=VALUE:...`` (family flags without the dashes, tuples with dots:
``resnet:blocks=2.2.2:bn=on``), so variants of one family compare too, or
``model=FILE.py:FACTORY``: a user's module (``verify.usermodel``, image inputs, He draws).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from graphs.errors import InputError
from graphs.spec import Spec
from verify.checks.scaling import ScalingConfig, ScalingResult, check_scaling
from verify.progress import Progress, as_progress
from verify.results import Claim
from verify.settings import COMPARE_ARCHS, COMPARE_BATCH, COMPARE_DIMS, COMPARE_DRAWS
from verify.stats import ols_slope
from verify.theory import EPS_INF

__all__ = [
    "DEFAULTS",
    "DEFAULT_ARCHS",
    "DEFAULT_BATCH",
    "DEFAULT_DIMS",
    "DEFAULT_DRAWS",
    "QUANTITIES",
    "ArchResult",
    "CompareConfig",
    "CompareResult",
    "check_compare",
    "eq13_values",
    "parse_arch",
]

DEFAULT_ARCHS = COMPARE_ARCHS
DEFAULT_DIMS = COMPARE_DIMS
QUANTITIES = ("vuln_linf", "vuln_l2", "logit_grad_l2")
# The default command runs five architectures at three sizes: measured on 2 loaded CPU cores
# (load ~10), one draw of all five at 32, 64 and 128 px costs about 1 s with the options below
# (the 128 px paper-net with batch statistics ~0.23 s, the others ~0.1 s), so 128 draws keep
# the whole command near three minutes; 95% intervals come out about +-0.03 to +-0.08 wide.
DEFAULT_DRAWS = COMPARE_DRAWS
DEFAULT_BATCH = COMPARE_BATCH
# Narrower than the families' defaults to keep that budget; no slope depends on the width.
DEFAULTS: dict[str, dict[str, Any]] = {
    "strided-cnn": {"channels": 16},
    "avgpool-cnn": {"channels": 16},
    "resnet": {"width": 8, "blocks": (1, 1, 1)},
    "paper-net": {"channels": 16},
    "vit": {"patch": 8, "embed_dim": 32},
}


def parse_arch(text: str) -> tuple[str, str, dict[str, Any]]:
    """``ARCH[:FLAG=VALUE...]`` -> (label, family, builder options); an InputError names the bad part."""
    from graphs.families import FAMILIES, parse_option

    if str(text).strip().startswith("model="):
        return text.strip(), "model", {"ref": str(text).strip()[len("model=") :]}
    parts = [p.strip() for p in str(text).split(":")]
    name = parts[0]
    if name not in FAMILIES:
        raise InputError(f"--archs: unknown architecture {name!r}; choose from {', '.join(FAMILIES)}")
    fam = FAMILIES[name]
    by_flag = {o.flag.lstrip("-"): o for o in fam.options}
    opts: dict[str, Any] = dict(DEFAULTS.get(name, {}))
    for part in parts[1:]:
        flag, sep, value = part.partition("=")
        option = by_flag.get(flag.strip())
        if not sep or option is None:
            raise InputError(
                f"--archs {text!r}: {part!r} is not FLAG=VALUE with a flag of {name} ({', '.join(sorted(by_flag))})"
            )
        raw = value.strip().replace(".", ",") if option.kind == "ints" else value.strip()
        try:
            opts[option.name] = parse_option(option, raw)
        except InputError as exc:
            raise type(exc)(f"--archs {text!r}: {exc}") from None
    return text.strip(), name, opts


@dataclass(frozen=True)
class CompareConfig:
    """What to compare: architectures (``parse_arch`` strings), sizes, and the scaling settings.

    Every architecture is built (hence validated) here, before any work. ``preflight``, when
    given, refuses a ``verify.memory.Plan`` (the command's memory check): a random DAG's masks
    and each size of a user's module are checked before they are allocated
    (``verify.usermodel.model_specs``); the whole run's plan is the command's to check
    (``verify.memory.compare_plan``).
    """

    archs: tuple[str, ...] = DEFAULT_ARCHS
    dims: tuple[int, ...] = DEFAULT_DIMS
    draws: int = DEFAULT_DRAWS
    batch: int = DEFAULT_BATCH
    seed: int = 0
    eps_inf: float = EPS_INF
    margin: float = 0.05
    n_boot: int = 2000
    preflight: Callable[[Any], None] | None = field(default=None, repr=False, compare=False)
    specs: tuple[tuple[Spec, ...], ...] = field(init=False, repr=False, compare=False)
    parsed: tuple[tuple[str, str, dict], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from graphs.spec import build_spec

        if not self.archs:
            raise InputError("--archs: give at least one architecture")
        if len(set(self.archs)) != len(self.archs):
            raise InputError("--archs: an architecture is given twice")
        parsed = tuple(parse_arch(a) for a in self.archs)

        def build(label: str, name: str, opts: dict) -> tuple[Spec, ...]:
            from verify import memory

            try:
                if name == "model":
                    from verify.usermodel import UserModel, model_specs

                    return tuple(model_specs(UserModel(opts["ref"]), list(self.dims), preflight=self.preflight))
                out = []
                for n in self.dims:
                    if name == "random-dag" and self.preflight is not None:
                        self.preflight(memory.Plan((memory.random_dag_build(n, opts, f"--dims {n}"),)))
                    out.append(build_spec(name, n, **opts))
                return tuple(out)
            except InputError as exc:
                raise type(exc)(f"--archs {label}: {exc}") from None

        specs = [build(*p) for p in parsed]
        object.__setattr__(self, "parsed", parsed)
        object.__setattr__(self, "specs", tuple(specs))
        for s in specs:  # validates sizes, draws, batch, margin as the scaling check does
            self.scaling_config(s)

    def scaling_config(self, specs: Sequence[Spec]) -> ScalingConfig:
        return ScalingConfig(
            tuple(specs),
            draws=self.draws,
            batch=self.batch,
            seed=self.seed,
            quantities=QUANTITIES,
            eps_inf=self.eps_inf,
            margin=self.margin,
            n_boot=self.n_boot,
        )

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for label, _, _ in self.parsed)

    def settings(self) -> dict:
        """Every setting that changes the numbers (for the JSON ``run`` and the report): per
        architecture its family and every option it was built with (the family's defaults and
        the comparison's included; for a user's module the file, factory, digests and modes,
        ``verify.usermodel.model_settings``) and its d's."""
        return {
            "archs": list(self.archs),
            "families": {label: specs[0].family for label, specs in zip(self.labels, self.specs)},
            "options": {
                label: {k: list(v) if isinstance(v, tuple) else v for k, v in specs[0].family_options().items()}
                for label, specs in zip(self.labels, self.specs)
            },
            "d": {label: [s.d for s in specs] for label, specs in zip(self.labels, self.specs)},
            "dims": list(self.dims),
            "draws": self.draws,
            "batch": self.batch,
            "seed": self.seed,
            "eps_inf": self.eps_inf,
            "margin": self.margin,
            "n_boot": self.n_boot,
            "quantities": list(QUANTITIES),
        }


def eq13_values(specs: Sequence[Spec]) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """``E||d_x f_c||_2^2`` under (H) (Eq. 13, the init's variances) at each size, or None and why not."""
    from graphs.moments import moment_obstacles, predicted_logit_grad_sq
    from graphs.spec import exact_view

    values = []
    for spec in specs:
        view, obstacles = exact_view(spec)
        if view is None:
            return None, obstacles
        blocked = moment_obstacles(view)
        if blocked:
            return None, blocked
        values.append(predicted_logit_grad_sq(view, variance="init"))
    return np.asarray(values), ()


@dataclass(frozen=True)
class ArchResult:
    """One architecture: its scaling result and the exact side's prediction beside it."""

    label: str
    family: str
    options: dict
    scaling: ScalingResult
    eq13: np.ndarray | None = field(repr=False)  # E||d_x f||^2 under (H) per size
    eq13_slope: float | None  # slope of sqrt(eq13) against d
    eq13_obstacles: tuple[str, ...]
    notes: dict[str, str]  # hypothesis -> why this architecture breaks it by construction

    def fit(self, quantity: str):
        return self.scaling.fits()[quantity]

    def claim(self, quantity: str) -> Claim:
        return next(q.claim for q in self.scaling.quantities if q.prediction.quantity == quantity)


@dataclass(frozen=True)
class CompareResult:
    """Everything ``check_compare`` measured and concluded."""

    config: CompareConfig
    archs: tuple[ArchResult, ...]

    @property
    def claims(self) -> list[Claim]:
        out = []
        for a in self.archs:
            for q in QUANTITIES[:2]:
                c = a.claim(q)
                out.append(
                    Claim(
                        f"{a.label}: {c.name}",
                        c.statement,
                        c.predicted,
                        c.estimate,
                        c.interval,
                        c.verdict,
                        c.hypotheses_needed,
                        c.hypotheses_broken,
                        c.note,
                    )
                )
        return out

    @property
    def records(self) -> pd.DataFrame:
        return pd.concat([a.scaling.records.assign(arch=a.label) for a in self.archs], ignore_index=True)


def check_compare(config: CompareConfig, *, rt=None, progress: bool | Progress = False) -> CompareResult:
    """Run the comparison (module docstring); ``rt`` is a ``verify.runtime.Runtime``;
    ``progress``: one stderr line per phase of each architecture (``verify.progress``), named
    ``compare: LABEL: ...``."""
    prog = as_progress(progress, "compare")
    out = []
    for (label, name, opts), specs in zip(config.parsed, config.specs):
        arch = Progress(f"{prog.name}: {label}", prog.enabled, prog.stream)
        scaling = check_scaling(config.scaling_config(specs), rt=rt, progress=arch)
        with arch.phase(f"Eq. 13 under (H) at {len(specs)} sizes"):
            eq13, obstacles = eq13_values(specs)
        slope = None
        if eq13 is not None and np.all(eq13 > 0):
            d = np.array([s.d for s in specs], dtype=np.float64)
            slope = float(ols_slope(np.log(d), 0.5 * np.log(eq13))[0])
        notes = {h: n for layer in specs[-1].layers for h, n in layer.hypothesis_notes().items()}
        out.append(ArchResult(label, name, opts, scaling, eq13, slope, obstacles, notes))
    return CompareResult(config, tuple(out))


def consistent_with_sqrt_d(arch: ArchResult) -> str:
    """``yes``, ``no`` or ``undecided`` for ``eps_p E||d_x L||_q ~ sqrt(d)``, from the two vulnerability verdicts."""
    verdicts = {arch.claim(q).verdict.value for q in QUANTITIES[:2]}
    if verdicts == {"consistent"}:
        return "yes"
    if "inconsistent" in verdicts:
        return "no"
    return "undecided"


def explanation(arch: ArchResult) -> str:
    """Which hypothesis (or theorem) explains what the Monte Carlo found, in one sentence or two."""
    hyp = arch.scaling.hypotheses
    vuln = arch.fit("vuln_l2")
    grad = arch.fit("logit_grad_l2")
    parts = []
    if arch.eq13_slope is not None:
        if arch.eq13_slope < -0.25:
            parts.append(
                f"Eq. 13 under (H) gives ||d_x f||_2 ~ d^{arch.eq13_slope:+.2f}: every path averages over a number of "
                "positions that grows like d (global average pooling), Theorem 10's damping, so the vulnerability "
                f"grows like d^{0.5 + arch.eq13_slope:+.2f} rather than sqrt(d)"
            )
        elif abs(arch.eq13_slope) <= 0.1:
            parts.append(
                f"Eq. 13 under (H) gives ||d_x f||_2 ~ d^{arch.eq13_slope:+.2f}, Theorem 5's flat gradient norm, so "
                "sqrt(d) is the prediction"
            )
        else:
            why = (
                "the zero-padded border, whose neurons have fewer in-edges than the fan-in the initialisation divides "
                "by (H3), holds a share that shrinks as d grows"
                if hyp.exact and hyp.h3_fraction > 0
                else "the (H) value itself moves with d at these sizes"
            )
            parts.append(
                f"Eq. 13 with the initialisation's variances gives ||d_x f||_2 ~ d^{arch.eq13_slope:+.2f} over these "
                f"sizes, not Theorem 5's flat norm: {why}"
            )
    elif not hyp.exact:
        parts.append("no exact side (attention, layer norm): the theorems say nothing and only the Monte Carlo speaks")
    else:
        parts.append(
            "Eq. 13 has no value here (" + "; ".join(o.split(": ", 1)[-1] for o in arch.eq13_obstacles[:1]) + ")"
        )
    if "H1" in arch.notes:
        parts.append("H1 fails by construction: " + arch.notes["H1"])
    if "H4" in arch.notes:
        parts.append(arch.notes["H4"])
    if hyp.exact and hyp.h3_fraction > 0:
        parts.append(
            f"H3 fails at the border (zero padding, up to {hyp.h3_fraction:.1%} of the neurons), which fades as d grows"
        )
    if hyp.exact and not hyp.symmetric:
        parts.append(
            "(S) fails but d*P(x,o) stays bounded" if hyp.bounded else "(S) fails and d*P(x,o) is not stable in d"
        )
    parts.append(f"measured: vuln_l2 slope {vuln.slope:+.3f}, ||d_x f||_2 slope {grad.slope:+.3f}")
    return "; ".join(parts) + "."


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
