"""Pre-flight memory estimates: the peak a run will need, computed from its specs before
anything large is allocated, and the one-line refusal when the machine does not have it.

Nothing here allocates a tensor: every estimate is arithmetic on a spec's shapes
(``Spec.sizes``, ``Layer.weight_shape``, ``Layer.internal_floats``, ``Layer.flops``) and on the
run's numbers (draws, batch, resamples), so it costs microseconds even for a size no machine
could run (``--dims 16,2147483648``), and Python integers never overflow. (The one
measurement, of a user's opaque module, is ``verify.usermodel``'s, on the meta device.)

The model (every constant below was measured with ``bench/bench_memory.py``, which prints
estimate / measured peak for each piece on this machine; rerun it after changing a piece):

- ``S`` = activations of one sample, all layers (``sum(spec.sizes)``), ``W`` = random weights,
  ``R`` = output classes the operator form back-propagates (one for a dense last layer, every
  logit for the second moments of Eq. 13).
- exact side (``verify scaling``'s (S)/H3 status, ``verify paths`` without ``--exact``): the
  operator form holds in-degree and multiplier maps (float64, 3 S) plus, per output row, the
  structural forward's saved activations and their gradients (4 S): ``8 S (4 R + 3)`` bytes,
  plus ``24 W`` for the structural weights and their autograd copies. Measured 52-65 bytes per
  S on the strided CNN (R = 1) from 256 to 512 px, 356 per S with R = 10.
  Once a whole pass would exceed ``graphs.streaming``'s budget the exact side goes in row
  bands (``streamed_form``): ``STREAM_COPIES`` bands of ``BAND_BYTES`` plus ``3 * 8 d R``
  for the results kept.
- explicit DAG (networkx ``MultiDiGraph`` with an attribute dict per edge): ~1 kB per edge
  (``EDGE_BYTES``; measured 650-850).
- Monte Carlo engine (``verify.engine``): a chunk of ``c`` samples stores every ReLU output
  and two cotangents, ``3 S`` floats per sample (the engine's own chunk rule, with the
  ``ENGINE_CHUNK_BYTES`` budget), weights drawn in float64 then cast (``W (8 + b)``), a draw's
  inputs likewise. Measured 12 bytes per S per sample in float32.
- first-order checks: autograd in float64 through the gradient, every PGD step and the K
  logit gradients of the Gram matrix, the whole batch at once: ~128 bytes per S per sample
  (measured 100-125), the Gram's K stored gradients (``K d`` per sample, at most 128 MB).
- records (long format, ``verify.montecarlo``): ~320 bytes per record at the peak of a Monte
  Carlo (block columns, their concatenation and the frame; 73 bytes once built).
- bootstrap (``scipy.stats.bootstrap``, all resamples at once): ~16 bytes per draw per
  resample per sample, plus the BCa jackknife's ``n^2`` per sample (measured 15-18).
- ``BASELINE_BYTES`` for the interpreter, torch, numpy, scipy and pandas themselves.

Nets whose layers are not all one map each, and the exact side where there is none:

- ``S`` adds each layer's ``Layer.internal_floats()``: what a whole module keeps inside for the
  backward pass. The ``vit`` family counts it from its sizes, without building the module
  (``graphs.layers.vit``: attention's ``heads T^2`` weights per block dominate at many tokens;
  its weight count likewise). A user's module that is traced into layer kinds is a spec like
  any other. An opaque one (``--model`` outside the layer kinds) is measured, not modelled:
  before it is built, one forward pass on torch's meta device (shapes only, nothing
  allocated) under saved-tensor hooks gives the bytes autograd saves per sample and the
  parameter bytes (``verify.usermodel.meta_footprint``; ``module_build`` refuses the building
  itself: the module, its copies for tracing in float64 and the probe's two samples); the
  real probe then counts the saved storages per sample (``ModuleLayer.saved_floats``), which
  ``S`` uses. A module the meta device cannot run is estimated from the next smaller size's
  probe scaled by d (the smallest size is built unchecked).
- The engine adds each layer's ``Layer.transient_floats()`` per sample: what one layer's
  backward holds at once beyond the saved activations and their gradients (a ViT block's
  attention backward: three ``heads T^2`` gradients).
- The engine's chunk rule counts the spec's shapes only (``verify.engine``), so a module's
  whole batch runs at once: ``engine`` follows that rule as it is.
- The exact side is counted on the spec ``graphs.spec.exact_view`` gives (a traced module's
  layers) and not at all for a net without one (a ViT, an opaque module): no exact phase runs.
- ``verify compare`` runs the scaling check of each architecture one after another, with Eq.
  13's second moments per size where the exact side has them: the largest phase of any
  architecture, plus every architecture's records (``compare_plan``).

Phases run one after another (the exact side, then the Monte Carlo size by size, then the
fits), so the peak is the baseline plus the largest phase plus what every phase keeps (the
records). The estimates aim at the right order of magnitude and err on the high side: their
job is to refuse a run that cannot finish, not to budget one that can.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any, Sequence

from graphs.errors import InputError

__all__ = [
    "BASELINE_BYTES",
    "ENGINE_CHUNK_BYTES",
    "MemoryLimitError",
    "Need",
    "Plan",
    "activation_floats",
    "available_bytes",
    "bootstrap",
    "calibrate_plan",
    "check_plan",
    "compare_plan",
    "dag",
    "edge_bound",
    "engine",
    "exact_side",
    "first_order_engine",
    "first_order_plan",
    "flip_distance_plan",
    "format_bytes",
    "lemma9_plan",
    "module_build",
    "operator_form",
    "operator_form_need",
    "output_rows",
    "parse_bytes",
    "paths_plan",
    "pooling_plan",
    "random_dag_build",
    "records",
    "scaling_plan",
    "second_moments",
    "trained_plan",
    "training",
    "weight_floats",
]

GIB = 1 << 30
MIB = 1 << 20

# Bands of the streamed exact side alive at once (input rows, their image, the cotangent and its product).
STREAM_COPIES = 4
BASELINE_BYTES = 512 * MIB  # interpreter + torch + numpy/scipy/pandas, measured ~300 MB RSS
ENGINE_CHUNK_BYTES = GIB  # activation memory one engine evaluation may use (verify.engine's chunk rule)
EDGE_BYTES = 1024  # one networkx MultiDiGraph edge with its attribute dict, its share of the nodes
RECORD_BYTES = 320  # one long-format record at the peak of a Monte Carlo
FIXED_BYTES = 64 * MIB  # per-phase constant: autograd bookkeeping, padding copies, small tensors
GRAM_BYTES = 128 * MIB  # the first-order Gram matrix's stored gradients per chunk (verify.checks.first_order)


class MemoryLimitError(InputError):
    """A run whose estimated peak exceeds the memory the machine has (or ``--max-memory``)."""


@dataclass(frozen=True)
class Need:
    """Memory one piece of a run needs: ``what`` it is, at which ``size`` (command-line words,
    e.g. ``--dims 4096``), how many bytes, and whether it lives on the compute device (a GPU
    under ``--device cuda``) or always on the host."""

    what: str
    size: str
    bytes: int
    device: bool = False


@dataclass(frozen=True)
class Plan:
    """A run's needs: ``phases`` run one at a time (the peak takes the largest), ``kept``
    accumulate over the run (records)."""

    phases: tuple[Need, ...]
    kept: tuple[Need, ...] = ()

    def largest(self, *, device: bool | None = None) -> Need | None:
        pool = [n for n in self.phases if device is None or n.device == device]
        return max(pool, key=lambda n: n.bytes, default=None)

    def kept_bytes(self) -> int:
        return sum(n.bytes for n in self.kept)

    def peak(self, *, device: bool | None = None) -> int:
        """Peak bytes on the host (``device=False``: host phases, baseline and records), on the
        device (``True``: device phases only), or everything on one machine (``None``)."""
        top = self.largest(device=device)
        phase = top.bytes if top is not None else 0
        if device:
            return phase
        return BASELINE_BYTES + phase + self.kept_bytes()


# ----------------------------------------------------------------------------- units


_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def parse_bytes(text: str, flag: str = "--max-memory") -> int:
    """``"64G"``, ``"512M"``, ``"1.5T"``, ``"64GiB"`` or a plain number of bytes -> bytes (powers of 1024)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtTpP]?)(?:i?[bB])?\s*", str(text))
    if not m:
        raise InputError(f"{flag}: {text!r} is not a memory size; give e.g. {flag} 64G (K, M, G, T: powers of 1024)")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if not (math.isfinite(value) and value >= MIB):
        raise InputError(f"{flag}: {text!r} is below 1 MiB; give e.g. {flag} 64G")
    return int(value)


def format_bytes(n: float) -> str:
    """``1.5 GiB``, ``320 MiB``; sizes beyond any machine in powers of ten (``3.2e+21 B``)."""
    if n >= 1 << 70:
        return f"{n:.2g} B"
    for unit, scale in (
        ("EiB", 1 << 60),
        ("PiB", 1 << 50),
        ("TiB", 1 << 40),
        ("GiB", GIB),
        ("MiB", MIB),
        ("KiB", 1 << 10),
    ):
        if n >= scale:
            v = n / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:.0f} {unit}"
    return f"{int(n)} B"


def available_bytes() -> int | None:
    """Memory this process can still take: ``MemAvailable`` of ``/proc/meminfo``, capped by a
    cgroup v2 limit (a container's ``memory.max`` less its ``memory.current``); the free
    physical pages elsewhere; None when the platform says nothing."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as fh:
                used = int(fh.read().strip())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return min(found)


# ----------------------------------------------------------------------------- a spec's shapes


def activation_floats(spec: Any) -> int:
    """``S``: activations of one sample over every layer, input and logits included, and what
    a whole module keeps inside (``Layer.internal_floats``)."""
    return sum(math.prod(s) for s in spec.shapes) + sum(layer.internal_floats() for layer in spec.layers)


def _exact_view(spec: Any) -> Any:
    """The spec the exact side works on (``graphs.spec.exact_view``), None where there is none."""
    from graphs.spec import exact_view

    return exact_view(spec)[0]


def weight_floats(spec: Any) -> int:
    """``W``: random weights of the net (constant-weight layers have none)."""
    return sum(math.prod(s) for layer in spec.layers if (s := layer.weight_shape()) is not None)


def edge_bound(spec: Any) -> int:
    """An upper bound on the DAG's edges without building anything: each neuron of a random-
    weight layer has at most its initialisation's fan-in (``Layer.fan_in``, per neuron where it
    varies: exact for masked layers; zero padding's border has fewer), a constant-weight layer
    ``1 / weight`` edges into each node (average pooling: the window's a)."""
    shapes = spec.shapes
    total = 0
    for index, layer in enumerate(spec.layers, start=1):
        out = math.prod(shapes[index])
        const = layer.constant_weight
        if const is not None and const != 0:
            total += out * math.ceil(1 / const)
            continue
        fan = layer.fan_in()
        if fan is None:
            total += layer.flops([shapes[j] for j in layer.reads(index)], shapes[index]) // 2
        elif isinstance(fan, int):
            total += out * fan
        else:  # one fan-in per neuron
            total += int(fan.sum())
    return total


def output_rows(spec: Any, *, every_logit: bool = False) -> int:
    """``R``: output rows the operator form back-propagates together: one per class of logits
    with identical in-edges (path sums, (S)), or every logit (``every_logit``: Eq. 13)."""
    k = math.prod(spec.shapes[-1])
    if every_logit:
        return k
    # Grouping a huge last layer would itself allocate: group the first logits and scale up.
    sample = min(k, 256)
    classes = len(spec.layers[-1].output_classes(range(sample)))
    return 1 if classes == 1 else math.ceil(k * classes / sample)


# ----------------------------------------------------------------------------- the pieces


def operator_form(spec: Any, rows: int) -> int:
    """Bytes of one operator-form pass with ``rows`` output rows (module docstring)."""
    return 8 * activation_floats(spec) * (4 * rows + 3) + 24 * weight_floats(spec) + FIXED_BYTES


def streamed_form(spec: Any, rows: int) -> int:
    """Bytes of the exact side when it goes in row bands (``graphs.streaming``, used once a
    whole pass would exceed its budget): a few bands' tensors at once, plus the d-sized results
    each output row keeps (path sums, their scaled copy, the report's map), plus the weights.
    Measured at 4096 px: 0.79 GB for the exact side alone, 2.0 GB for ``verify paths`` end
    to end; this gives 2.3 GB."""
    from graphs.streaming import BAND_BYTES, should_stream

    if not should_stream(spec, rows):
        return operator_form(spec, rows)
    return STREAM_COPIES * BAND_BYTES + 3 * 8 * spec.d * rows + 24 * weight_floats(spec) + FIXED_BYTES


def exact_side(spec: Any, size: str) -> Need:
    """(S), H3 and the path sums of one size by the operator form (``verify paths``, the
    status block of ``verify scaling``); a small DAG's exact (S) test fits in the same. On the
    exact view of the spec; nothing for a net without one (no exact phase runs)."""
    from graphs.symmetry import DAG_SYMMETRY_MAX_EDGES

    spec = _exact_view(spec)
    if spec is None:
        return Need("exact side (none)", size, 0)
    rows = output_rows(spec)
    need = operator_form(spec, rows)
    need = min(need, streamed_form(spec, rows))
    if edge_bound(spec) <= DAG_SYMMETRY_MAX_EDGES:
        need = max(need, EDGE_BYTES * edge_bound(spec) + FIXED_BYTES)
    return Need("exact side", size, need)


def second_moments(spec: Any, size: str) -> Need:
    """Eq. 13's ``E||d_x f_c||^2`` for every logit by the operator form (pooling, Lemma 9)."""
    return Need("Eq. 13 second moments", size, operator_form(spec, output_rows(spec, every_logit=True)))


def dag(spec: Any, size: str, *, fractions: bool = False) -> Need:
    """The explicit networkx DAG (``verify paths --exact``, Lemma 9); with ``fractions`` the
    exact dynamic programming keeps a Fraction per node and a polynomial per node besides."""
    edges = edge_bound(spec)
    nodes = activation_floats(spec)
    extra = 2 * EDGE_BYTES * nodes if fractions else 0
    return Need("explicit DAG", size, EDGE_BYTES * edges + extra + FIXED_BYTES)


def engine(spec: Any, size: str, *, batch: int, dtype_bytes: int = 4, batch_flag: str = "--batch") -> Need:
    """One weight draw of the Monte Carlo engine (``verify.engine``; module docstring)."""
    size = f"{size} {batch_flag} {batch}"
    per_sample = (3 * activation_floats(spec) + sum(layer.transient_floats() for layer in spec.layers)) * dtype_bytes
    # the engine's own chunk rule sees the spec's shapes only (module docstring)
    chunk = min(batch, max(1, ENGINE_CHUNK_BYTES // (3 * sum(math.prod(s) for s in spec.shapes) * dtype_bytes)))
    # drawn in float64, cast, and laid out channels-last: up to three copies at once
    weights = weight_floats(spec) * (8 + 2 * dtype_bytes)
    inputs = batch * spec.d * (8 + dtype_bytes)
    return Need("Monte Carlo per weight draw", size, chunk * per_sample + weights + inputs + FIXED_BYTES, device=True)


def first_order_engine(spec: Any, size: str, *, batch: int, dtype_bytes: int = 8) -> Need:
    """One weight draw of the first-order checks: autograd through the gradient, PGD and the
    Gram matrix of the logit gradients, the whole batch at once."""
    size = f"{size} --batch {batch}"
    acts = 16 * dtype_bytes * activation_floats(spec) * batch
    weights = weight_floats(spec) * (8 + 4 * dtype_bytes)
    k = spec.shapes[-1][0]
    gram = min(GRAM_BYTES, k * spec.d * batch * dtype_bytes) + batch * k * k * 8
    inputs = 4 * batch * spec.d * (8 + dtype_bytes)
    return Need("attacks per weight draw", size, acts + weights + gram + inputs + FIXED_BYTES, device=True)


def module_build(footprint: Any, size: str) -> Need:
    """Building and probing one size of a user's module (``verify.usermodel.model_spec``) from
    its ``Footprint``: the module, its checkpoint, the tracer's copy and float64 copies of its
    weights (module and spec: ~7 times the parameters), and the probe's and tracer's passes on
    two samples (float64 at most: 8 times what one sample saves)."""
    return Need(
        "building and probing the module", size, 7 * footprint.parameter_bytes + 8 * footprint.saved_bytes + FIXED_BYTES
    )


def records(n: int, size: str, what: str = "records") -> Need:
    """``n`` long-format records (``verify.montecarlo``), kept for the whole run; ``size``
    names the settings that make them (``--draws 160 --batch 2``)."""
    return Need(what, size, RECORD_BYTES * n)


def bootstrap(draws: int, samples: int, n_boot: int) -> Need:
    """One BCa bootstrap over ``draws`` draws of ``samples`` paired samples (``verify.stats``)."""
    need = 16 * draws * n_boot * max(1, samples) + 8 * draws * draws * max(1, samples) + FIXED_BYTES
    return Need("bootstrap", f"--n-boot {n_boot} --draws {draws}", need)


def random_dag_build(dim: int, options: dict[str, Any], size: str) -> Need:
    """Drawing a ``random-dag`` (``graphs.spec.random_dag_spec``) before it exists: each layer's
    int64 mask of ``width x (every earlier node)`` and its float copies."""
    from graphs.families import family

    fam = family("random-dag")
    hidden = options.get("hidden") or fam.option("hidden").default
    classes = options.get("num_classes") or fam.option("num_classes").default
    sources, total = int(dim), 0
    for width in (*hidden, classes):
        total += int(width) * sources
        sources += int(width)
    return Need("random DAG masks", size, 24 * total + FIXED_BYTES)


# ----------------------------------------------------------------------------- the check


def check_plan(
    plan: Plan,
    *,
    limit: int | None = None,
    device_limit: int | None = None,
    on_device: bool = False,
    hint: str = "give smaller sizes",
) -> None:
    """Refuse ``plan`` (``MemoryLimitError``, one line naming the size and the estimate) when
    its peak exceeds ``limit`` (default: ``available_bytes()``), or, with ``on_device``, when
    its device phases exceed ``device_limit``. Without ``on_device`` every phase is on the host."""
    host_limit = available_bytes() if limit is None else limit
    top = plan.largest(device=False if on_device else None)
    host_peak = plan.peak(device=False if on_device else None)
    if host_limit is not None and host_peak > host_limit:
        have = (
            f"--max-memory allows {format_bytes(host_limit)}"
            if limit is not None
            else (f"this machine has {format_bytes(host_limit)} available")
        )
        raise MemoryLimitError(_message(top, plan.kept, host_peak, have, hint, baseline=True))
    if on_device and device_limit is not None:
        dev_top = plan.largest(device=True)
        if dev_top is not None and dev_top.bytes > device_limit:
            have = (
                f"--max-memory allows {format_bytes(device_limit)}"
                if device_limit == limit
                else (f"the GPU has {format_bytes(device_limit)} free")
            )
            raise MemoryLimitError(_message(dev_top, (), dev_top.bytes, have, hint, baseline=False))


def _message(top: Need | None, kept: Sequence[Need], peak: int, have: str, hint: str, *, baseline: bool) -> str:
    parts = [] if top is None else [f"{top.what} {format_bytes(top.bytes)}"]
    parts += [f"{n.what} {format_bytes(n.bytes)}" for n in kept if n.bytes >= MIB]
    if baseline:
        parts.append(f"Python and its libraries {format_bytes(BASELINE_BYTES)}")
    # Name the settings of the largest piece: what to change.
    dominant = max([n for n in (top, *kept) if n is not None], key=lambda n: n.bytes, default=None)
    suggest = f"--max-memory {math.ceil(peak / GIB)}G" if peak < (1 << 50) else "--max-memory SIZE"
    return (
        f"{dominant.size if dominant is not None else 'this run'} needs ~{format_bytes(peak)} of memory "
        f"({', '.join(parts)}); {have}: {hint}, or pass {suggest} to try anyway"
    )


# ----------------------------------------------------------------------------- one plan per command


def _label(labels: Sequence[str] | None, i: int, spec: Any) -> str:
    return labels[i] if labels is not None else f"dim {spec.dim} (d = {spec.d:,})"


def scaling_plan(
    specs: Sequence[Any],
    *,
    draws: int,
    batch: int,
    n_boot: int,
    quantities: int = 7,
    labels: Sequence[str] | None = None,
) -> Plan:
    """``verify scaling``: the exact side and one draw of the engine per size, one bootstrap
    per quantity over every size; the engine's records (every quantity) are kept."""
    phases = [exact_side(s, _label(labels, i, s)) for i, s in enumerate(specs)]
    phases += [engine(s, _label(labels, i, s), batch=batch) for i, s in enumerate(specs)]
    phases.append(bootstrap(draws, len(specs), n_boot))
    return Plan(tuple(phases), (records(len(specs) * draws * batch * 7, f"--draws {draws} --batch {batch}"),))


def compare_plan(
    archs: Sequence[tuple[str, Sequence[Any]]], *, draws: int, batch: int, n_boot: int, quantities: int = 3
) -> Plan:
    """``verify compare``: for each (label, specs) the scaling check's phases and Eq. 13 by the
    operator form (every logit) per size where the exact side has it; the architectures run
    one after another, and every one's records are kept to the end."""
    phases: list[Need] = []
    n_records = 0
    for label, specs in archs:
        labels = [f"--archs {label} --dims {s.dim}" for s in specs]
        plan = scaling_plan(specs, draws=draws, batch=batch, n_boot=n_boot, quantities=quantities, labels=labels)
        phases += plan.phases
        for spec, lab in zip(specs, labels):
            view = _exact_view(spec)
            if view is not None:
                phases.append(second_moments(view, lab))
        n_records += len(specs) * draws * batch * 7
    return Plan(tuple(phases), (records(n_records, f"--draws {draws} --batch {batch} x {len(archs)} architectures"),))


def paths_plan(specs: Sequence[Any], *, exact: bool, labels: Sequence[str] | None = None) -> Plan:
    """``verify paths``: the operator form per size, or the explicit DAG with Fractions."""
    if exact:
        return Plan(tuple(dag(s, _label(labels, i, s), fractions=True) for i, s in enumerate(specs)))
    return Plan(tuple(exact_side(s, _label(labels, i, s)) for i, s in enumerate(specs)))


def pooling_plan(
    nets: Sequence[Any], *, draws: int, batch: int, n_boot: int, labels: Sequence[str] | None = None
) -> Plan:
    """``verify pooling``: per net Eq. 13 by the operator form (every logit) and one draw of
    the engine; bootstraps over the swept nets; every net's records kept."""
    phases = [second_moments(s, _label(labels, i, s)) for i, s in enumerate(nets)]
    phases += [engine(s, _label(labels, i, s), batch=batch) for i, s in enumerate(nets)]
    phases.append(bootstrap(draws, len(nets), n_boot))
    return Plan(tuple(phases), (records(len(nets) * draws * batch * 7, f"--draws {draws} --batch {batch}"),))


def lemma9_plan(
    specs: Sequence[Any],
    *,
    draws: int,
    max_inputs: int,
    max_paths: int,
    max_pairs: int,
    mc_draws: int,
    mc_batch: int,
    labels: Sequence[str] | None = None,
) -> Plan:
    """``verify lemma9``: the explicit DAG with Fractions (Lemma 9's paths, Eq. 13 by DP), the
    sampled paths' weights in every draw and their products (one row per test), the engine
    against Eq. 13; the weight and engine records are kept."""
    phases: list[Need] = []
    kept: list[Need] = []
    for i, s in enumerate(specs):
        label = _label(labels, i, s)
        depth = len(s.layers)
        inputs = min(max_inputs, s.d)
        tests = inputs * max_paths + max_pairs
        # pairs are drawn among the sampled paths, so the weights drawn are those on the paths
        weights = min(weight_floats(s), inputs * max_paths * depth)
        sampled = f"{label} --draws {draws} --max-paths {max_paths} --max-pairs {max_pairs}"
        phases.append(dag(s, label, fractions=True))
        phases.append(Need("path products", sampled, 3 * 8 * tests * draws + 8 * draws * weights))
        phases.append(operator_form_need(s, label))
        kept.append(records(draws * weights, sampled, "weight records"))
        if mc_draws:
            phases.append(engine(s, f"{label} --mc-draws {mc_draws}", batch=mc_batch, batch_flag="batch"))
            kept.append(records(mc_draws * mc_batch * 7, f"--mc-draws {mc_draws}"))
    return Plan(tuple(phases), tuple(kept))


def operator_form_need(spec: Any, size: str) -> Need:
    """One operator-form pass for one logit (Eq. 13 against the DP)."""
    return Need("operator form", size, operator_form(spec, 1))


def first_order_plan(
    specs: Sequence[Any],
    *,
    draws: int,
    batch: int,
    n_boot: int,
    n_eps: int,
    n_norms: int,
    dtype_bytes: int = 8,
    labels: Sequence[str] | None = None,
) -> Plan:
    """``verify first-order``: one draw of the attacks per size, the bootstraps of the fitted
    orders (over eps, paired); every record kept."""
    per_sample = 9 + n_eps * (1 + 7 * n_norms)  # the quantities one draw records per input
    phases = [
        first_order_engine(s, _label(labels, i, s), batch=batch, dtype_bytes=dtype_bytes) for i, s in enumerate(specs)
    ]
    phases.append(bootstrap(draws, max(n_eps, len(specs)), n_boot))
    return Plan(tuple(phases), (records(len(specs) * draws * batch * per_sample, f"--draws {draws} --batch {batch}"),))


def flip_distance_plan(
    specs: Sequence[Any],
    *,
    draws: int,
    batch: int,
    n_boot: int,
    quantities: int,
    dtype_bytes: int = 8,
    labels: Sequence[str] | None = None,
) -> Plan:
    """``verify flip-distance``: one draw per size (DeepFool's K logit gradients per iteration
    and the line searches' forward passes: the first-order checks' autograd and Gram budget),
    one bootstrap per distance over every size; every record (``quantities`` per input) kept."""
    phases = [
        first_order_engine(s, _label(labels, i, s), batch=batch, dtype_bytes=dtype_bytes) for i, s in enumerate(specs)
    ]
    phases.append(bootstrap(draws, len(specs), n_boot))
    return Plan(tuple(phases), (records(len(specs) * draws * batch * quantities, f"--draws {draws} --batch {batch}"),))


def calibrate_plan(
    dense: Sequence[Any],
    pooled: Sequence[Any],
    lemma9: Sequence[Any],
    *,
    draws: int,
    batch: int,
    n_boot: int,
    lemma9_draws: int,
    lemma9_limits: tuple[int, int, int],
) -> Plan:
    """``verify calibrate``: replications run one after another, each a scaling-like Monte
    Carlo of the dense (``--dense-dims``, ``--dense-widths``) or pooled nets (``--pooled-dims``,
    ``--pooled-channels``) with its bootstraps, or one Lemma 9 run (``--lemma9-draws``); a
    replication's records live while it runs, only one row per case and seed is kept."""
    phases = [engine(s, f"--dense-dims {s.dim}", batch=batch) for s in dense]
    phases += [engine(s, f"--pooled-dims {s.dim}", batch=batch) for s in pooled]
    phases.append(bootstrap(draws, max(len(dense), len(pooled), 1), n_boot))
    for nets in (dense, pooled):
        if nets:
            phases.append(records(len(nets) * draws * batch * 7, f"--draws {draws} --batch {batch}"))
    if lemma9:
        max_inputs, max_paths, max_pairs = lemma9_limits
        sub = lemma9_plan(
            lemma9,
            draws=lemma9_draws,
            max_inputs=max_inputs,
            max_paths=max_paths,
            max_pairs=max_pairs,
            mc_draws=0,
            mc_batch=1,
            labels=[f"--lemma9-draws {lemma9_draws}"] * len(lemma9),
        )
        phases.append(max(sub.phases, key=lambda n: n.bytes))
        phases.append(Need("Lemma 9 records", f"--lemma9-draws {lemma9_draws}", sub.kept_bytes()))
    return Plan(tuple(phases))


def training(spec: Any, size: str, *, batch: int, eval_batch: int, adversarial: bool) -> Need:
    """Training one net (``verify.training``) and measuring it on held-out inputs, in float32:
    the parameters with their gradients and the optimiser's two moment buffers, and the
    larger of a training step and an evaluation batch, each with double backward (the
    gradient penalty; the held-out input gradients) through up to 4 copies of the activations,
    PGD's steps one after another (``adversarial`` adds the perturbed batch and its gradient)."""
    weights = 4 * 4 * weight_floats(spec)
    rows = max(batch, eval_batch)
    acts = 4 * 4 * 3 * activation_floats(spec) * rows
    inputs = 4 * rows * spec.d * (4 if adversarial else 2)
    return Need(
        "training and held-out gradients",
        f"{size} --batch-size {batch} --eval-batch {eval_batch}",
        weights + acts + inputs + FIXED_BYTES,
        device=True,
    )


def trained_plan(
    specs: Sequence[Any],
    *,
    batch: int,
    eval_batch: int,
    adversarial: bool,
    train_images: int,
    test_images: int,
    image_floats: int,
    labels: Sequence[str] | None = None,
) -> Plan:
    """``verify trained``: one net trained at a time, per size (``training``); the data set at
    its native size (on the host and on the compute device) is kept for the whole run."""
    phases = [
        training(s, _label(labels, i, s), batch=batch, eval_batch=eval_batch, adversarial=adversarial)
        for i, s in enumerate(specs)
    ]
    data = Need(
        "the data set",
        f"--train-size {train_images} --test-size {test_images}",
        2 * 4 * (train_images + test_images) * image_floats,
    )
    return Plan(tuple(phases), (data,))
