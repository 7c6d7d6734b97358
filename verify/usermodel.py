"""Bring your own module: ``--model FILE.py:FACTORY`` (or ``package.module:FACTORY``) as specs.

``FACTORY(n)`` returns an ``nn.Module`` for images ``3 x n x n`` (``input_shape="image"``) or
``FACTORY(d)`` for vectors of d coordinates (``"vector"``). For each size, ``model_spec``
builds the module, checks it (one ``InputError`` line for: a file or factory that is missing,
a factory that raises, a forward that fails on the input shape, an output that is not
``(batch, K)``, an input gradient that is not there because of a non-differentiable operation),
traces it (``verify.trace``) and returns one spec:

- with ``init="he"`` and every node a known layer kind: the traced spec itself, so every check
  runs on it as on a family (exact side included);
- otherwise a spec of one ``graphs.layers.ModuleLayer``: the Monte Carlo runs the module itself
  (``torch.func.functional_call`` on each draw's weights), and the exact side is the traced spec
  when there is one, else the report names the nodes that keep the module from it.

Memory: before a size is built for real, ``meta_footprint`` builds it on torch's meta device
(shapes only, nothing allocated) and runs one forward pass there under saved-tensor hooks, so
a size no machine could hold is refused (``model_specs``'s ``preflight``, with
``verify.memory.module_build``) before the factory allocates anything; the real probe then
measures what autograd saves per sample (``ModuleLayer.saved_floats``), which the run's
memory plan counts (``verify.memory``). Building on the meta device calls the factory once more
per size.

Settings: ``model_settings`` is what a run records of the module (``--json``'s
``run.settings.options``, and the spec's fingerprint, so a results store never mixes two
versions of a file): the reference, its file (or module) and factory, the file's SHA-256,
``--input-shape``, ``--init``, ``--mode``, ``--weights`` and the checkpoint's SHA-256.

Safety: the named file is executed (imported) because the user named it, with the user's
rights, as ``python FILE.py`` would; nothing else is executed. Checkpoints (``--weights``) are
read with ``torch.load(..., weights_only=True)`` or from a safetensors file: tensors only, never
arbitrary pickled objects.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from graphs.errors import InputError
from graphs.layers.module import INITS, ModuleLayer
from graphs.spec import Spec

__all__ = [
    "INPUT_SHAPES",
    "MODES",
    "Footprint",
    "UserModel",
    "load_checkpoint",
    "load_factory",
    "meta_footprint",
    "model_settings",
    "model_spec",
    "model_specs",
    "source_digest",
]

INPUT_SHAPES = ("image", "vector")
MODES = ("eval", "train")


def load_factory(ref: str) -> Callable[[int], nn.Module]:
    """The factory ``ref`` names (``FILE.py:FACTORY`` or ``package.module:FACTORY``); executes that file."""
    source, sep, name = str(ref).rpartition(":")
    if not sep or not source or not name:
        raise InputError(f"--model {ref!r}: give FILE.py:FACTORY or package.module:FACTORY")
    if source.endswith(".py") or "/" in source or "\\" in source:
        path = Path(source)
        if not path.is_file():
            raise InputError(
                f"--model: file {source} not found; give the path of a Python file, e.g. examples/resnet18.py:resnet18"
            )
        module_name = f"_verify_model_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise InputError(f"--model: {source} cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            # compiled from the file's bytes now, not from a cached .pyc: a file edited within
            # the same second keeps its size and mtime, and the run must build what it digests
            exec(compile(path.read_bytes(), str(path), "exec"), module.__dict__)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise InputError(f"--model: running {source} raised {type(exc).__name__}: {_one_line(exc)}") from None
    else:
        try:
            module = importlib.import_module(source)
        except ModuleNotFoundError as exc:
            raise InputError(
                f"--model: module {source} not found ({_one_line(exc)}); give FILE.py:FACTORY or an importable module"
            ) from None
        except Exception as exc:
            raise InputError(f"--model: importing {source} raised {type(exc).__name__}: {_one_line(exc)}") from None
    factory = getattr(module, name, None)
    if factory is None:
        raise InputError(
            f"--model: {source} has no {name}; name a function that takes the input size and returns an nn.Module"
        )
    if not callable(factory):
        raise InputError(f"--model: {source}:{name} is not callable; name a function FACTORY(n) -> nn.Module")
    return factory  # pyright: ignore[reportReturnType]  # checked when called (_build)


def source_digest(ref: str) -> str | None:
    """SHA-256 of the file ``ref`` names (``FILE.py``, or the file of ``package.module``); None
    when there is no such file (a built-in or namespace module)."""
    source = str(ref).rpartition(":")[0]
    if source.endswith(".py") or "/" in source or "\\" in source:
        path: Path | None = Path(source)
    else:
        try:
            found = importlib.util.find_spec(source)
        except (ImportError, ValueError):
            found = None
        origin = getattr(found, "origin", None)
        path = Path(origin) if origin and origin not in ("built-in", "frozen") else None
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _one_line(exc: BaseException) -> str:
    # torch's messages may carry terminal escapes (bold): no escape codes in a one-line error
    text = " ".join(_ANSI.sub("", str(exc)).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """A state dict of tensors from ``path`` (safetensors, or ``torch.load(weights_only=True)``) and its SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--weights: file {path} not found")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise InputError(
                "--weights: reading .safetensors needs the safetensors package (pip install safetensors)"
            ) from None
        try:
            state = load_file(str(path))
        except Exception as exc:
            raise InputError(f"--weights: {path} is not a safetensors file: {_one_line(exc)}") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InputError(
                f"--weights: {path} is not a checkpoint of tensors that torch.load(weights_only=True) reads: {_one_line(exc)}"
            ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InputError(f"--weights: {path} holds no state dict (a mapping of names to tensors)")
    return state, digest


@dataclass(frozen=True)
class UserModel:
    """What ``--model`` and its flags say: the factory, the input kind, the initialisation."""

    ref: str
    input_shape: str = "image"
    init: str = "he"
    weights: str | None = None
    mode: str = "eval"
    in_channels: int = 3

    def __post_init__(self) -> None:
        if self.input_shape not in INPUT_SHAPES:
            raise InputError(f"--input-shape {self.input_shape!r}: choose one of {', '.join(INPUT_SHAPES)}")
        if self.init not in INITS:
            raise InputError(f"--init {self.init!r}: choose one of {', '.join(INITS)}")
        if self.mode not in MODES:
            raise InputError(f"--mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.weights is not None and self.init != "keep":
            raise InputError("--weights loads a checkpoint, which --init he would overwrite; add --init keep")

    @property
    def label(self) -> str:
        """A file-safe name for the reports: ``model-STEM-FACTORY`` (``examples/resnet18.py:resnet18``
        gives ``model-resnet18-resnet18``)."""
        source, _, name = self.ref.rpartition(":")
        stem = Path(source).stem if source.endswith(".py") else source
        return "model-" + re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stem}-{name}").strip("-")

    def shape(self, n: int) -> tuple[int, ...]:
        return (self.in_channels, n, n) if self.input_shape == "image" else (n,)

    def settings(self) -> dict:
        """What the command line says of the module (``model_settings`` adds the digests)."""
        source, _, factory = self.ref.rpartition(":")
        return {
            "model": self.ref,
            "model_file": source,
            "factory": factory,
            "input_shape": self.input_shape,
            "init": self.init,
            "mode": self.mode,
            "weights": self.weights,
        }


def model_settings(model: UserModel, weights_sha256: str | None) -> dict:
    """Every setting of ``model`` that changes a number, with the SHA-256 of its file and of its
    checkpoint: a run is rebuilt from them (module docstring)."""
    return {**model.settings(), "model_sha256": source_digest(model.ref), "weights_sha256": weights_sha256}


@dataclass(frozen=True)
class Footprint:
    """What one size of a module needs: bytes of its floating-point parameters and buffers,
    bytes autograd saves per sample (the input included), and how they were found: ``meta``
    (a forward on the meta device), ``probe`` (the real probe) or ``extrapolated`` (a smaller
    size's probe scaled by d, for a module the meta device cannot run)."""

    n: int
    d: int
    parameter_bytes: int
    saved_bytes: int
    method: str


def _module_dtype(module: nn.Module) -> torch.dtype:
    param = next((p for p in module.parameters() if p.is_floating_point()), None)
    return param.dtype if param is not None else torch.float32


def _meta_saved_bytes(module: nn.Module, x: torch.Tensor) -> int | None:
    """Bytes autograd saves in one forward of ``module`` on the meta batch ``x`` (every saved
    tensor once); None unless the output is one row of logits per sample."""
    kept: dict[int, torch.Tensor] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept[id(t)] = t  # held until the count: ids stay unique
        return t

    x.requires_grad_(True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(x)
    if not (isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == x.shape[0]):
        return None
    return sum(t.numel() * t.element_size() for t in kept.values())


def meta_footprint(factory: Callable[[int], nn.Module], model: UserModel, n: int) -> Footprint | None:
    """The footprint of ``factory(n)`` from the meta device: nothing is allocated, whatever n.

    The saved bytes per sample are the difference between forward passes on batches of 3 and
    2 (what autograd saves of the weights cancels; batch statistics need two samples). None when
    the module does not run there (a factory that loads files or builds CPU tensors itself, an
    operation without a meta kernel, a data-dependent branch): ``model_specs`` then extrapolates.
    """
    shape = model.shape(n)
    try:
        with torch.device("meta"):
            module = factory(n)
        if not isinstance(module, nn.Module):
            return None
        tensors = [*module.parameters(), *module.buffers()]
        if not all(t.is_meta for t in tensors):
            return None
        module.train(model.mode == "train")
        dtype = _module_dtype(module)
        saved = []
        for batch in (2, 3):
            found = _meta_saved_bytes(module, torch.empty((batch, *shape), device="meta", dtype=dtype))
            if found is None:
                return None
            saved.append(found)
    except Exception:
        return None
    params = sum(t.numel() * t.element_size() for t in tensors if t.is_floating_point())
    d = math.prod(shape)
    return Footprint(n, d, params, max(saved[1] - saved[0], d * torch.finfo(dtype).bits // 8), "meta")


def _extrapolated(previous: Footprint, model: UserModel, n: int) -> Footprint:
    """``previous`` (a smaller size's probe) scaled by the ratio of the d's: parameters and
    activations that grow like d (a first dense layer, every feature map); errs high for
    convolutional weights, low for attention's T^2."""
    d = math.prod(model.shape(n))
    scale = d / previous.d
    return Footprint(
        n, d, math.ceil(previous.parameter_bytes * scale), math.ceil(previous.saved_bytes * scale), "extrapolated"
    )


def _build(factory: Callable[[int], nn.Module], ref: str, n: int) -> nn.Module:
    try:
        module = factory(n)
    except Exception as exc:
        raise InputError(f"--model: {ref}({n}) raised {type(exc).__name__}: {_one_line(exc)}") from None
    if not isinstance(module, nn.Module):
        raise InputError(f"--model: {ref}({n}) returned {type(module).__name__}, not an nn.Module")
    return module


def _probe(module: nn.Module, model: UserModel, n: int) -> tuple[int, int, int]:
    """Run a 2-sample batch through ``module``: the number of classes, a FLOP estimate and the
    floats autograd saves per sample (every saved storage once, the module's own tensors left
    out, halved)."""
    from verify.trace import non_differentiable_nodes

    shape = model.shape(n)
    param = next(iter(module.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.randn((2, *shape), generator=torch.Generator().manual_seed(0), dtype=dtype).requires_grad_(True)
    flops = [0]
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes() // max(t.element_size(), 1)
        return t

    def count(m: nn.Module, inputs, output) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)) and isinstance(output, torch.Tensor):
            flops[0] += 2 * output[0].numel() * int(m.weight[0].numel())

    hooks = [m.register_forward_hook(count) for m in module.modules()]
    what = f"an image {model.in_channels} x n x n" if model.input_shape == "image" else "a vector of d coordinates"
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = module(x)
    except Exception as exc:
        raise InputError(
            f"--model: {model.ref}({n}) fails on input {tuple(x.shape)} ({type(exc).__name__}: {_one_line(exc)}); "
            f"--input-shape {model.input_shape} says each input is {what}: check it matches the module"
        ) from None
    finally:
        for h in hooks:
            h.remove()
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputError(
            f"--model: {model.ref}({n}) returns {got} for a batch of 2 inputs {tuple(x.shape)}, not (batch, K) logits; "
            f"check --input-shape ({model.input_shape}: each input {what})"
        )
    if out.shape[1] < 2:
        raise InputError(f"--model: {model.ref}({n}) has {out.shape[1]} logit; the cross-entropy needs K >= 2")
    bad = non_differentiable_nodes(module)
    grad = None
    if out.requires_grad:
        (grad,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    if bad or grad is None or not bool(grad.abs().sum() > 0):
        where = f" ({', '.join(bad)})" if bad else ""
        raise InputError(
            f"--model: {model.ref}({n}) has a non-differentiable operation on the input path{where}: the input "
            "gradient is missing or zero; remove it (round, sign, argmax, detach...) to measure first-order vulnerability"
        )
    # the module's own tensors, read after the forward (a lazy module sizes them there)
    own = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    saved = sum(n for ptr, n in storages.items() if ptr not in own)
    return int(out.shape[1]), flops[0], math.ceil(saved / 2)


def model_spec(
    model: UserModel,
    n: int,
    factory: Callable[[int], nn.Module] | None = None,
    checkpoint: tuple[dict[str, torch.Tensor], str] | None = None,
) -> Spec:
    """The spec of ``model`` at size ``n`` (module docstring); every check raises one-line
    InputErrors. ``checkpoint`` is ``load_checkpoint(model.weights)`` when already read."""
    from verify.trace import trace_module

    factory = factory or load_factory(model.ref)
    module = _build(factory, model.ref, n)
    module.train(model.mode == "train")
    state, digest = None, ""
    if model.weights is not None:
        state, digest = checkpoint if checkpoint is not None else load_checkpoint(model.weights)
        try:
            module.load_state_dict(state, strict=True)
        except Exception as exc:
            raise InputError(f"--weights: {model.weights} does not fit {model.ref}({n}): {_one_line(exc)}") from None
    classes, flops, saved = _probe(module, model, n)
    shape = model.shape(n)
    traced = trace_module(module, shape, family=model.label, dim=n)
    opts = {**model_settings(model, digest or None), "traced": traced.spec is not None}
    if traced.spec is not None and model.init == "he":
        return Spec(model.label, n, shape, traced.spec.layers, opts)

    def rebuild() -> nn.Module:
        m = _build(factory, model.ref, n)
        return m.train(model.mode == "train")

    layer = ModuleLayer(
        module,
        label=model.label,
        input_shape=shape,
        num_classes=classes,
        init=model.init,
        rebuild=rebuild,
        checkpoint=state,
        checkpoint_digest=digest,
        traced=traced.spec,
        obstacles=traced.unknown,
        flop_count=flops,
        saved_floats=saved,
    )
    return Spec(model.label, n, shape, (layer,), opts)


def _probed(spec: Spec, model: UserModel, n: int) -> Footprint:
    """The footprint a built spec shows: its weights, and what its probe saved per sample."""
    from verify import memory

    # in float32, the dtype of nearly every module (a float64 one is extrapolated half as high)
    d = math.prod(model.shape(n))
    return Footprint(n, d, 4 * memory.weight_floats(spec), 4 * memory.activation_floats(spec), "probe")


def model_specs(model: UserModel, dims: Sequence[int], *, preflight: Callable[[Any], None] | None = None) -> list[Spec]:
    """One spec per size, all built (hence checked) before any work; the file is executed once.

    With ``preflight`` (a function refusing a ``verify.memory.Plan``: the command's memory
    check), each size is first measured without allocating (``meta_footprint``; for a module
    the meta device cannot run, the next smaller size's probe scaled by d) and its building
    checked, smallest size first, before the factory runs for real.
    """
    from verify import memory

    if len(set(dims)) != len(dims):
        raise InputError("--dims: sizes must be distinct")
    factory = load_factory(model.ref)
    checkpoint = load_checkpoint(model.weights) if model.weights is not None else None
    built: dict[int, Spec] = {}
    previous: Footprint | None = None
    for n in sorted(dims):
        if preflight is not None:
            found = meta_footprint(factory, model, n)
            if found is None and previous is not None:
                found = _extrapolated(previous, model, n)
            if found is not None:
                preflight(memory.Plan((memory.module_build(found, f"--model {model.ref} --dims {n}"),)))
        built[n] = model_spec(model, n, factory, checkpoint)
        previous = _probed(built[n], model, n)
    specs = [built[n] for n in dims]
    d = [math.prod(s.input_shape) for s in specs]
    if len(set(d)) != len(d):
        raise InputError("--dims: two sizes give the same d; give distinct sizes")
    return specs
