"""Training and held-out measurement of one net: the arms of Section 4.2, one epoch at a time.

The pieces ``verify.checks.trained`` runs for every (size, arm, training run):

- ``NetFactory``: what builds the net of a size, with or without batch norm, from a
  generator. ``SpecFactory`` does it for every family of ``graphs.families`` (the spec's
  trainable module, ``verify.trainable``); ``ModelFactory`` for a user's own module
  (``--model FILE.py:FACTORY``, ``verify.usermodel``), which has no batch-norm switch: it
  keeps the normalisation its factory builds.
- ``Arm``: the training objective. ``plain`` (cross-entropy); ``gp`` (Eq. 4 with q = 1:
  ``L + (lam/2) ||d_x L||_1``, double backpropagation, ``verify.losses.penalized_loss``);
  ``pgd`` (Eq. 5 with an l_inf PGD attack of radius lam in place of the one-step attack:
  ``(L(x) + L(x + delta)) / 2``, ``verify.losses.augmented_loss``); each with or without
  batch norm and weight decay (the confounder arm of Galloway et al.: batch norm off,
  weight decay on).
- ``train_epoch``: one pass over the training images in the order of ``Stream.DATA_ORDER``
  (the PGD starts of training from ``Stream.ATTACK``, purpose 0), batch norm on batch
  statistics; while PGD looks for its attack, batch norm's running statistics are frozen so
  attack passes never enter them.
- ``evaluate``: per held-out point, with batch norm on its running statistics (the net as a
  classifier is used): correct or not, the loss, ``||d_x L||_1``, ``||d_x L||_2``, whether an
  l_inf PGD attack flips the predicted label (``vulnerability``) and the loss it gains.

Units. The net sees normalised inputs ``(x - mean) / std`` (training-set pixel mean and
standard deviation); gradients are taken with respect to that input, as the theorems do.
Every eps and lam is a fraction of the pixel range [0, 1] and is divided by ``std`` before
use, so an attack of ``eps`` moves each pixel by at most ``eps`` of its range. Attacks are
not clipped to the pixel range (``verify.attacks.pgd_attack`` works on unbounded inputs).

Layout. Image batches and conv nets are channels-last (``channels_last_module``): oneDNN runs
the small convolutions of these nets about twice as fast on a CPU that way (paper-net, 8
channels, 112 px, batch 32, one thread: plain and PGD training steps 2.1x faster; the gradient
penalty's double backpropagation gains nothing; ``bench/bench_training.py`` prints it).
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from graphs.errors import InputError
from graphs.rng import Stream, generator_for
from graphs.spec import Spec
from verify.attacks import pgd_attack
from verify.data import upsample_tensor
from verify.losses import augmented_loss, penalized_loss

__all__ = [
    "EVAL_QUANTITIES",
    "METHODS",
    "Arm",
    "AttackSettings",
    "ModelFactory",
    "NetFactory",
    "SpecFactory",
    "TrainSettings",
    "channels_last_module",
    "evaluate",
    "frozen_batch_norm_statistics",
    "make_optimizer",
    "train_epoch",
]

METHODS = ("plain", "gp", "pgd")
EVAL_QUANTITIES = ("accuracy", "loss", "loss_grad_l1", "loss_grad_l2", "vulnerability", "adv_loss_gain")
_TRAIN_PURPOSE, _EVAL_PURPOSE = 0, 1  # keys of Stream.ATTACK


@dataclass(frozen=True)
class Arm:
    """One training objective (module docstring). ``lam`` is a fraction of the pixel range."""

    method: str
    lam: float = 0.0
    bn: bool = True
    weight_decay: float = 0.0
    # a user's module: no batch-norm switch, the net keeps the normalisation its factory builds
    own_norm: bool = False

    @property
    def name(self) -> str:
        base = self.method if self.method == "plain" else f"{self.method}-{self.lam:g}"
        if not self.bn and not self.own_norm:
            base = "nobn" if base == "plain" else f"{base}-nobn"
        if self.weight_decay > 0:
            base += f"-wd{self.weight_decay:g}"
        return base

    @property
    def init_key(self) -> str:
        """The arms sharing this key start from one net (the same initial weights)."""
        if self.own_norm:
            return "init"
        return "init-bn" if self.bn else "init-nobn"

    @property
    def norm_text(self) -> str:
        """The arm's normalisation in words."""
        if self.own_norm:
            return "the module's own normalisation"
        return f"batch norm {'on' if self.bn else 'off'}"

    def describe(self) -> str:
        what = {
            "plain": "cross-entropy",
            "gp": f"gradient penalty (Eq. 4, q = 1), lam = {self.lam:g}",
            "pgd": f"PGD adversarial training (Eq. 5, l_inf PGD of radius {self.lam:g})",
        }[self.method]
        return f"{what}, {self.norm_text}, weight decay {self.weight_decay:g}"


@dataclass(frozen=True)
class AttackSettings:
    """An l_inf PGD attack: radius ``eps`` (fraction of the pixel range), ``steps`` steps of
    ``step_size * eps``, from a uniform random start in the cube."""

    eps: float
    steps: int
    step_size: float
    random_start: bool = True

    def describe(self) -> str:
        start = "random start (uniform in the cube)" if self.random_start else "no random start"
        return (
            f"l_inf PGD, eps = {self.eps:g} of the pixel range, {self.steps} steps of {self.step_size:g} eps, "
            f"{start}, final iterate, no clipping to the pixel range"
        )


@dataclass(frozen=True)
class TrainSettings:
    """Optimiser and schedule shared by every arm."""

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "sgd"  # "sgd" (momentum 0.9) or "adam"
    pgd_steps: int = 7
    pgd_step_size: float = 0.2  # fraction of lam, the paper's 7 x 0.2 eps


class NetFactory(Protocol):
    """Builds the net of one size; ``verify.checks.trained`` needs nothing else of an architecture
    (an optional ``flops(dim)``, the forward cost of one input, lets the runtime pick threads)."""

    @property
    def name(self) -> str: ...

    @property
    def has_bn_option(self) -> bool: ...

    def d(self, dim: int) -> int: ...

    def input_shape(self, dim: int) -> tuple[int, ...]: ...

    def build(self, dim: int, bn: bool, generator: torch.Generator, device: torch.device) -> nn.Module: ...

    def settings(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SpecFactory:
    """A family of ``graphs.families`` as a ``NetFactory``: images of side ``dim`` with
    ``in_channels`` channels (vector families see them flattened, d = channels * dim^2)."""

    arch: str
    options: tuple[tuple[str, Any], ...]
    in_channels: int
    num_classes: int

    @property
    def name(self) -> str:
        return self.arch

    @property
    def has_bn_option(self) -> bool:
        from graphs.families import family

        return any(o.name == "bn" for o in family(self.arch).options)

    def spec(self, dim: int, bn: bool) -> Spec:
        from graphs.families import family
        from graphs.spec import build_spec

        opts = dict(self.options)
        if self.has_bn_option:
            # training uses batch statistics, evaluation the running ones (module.eval())
            opts.update(bn="on" if bn else "off", bn_mode="train")
        opts["num_classes"] = self.num_classes
        if family(self.arch).image:
            return build_spec(self.arch, dim, in_channels=self.in_channels, **opts)
        return build_spec(self.arch, self.in_channels * dim * dim, **opts)

    def d(self, dim: int) -> int:
        return self.spec(dim, True).d

    def input_shape(self, dim: int) -> tuple[int, ...]:
        return self.spec(dim, True).input_shape

    def build(self, dim: int, bn: bool, generator: torch.Generator, device: torch.device) -> nn.Module:
        from verify.model import init_params
        from verify.trainable import TrainableNet

        spec = self.spec(dim, bn)
        return TrainableNet(spec, init_params(spec, generator), device=device)

    def flops(self, dim: int) -> int:
        """Forward cost of one image (the runtime's thread policy reads it)."""
        from verify.engine import forward_flops

        return forward_flops(self.spec(dim, True))

    def settings(self) -> dict[str, Any]:
        return {"arch": self.arch, "options": dict(self.options), "in_channels": self.in_channels}


@dataclass(frozen=True, eq=False)
class ModelFactory:
    """A user's module (``verify.usermodel``) as a ``NetFactory``.

    Convention: for image side n (``dims``), ``FACTORY(n)`` takes ``C x n x n`` images with the data's C
    channels (``--input-shape image``) or ``FACTORY(d)`` vectors of ``d = C n^2`` coordinates
    (``vector``), and returns ``(batch, num_classes)`` logits. Each size's spec is built once,
    before any training, on first use (``verify.usermodel.model_specs``: every check is a
    one-line ``InputError``; ``TrainedConfig`` uses every size when it is made).

    How run i's net is built (``build``, from the run's generator ``Stream.TRAIN_INIT``):

    - a module traced into layer kinds with ``init="he"``: the traced spec's ``TrainableNet``
      with ``verify.model.init_params`` (He weights, biases 0, batch norm at the identity), as
      ``SpecFactory`` does for a family;
    - otherwise (``--init keep``, or a module the tracer cannot read): a copy of the module
      itself, its parameters and buffers set from the spec's ``ModuleLayer`` draw: the module's
      own initialisation rebuilt with the global RNG seeded from the run's generator, the
      checkpoint of ``--weights`` (every run starts from it), or He draws. Training runs the
      module itself, so its batch norm keeps and updates its own running statistics (they are
      never trained as weights). The module is trained in float32.

    Either way the module keeps the normalisation it has: ``has_bn_option`` is False and there
    is no batch-norm-off confounder arm.
    """

    model: Any  # verify.usermodel.UserModel
    dims: tuple[int, ...]  # the image sides
    num_classes: int = 10
    data: str = "the data"
    # the command's memory refusal of a ``verify.memory.Plan`` (``model_specs``'s ``preflight``)
    preflight: Callable[[Any], None] | None = field(default=None, repr=False)
    _specs: dict[int, Spec] = field(default_factory=dict, repr=False)

    def factory_size(self, dim: int) -> int:
        """What FACTORY gets for image side ``dim``: n for images, d = C n^2 for vectors."""
        return dim if self.model.input_shape == "image" else self.model.in_channels * dim * dim

    @property
    def sizes(self) -> dict[int, Spec]:
        """Image side -> the module's spec there; every size is built and checked on first use
        (``verify.usermodel.model_specs``), and a module whose logits are not ``num_classes``
        is refused."""
        if not self._specs:
            from verify.usermodel import model_specs

            args = [self.factory_size(n) for n in self.dims]
            specs = model_specs(self.model, args, preflight=self.preflight)
            for n, spec in zip(args, specs):
                if spec.num_classes != self.num_classes:
                    raise InputError(
                        f"--model: {self.model.ref}({n}) returns {spec.num_classes} logits; {self.data} has "
                        f"{self.num_classes} classes: make the factory return (batch, {self.num_classes}) logits"
                    )
            self._specs.update(zip(self.dims, specs))
        return self._specs

    @property
    def name(self) -> str:
        return self.model.label

    @property
    def has_bn_option(self) -> bool:
        return False

    def spec(self, dim: int, bn: bool = True) -> Spec:
        """The module's spec at image side ``dim`` (``bn`` is ignored: the module keeps its own)."""
        sizes = self.sizes
        if dim not in sizes:
            raise ValueError(f"size {dim} is not one of the factory's sizes {list(sizes)}")
        return sizes[dim]

    def d(self, dim: int) -> int:
        return self.spec(dim).d

    def input_shape(self, dim: int) -> tuple[int, ...]:
        return self.spec(dim).input_shape

    def build(self, dim: int, bn: bool, generator: torch.Generator, device: torch.device) -> nn.Module:
        from graphs.layers.module import ModuleLayer
        from verify.model import init_params
        from verify.trainable import TrainableNet

        spec = self.spec(dim)
        params = init_params(spec, generator)
        layer = spec.layers[0]
        if len(spec.layers) > 1 or not isinstance(layer, ModuleLayer):
            return TrainableNet(spec, params, device=device)
        module = copy.deepcopy(layer.module)
        weight = params[0]
        assert weight is not None
        values = layer.unflatten(weight)
        state = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        with torch.no_grad():
            for name, value in values.items():
                state[name].copy_(value.to(dtype=state[name].dtype))
        return module.float().to(device)

    def flops(self, dim: int) -> int:
        """Forward cost of one input (the runtime's thread policy reads it)."""
        from verify.engine import forward_flops

        return forward_flops(self.spec(dim))

    def settings(self) -> dict[str, Any]:
        """The module's settings (``verify.usermodel.model_settings``: file, factory, SHA-256 of the
        file and of ``--weights``, input shape, init), whether it was traced, and its classes."""
        spec = self.spec(self.dims[0])
        options = {k: v for k, v in spec.options.items() if k != "mode"}
        options["num_classes"] = spec.num_classes
        return {"arch": self.name, "options": options, "in_channels": self.model.in_channels}

    def describe(self) -> str:
        """The net in words (the report's settings)."""
        o = self.settings()["options"]
        shape = (
            f"{self.model.in_channels} x n x n images, FACTORY(n)"
            if self.model.input_shape == "image"
            else f"vectors of d = {self.model.in_channels} n^2 coordinates, FACTORY(d)"
        )
        traced = all(spec.options.get("traced") for spec in self.sizes.values())
        digest = o.get("model_sha256")
        if self.model.init == "he":
            init = (
                "He draws (N(0, 2/fan-in) weights, biases 0, normalisation at the identity) from each run's generator"
            )
        elif self.model.weights is not None:
            init = f"the checkpoint {self.model.weights} (SHA-256 {str(o.get('weights_sha256'))[:12]}) for every run"
        else:
            init = "the module's own initialisation, rebuilt per run with torch's RNG seeded from the run's generator"
        how = (
            "traced into layer kinds and trained as the traced net"
            if traced and self.model.init == "he"
            else "trained as the module itself (its batch norm keeps its own running statistics)"
        )
        return (
            f"your module `{self.model.ref}` ({f'file SHA-256 {digest[:12]}' if digest else 'no source file'}), {shape}, "
            f"{o.get('num_classes')} logits; init: {init}; {how}. It has no batch-norm switch: the module decides its "
            "own normalisation, so no batch-norm-off arm is trained"
        )


def channels_last_module(module: nn.Module, input_shape: tuple[int, ...]) -> nn.Module:
    """``module`` in channels-last layout when it takes images (module docstring)."""
    if len(input_shape) != 3:
        return module
    return module.to(memory_format=torch.channels_last)  # pyright: ignore[reportCallIssue]


def make_optimizer(module: nn.Module, settings: TrainSettings, weight_decay: float) -> torch.optim.Optimizer:
    if settings.optimizer == "adam":
        return torch.optim.Adam(module.parameters(), lr=settings.lr, weight_decay=weight_decay)
    return torch.optim.SGD(module.parameters(), lr=settings.lr, momentum=0.9, weight_decay=weight_decay)


@contextlib.contextmanager
def frozen_batch_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Batch norm keeps using batch statistics but stops updating its running ones."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom


class _Inputs:
    """Images of the native side -> the net's normalised inputs at side ``dim`` (upsampled per batch)."""

    def __init__(self, dim: int, native: int, mean: float, std: float, shape: tuple[int, ...]):
        if dim % native:
            raise ValueError(f"size {dim} is not a multiple of the native side {native}")
        self.factor = dim // native
        self.mean, self.std, self.shape = mean, std, shape

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = ((upsample_tensor(x, self.factor) - self.mean) / self.std).reshape(x.shape[0], *self.shape)
        return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def _loss_fn(module: nn.Module, y: torch.Tensor):
    def loss(x: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(module(x), y, reduction="none")

    return loss


def train_epoch(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    arm: Arm,
    settings: TrainSettings,
    *,
    dim: int,
    native: int,
    mean: float,
    std: float,
    input_shape: tuple[int, ...],
    seed: int,
    run: int,
    epoch: int,
    progress: bool = False,
    desc: str = "",
) -> np.ndarray:
    """One epoch over ``x, y`` (native-side images on the module's device); the batch losses."""
    from tqdm import tqdm

    prepare = _Inputs(dim, native, mean, std, input_shape)
    order = torch.randperm(len(y), generator=generator_for(Stream.DATA_ORDER, seed, run, epoch)).to(y.device)
    n_batches = math.ceil(len(y) / settings.batch_size)
    losses = np.empty(n_batches)
    lam = arm.lam / std
    module.train()
    bar = tqdm(total=n_batches, desc=desc, unit="batch", disable=not progress, file=sys.stderr, leave=False)
    with bar:
        for b in range(n_batches):
            idx = order[b * settings.batch_size : (b + 1) * settings.batch_size]
            xb, yb = prepare(x[idx]), y[idx]
            loss_fn = _loss_fn(module, yb)
            if arm.method == "gp":
                loss = penalized_loss(loss_fn, xb, lam, 1.0).mean()
            elif arm.method == "pgd":
                gen = generator_for(Stream.ATTACK, seed, run, _TRAIN_PURPOSE, epoch, b)
                with frozen_batch_norm_statistics(module):
                    delta = pgd_attack(
                        loss_fn,
                        xb,
                        math.inf,
                        lam,
                        steps=settings.pgd_steps,
                        step_size=settings.pgd_step_size,
                        generator=gen,
                    )
                loss = augmented_loss(loss_fn, xb, lam, math.inf, delta=delta / lam).mean()
            else:
                loss = loss_fn(xb).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses[b] = float(loss.detach())
            bar.update(1)
    return losses


def evaluate(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: AttackSettings,
    *,
    dim: int,
    native: int,
    mean: float,
    std: float,
    input_shape: tuple[int, ...],
    seed: int,
    run: int,
    epoch: int,
    batch_size: int = 128,
) -> dict[str, np.ndarray]:
    """Per held-out point: ``EVAL_QUANTITIES`` (module docstring), batch norm on running statistics."""
    prepare = _Inputs(dim, native, mean, std, input_shape)
    eps = attack.eps / std
    module.eval()
    out: dict[str, list[np.ndarray]] = {q: [] for q in EVAL_QUANTITIES}
    for b, lo in enumerate(range(0, len(y), batch_size)):
        xb = prepare(x[lo : lo + batch_size]).detach().requires_grad_(True)
        yb = y[lo : lo + batch_size]
        with torch.enable_grad():
            logits = module(xb)
            loss = F.cross_entropy(logits, yb, reduction="none")
            (g,) = torch.autograd.grad(loss.sum(), xb)
        pred = logits.detach().argmax(dim=1)
        flat = g.reshape(g.shape[0], -1)
        gen = generator_for(Stream.ATTACK, seed, run, _EVAL_PURPOSE, epoch, b)
        delta = pgd_attack(
            _loss_fn(module, yb),
            xb.detach(),
            math.inf,
            eps,
            steps=attack.steps,
            step_size=attack.step_size,
            generator=gen,
            random_init=attack.random_start,
        )
        with torch.no_grad():
            adv_logits = module(xb.detach() + delta)
            adv_loss = F.cross_entropy(adv_logits, yb, reduction="none")
        values = {
            "accuracy": (pred == yb).double(),
            "loss": loss.detach().double(),
            "loss_grad_l1": flat.abs().sum(dim=1).double(),
            "loss_grad_l2": flat.double().norm(dim=1),
            "vulnerability": (adv_logits.argmax(dim=1) != pred).double(),
            "adv_loss_gain": (adv_loss - loss.detach()).double(),
        }
        for q, v in values.items():
            out[q].append(v.cpu().numpy())
    return {q: np.concatenate(v) for q, v in out.items()}
