"""Section 4.2 on trained nets: does the dependence on d survive training, and is batch norm its cause?

``check_trained(config)`` trains one net per (size, arm, training run) on real images
upsampled by copying pixels (``verify.data``), measures every epoch on held-out images
(``verify.training.evaluate``: accuracy, ``E||d_x L||_1``, ``E||d_x L||_2``, the share of
points whose label an l_inf PGD attack flips, the loss it gains), and fits the slope of each
against d, with a BCa bootstrap over training runs paired across sizes (run i of every size
starts from the same weights and sees the same batches, ``graphs.rng``), at initialisation
(epoch 0) and after training. Two claims are weighed:

- the paper's (Section 4.2, Fig. 2): even after training, ``E||d_x L||_1`` and the
  vulnerability grow like sqrt(d) (slope 1/2 against d), less so with stronger gradient
  penalty or PGD training;
- Galloway et al. (2019, "Batch norm is a cause of adversarial vulnerability"): the paper's
  nets had batch norm; without it and with weight decay the dependence on the input size
  largely disappears (slope near 0).

The arm that separates them is batch norm off with weight decay: slope 1/2 there supports the
paper, slope 0 Galloway et al.; the paired difference of slopes with and without batch norm
says whether batch norm changes the dependence at all.

Checkpoints. With ``checkpoint_dir`` every (size, arm, run, epoch) is saved
(``verify.checkpoints``) under a key of the settings, and a run started again with the same
settings resumes from the last complete epoch of each training run: the result is the one an
uninterrupted run gives (same streams, same state).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, cast

import numpy as np
import pandas as pd

from graphs.errors import InputError
from graphs.rng import check_seed
from verify.checks.common import check_fit
from verify.data import DATASETS, NATIVE_SIDE, ImageData
from verify.progress import Progress, as_progress
from verify.results import Claim, Interval, Verdict
from verify.stats import SlopeFit, band_verdict, bound_verdict, fit_power_law, slope_difference, t_interval
from verify.training import EVAL_QUANTITIES, METHODS, Arm, AttackSettings, NetFactory, TrainSettings

__all__ = [
    "FIT_QUANTITIES",
    "GALLOWAY_SLOPE",
    "PAPER_SLOPE",
    "Comparison",
    "SlopeResult",
    "TrainedConfig",
    "TrainedResult",
    "check_trained",
    "default_arms",
]

# The paper's prediction (Thm 4/5 + (S), Cor. 6, carried to trained nets by Section 4.2) and
# Galloway et al.'s for nets without batch norm trained with weight decay.
PAPER_SLOPE = 0.5
GALLOWAY_SLOPE = 0.0
FIT_QUANTITIES = ("loss_grad_l1", "loss_grad_l2", "vulnerability", "adv_loss_gain")
# the slope each quantity has at initialisation under the theorems (Thm 4/5, Cor. 6, Lemma 2)
INIT_SLOPES = {"loss_grad_l1": 0.5, "loss_grad_l2": 0.0, "vulnerability": 0.5, "adv_loss_gain": 0.5}
CLAIM_QUANTITIES = ("loss_grad_l1", "vulnerability")
_H = ("H1", "H2", "H3", "H4", "H5", "(S)")
_LABELS = {
    "loss_grad_l1": "E||d_x L||_1",
    "loss_grad_l2": "E||d_x L||_2",
    "vulnerability": "vulnerability (share of labels flipped)",
    "adv_loss_gain": "loss gained under attack",
}


def default_arms(
    lambdas: Sequence[float], methods: Sequence[str], *, bn: bool, weight_decay: float, own_norm: bool = False
) -> tuple[Arm, ...]:
    """plain, each of ``methods`` (gp, pgd) at each lam, and the confounder arm (batch norm
    off, weight decay ``weight_decay``) when ``weight_decay`` is positive. ``own_norm``: a
    user's module, which has no batch-norm switch (``verify.training.ModelFactory``): its arms
    keep the module's normalisation and there is no confounder arm."""
    if own_norm:
        robust = [Arm(m, float(lam), True, own_norm=True) for m in methods for lam in lambdas]
        return (Arm("plain", 0.0, True, own_norm=True), *robust)
    arms = [Arm("plain", 0.0, bn)]
    for m in methods:
        arms += [Arm(m, float(lam), bn) for lam in lambdas]
    if weight_decay > 0:
        arms.append(Arm("plain", 0.0, False, float(weight_decay)))
    return tuple(arms)


@dataclass(frozen=True)
class TrainedConfig:
    """What to train and measure (module docstring)."""

    factory: NetFactory
    data: str
    dims: tuple[int, ...]
    arms: tuple[Arm, ...]
    train: TrainSettings
    attack: AttackSettings
    seeds: int = 3
    seed: int = 0
    data_dir: str | None = None
    train_size: int = 1000
    test_size: int = 200
    eval_batch: int = 128
    margin: float = 0.1
    n_boot: int = 2000
    checkpoint_dir: str | None = None

    def __post_init__(self) -> None:
        if self.data not in DATASETS:
            raise InputError(f"--data {self.data!r}: choose one of {', '.join(DATASETS)}")
        native = NATIVE_SIDE[self.data]
        dims = tuple(sorted(int(v) for v in self.dims))
        object.__setattr__(self, "dims", dims)
        if len(dims) < 2 or len(set(dims)) != len(dims):
            raise InputError(
                f"--dims: give at least two distinct sizes, e.g. --dims {native},{2 * native},{4 * native}"
            )
        bad = [v for v in dims if v % native]
        if bad:
            raise InputError(
                f"--dims {','.join(map(str, bad))}: {self.data} images are {native}x{native} and are upsampled by copying "
                f"pixels, so every size must be a multiple of {native}; e.g. --dims {native},{2 * native},{4 * native}"
            )
        if self.seeds < 2:
            raise InputError(
                f"--seeds: {self.seeds} is too small (an interval needs spread between training runs); give 2 or more"
            )
        check_seed(self.seed)
        if not self.arms:
            raise InputError("no training arm left; give --methods and --lambdas, or a positive --weight-decay")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise InputError(f"two arms have the same name ({', '.join(names)}); give distinct --lambdas")
        for a in self.arms:
            if a.method not in METHODS:
                raise InputError(f"--methods: {a.method!r} is not one of {', '.join(METHODS[1:])}")
            if a.method != "plain" and not (math.isfinite(a.lam) and a.lam > 0):
                raise InputError(f"--lambdas: {a.lam} is not positive; give e.g. --lambdas 0.01,0.03")
            if not (math.isfinite(a.weight_decay) and a.weight_decay >= 0):
                raise InputError(f"--weight-decay: {a.weight_decay} is negative; give e.g. --weight-decay 5e-4")
        t = self.train
        for flag, value in (("--epochs", t.epochs), ("--batch-size", t.batch_size)):
            if value < 1:
                raise InputError(f"{flag}: {value} is too small; give an integer >= 1")
        if t.optimizer not in ("sgd", "adam"):
            raise InputError(f"--optimizer {t.optimizer!r}: choose sgd or adam")
        if not (math.isfinite(t.lr) and t.lr > 0):
            raise InputError(f"--lr: {t.lr} is not positive; give e.g. --lr 0.01")
        for flag, steps, size in (
            ("--train-pgd", t.pgd_steps, t.pgd_step_size),
            ("--attack", self.attack.steps, self.attack.step_size),
        ):
            if steps < 1 or not (math.isfinite(size) and size > 0):
                raise InputError(f"{flag}-steps / {flag}-step-size: give at least one step of a positive size")
        if not (math.isfinite(self.attack.eps) and self.attack.eps > 0):
            raise InputError(f"--attack-eps: {self.attack.eps} is not positive; give e.g. --attack-eps 0.01")
        for flag, value in (("--train-size", self.train_size), ("--test-size", self.test_size)):
            if value < 0:
                raise InputError(f"{flag}: {value} is negative; give a count, or 0 for the whole set")
        if self.eval_batch < 1:
            raise InputError(f"--eval-batch: {self.eval_batch} is too small; give an integer >= 1")
        check_fit(self.margin, self.n_boot, example=0.1)
        # every net is built (hence validated) before anything is trained
        spec_of = getattr(self.factory, "spec", None)
        for v in dims:
            self.factory.input_shape(v)
            for bn in sorted({a.bn for a in self.arms}):
                if spec_of is not None:
                    spec_of(v, bn)

    @property
    def native(self) -> int:
        return NATIVE_SIDE[self.data]

    @property
    def epochs(self) -> int:
        return self.train.epochs

    def settings(self) -> dict[str, Any]:
        """Every setting that changes the numbers (the JSON ``run`` and the report)."""
        return {
            **self.factory.settings(),
            "data": self.data,
            "data_dir": self.data_dir,
            "dims": list(self.dims),
            "d": [self.factory.d(v) for v in self.dims],
            "seeds": self.seeds,
            "seed": self.seed,
            "train_size": self.train_size,
            "test_size": self.test_size,
            "arms": [a.name for a in self.arms],
            "train": {
                "epochs": self.train.epochs,
                "batch_size": self.train.batch_size,
                "lr": self.train.lr,
                "optimizer": self.train.optimizer,
                "pgd_steps": self.train.pgd_steps,
                "pgd_step_size": self.train.pgd_step_size,
            },
            "attack": {
                "eps": self.attack.eps,
                "steps": self.attack.steps,
                "step_size": self.attack.step_size,
                "random_start": self.attack.random_start,
            },
            "eval_batch": self.eval_batch,
            "margin": self.margin,
            "n_boot": self.n_boot,
        }

    def checkpoint_key(self) -> str:
        """A hash of what a checkpoint depends on: a run resumes only from its own settings.

        Neither the number of epochs nor of runs, nor the sizes or arms, enter it: each
        (size, arm, run) has its own folder, so a longer or larger run reuses what exists. The
        toolkit's version does, so a new release never resumes from an old one's checkpoints.
        """
        from verify.version import __version__

        s = self.settings()
        key = {k: v for k, v in s.items() if k not in ("dims", "d", "seeds", "arms", "margin", "n_boot")}
        key["version"] = __version__
        key["train"] = {k: v for k, v in s["train"].items() if k != "epochs"}
        text = json.dumps(key, sort_keys=True, default=str)
        return f"{self.factory.name}-{self.data}-" + hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class SlopeResult:
    """The fitted slope of one quantity against d for one arm at one epoch (``fit`` None when
    no power law exists, e.g. no label flipped at some size: ``reason`` says why)."""

    arm: str
    epoch: int
    quantity: str
    fit: SlopeFit | None
    reason: str = ""

    @property
    def interval(self) -> Interval:
        return self.fit.interval if self.fit is not None else Interval.none()

    @property
    def slope(self) -> float:
        return self.fit.slope if self.fit is not None else math.nan


@dataclass(frozen=True)
class Comparison:
    """The paper against Galloway et al. on one quantity, after training."""

    quantity: str
    bn_arm: str
    nobn_arm: str
    bn: SlopeResult
    nobn: SlopeResult
    difference: float
    difference_interval: Interval
    paper_verdict: Verdict  # slope without batch norm against 1/2
    galloway_verdict: Verdict  # slope without batch norm against 0
    bn_effect_verdict: Verdict  # Galloway et al.: batch norm raises the slope (difference > 0)

    @property
    def supports(self) -> str:
        """``paper`` or ``galloway`` (its band holds the interval, the other's misses it),
        ``leans-paper`` or ``leans-galloway`` (the other's band is missed, its own not yet
        settled), ``neither`` (both bands missed) or ``undecided``."""
        p, g = self.paper_verdict, self.galloway_verdict
        if p is Verdict.CONSISTENT and g is Verdict.INCONSISTENT:
            return "paper"
        if g is Verdict.CONSISTENT and p is Verdict.INCONSISTENT:
            return "galloway"
        if p is Verdict.INCONSISTENT and g is Verdict.INCONSISTENT:
            return "neither"
        if p is Verdict.INCONSISTENT:
            return "leans-galloway"
        if g is Verdict.INCONSISTENT:
            return "leans-paper"
        return "undecided"


@dataclass(frozen=True)
class TrainedResult:
    """Everything ``check_trained`` trained, measured and concluded."""

    config: TrainedConfig
    records: pd.DataFrame = field(repr=False)
    slopes: tuple[SlopeResult, ...]
    claims_list: tuple[Claim, ...]
    comparisons: tuple[Comparison, ...]
    data_info: dict[str, Any]
    broken: tuple[str, ...]  # hypotheses the architecture breaks by construction
    checkpoints_loaded: int
    epochs_trained: int

    @property
    def claims(self) -> list[Claim]:
        return list(self.claims_list)

    def slope(self, arm: str, epoch: int, quantity: str) -> SlopeResult:
        for s in self.slopes:
            if s.arm == arm and s.epoch == epoch and s.quantity == quantity:
                return s
        raise KeyError((arm, epoch, quantity))

    def per_seed(self, quantity: str, epoch: int) -> pd.DataFrame:
        """Mean of ``quantity`` over the held-out points, per (arm, dim, run) at ``epoch``."""
        r = self.records
        sub = r[(r["quantity"] == quantity) & (r["epoch"] == epoch)]
        return sub.groupby(["arm", "dim", "d", "draw"], sort=True)["value"].mean().reset_index()

    def summary_table(self, quantity: str, epoch: int) -> dict[tuple[str, int], tuple[float, Interval]]:
        """(arm, dim) -> mean over runs of the per-run means, and its t interval."""
        out = {}
        for key, g in self.per_seed(quantity, epoch).groupby(["arm", "dim"]):
            arm, dim = cast("tuple[str, int]", key)
            out[(str(arm), int(dim))] = t_interval(g["value"].to_numpy())
        return out


# ----------------------------------------------------------------------------- training


def _frame(arch: str, dim: int, d: int, run: int, arm: str, epoch: int, values: dict[str, np.ndarray]) -> pd.DataFrame:
    parts = []
    for q, v in values.items():
        n = len(v)
        parts.append(
            pd.DataFrame(
                {
                    "arch": arch,
                    "dim": dim,
                    "d": d,
                    "draw": run,
                    "input": np.arange(n, dtype=np.int64),
                    "quantity": q,
                    "arm": arm,
                    "epoch": epoch,
                    "value": np.asarray(v, dtype=np.float64),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


class _Runner:
    """Trains and measures every (size, arm, run), resuming from checkpoints."""

    def threads(self, dim: int):
        """The runtime's thread policy for a training batch at ``dim`` (one thread for small work:
        two threads stall on a loaded 2-core machine, ``verify.runtime``)."""
        if self.rt is None:
            return _nothing()
        flops = getattr(self.config.factory, "flops", None)
        work = None if flops is None else flops(dim) * self.config.train.batch_size
        return self.rt.threads_for(work)

    def __init__(self, config: TrainedConfig, data: ImageData, rt, progress: bool):
        import torch

        from verify.checkpoints import CheckpointStore

        self.config = config
        self.device = rt.device if rt is not None else torch.device("cpu")
        self.progress = progress
        self.rt = rt
        self.x_train = torch.from_numpy(data.train_x).to(self.device)
        self.y_train = torch.from_numpy(data.train_y).to(self.device)
        self.x_test = torch.from_numpy(data.test_x).to(self.device)
        self.y_test = torch.from_numpy(data.test_y).to(self.device)
        self.mean, self.std = data.mean, data.std
        self.store = (
            CheckpointStore(Path(config.checkpoint_dir) / config.checkpoint_key()) if config.checkpoint_dir else None
        )
        self.loaded = 0
        self.trained = 0
        self._init: dict[tuple[int, str, int], dict[str, np.ndarray]] = {}

    def _geometry(self, dim: int) -> dict[str, Any]:
        return {
            "dim": dim,
            "native": self.config.native,
            "mean": self.mean,
            "std": self.std,
            "input_shape": tuple(self.config.factory.input_shape(dim)),
        }

    def _evaluate(self, module, dim: int, run: int, epoch: int) -> dict[str, np.ndarray]:
        from verify.training import evaluate

        c = self.config
        return evaluate(
            module,
            self.x_test,
            self.y_test,
            c.attack,
            seed=c.seed,
            run=run,
            epoch=epoch,
            batch_size=c.eval_batch,
            **self._geometry(dim),
        )

    def _save(self, dim: int, arm: str, run: int, epoch: int, module, optimizer, values, losses) -> None:
        import torch

        if self.store is None:
            return
        payload = {
            "format": 1,
            "key": self.config.checkpoint_key(),
            "dim": dim,
            "arm": arm,
            "run": run,
            "epoch": epoch,
            "model": module.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else {},
            "eval": {q: torch.from_numpy(np.asarray(v, dtype=np.float64)) for q, v in values.items()},
            "train_loss": torch.from_numpy(np.asarray(losses, dtype=np.float64)),
        }
        self.store.save(dim, arm, run, epoch, payload)

    def _load(self, dim: int, arm: str, run: int, epoch: int) -> dict[str, Any] | None:
        if self.store is None or epoch not in self.store.epochs(dim, arm, run):
            return None
        ck = self.store.load(dim, arm, run, epoch)
        self.loaded += 1
        return ck

    def initial(self, module, dim: int, arm: Arm, run: int) -> dict[str, np.ndarray]:
        """Epoch 0 of ``arm``: measured once per (size, initial net, run)."""
        key = (dim, arm.init_key, run)
        if key not in self._init:
            ck = self._load(dim, arm.init_key, run, 0)
            if ck is not None:
                values = {q: ck["eval"][q].numpy() for q in EVAL_QUANTITIES}
            else:
                values = self._evaluate(module, dim, run, 0)
                self._save(dim, arm.init_key, run, 0, module, None, values, [])
            self._init[key] = values
        return self._init[key]

    def run(self, dim: int, arm: Arm, run: int, bar_desc: str) -> list[pd.DataFrame]:
        """Train one net for the configured epochs (resuming); its records, epoch 0 included."""
        from tqdm import tqdm

        from graphs.rng import Stream, generator_for
        from verify.training import channels_last_module, make_optimizer, train_epoch

        c = self.config
        arch, d = c.factory.name, c.factory.d(dim)
        module = c.factory.build(dim, arm.bn, generator_for(Stream.TRAIN_INIT, c.seed, run), self.device)
        module = channels_last_module(module, tuple(c.factory.input_shape(dim)))
        optimizer = make_optimizer(module, c.train, arm.weight_decay)
        frames = [_frame(arch, dim, d, run, arm.name, 0, self.initial(module, dim, arm, run))]
        done = set(self.store.epochs(dim, arm.name, run)) if self.store is not None else set()
        last = 0
        while last + 1 in done and last + 1 <= c.epochs:
            last += 1
        for e in range(1, last + 1):
            ck = self._load(dim, arm.name, run, e)
            assert ck is not None
            frames.append(_frame(arch, dim, d, run, arm.name, e, {q: ck["eval"][q].numpy() for q in EVAL_QUANTITIES}))
            frames.append(_frame(arch, dim, d, run, arm.name, e, {"train_loss": ck["train_loss"].numpy()}))
            if e == last:
                module.load_state_dict(ck["model"])
                optimizer.load_state_dict(ck["optimizer"])
        bar = tqdm(
            total=c.epochs,
            initial=last,
            desc=bar_desc,
            unit="epoch",
            disable=not self.progress,
            file=sys.stderr,
            leave=False,
        )
        with bar:
            for e in range(last + 1, c.epochs + 1):
                losses = train_epoch(
                    module,
                    optimizer,
                    self.x_train,
                    self.y_train,
                    arm,
                    c.train,
                    seed=c.seed,
                    run=run,
                    epoch=e,
                    progress=self.progress,
                    desc=f"epoch {e}",
                    **self._geometry(dim),
                )
                values = self._evaluate(module, dim, run, e)
                self._save(dim, arm.name, run, e, module, optimizer, values, losses)
                self.trained += 1
                frames.append(_frame(arch, dim, d, run, arm.name, e, values))
                frames.append(_frame(arch, dim, d, run, arm.name, e, {"train_loss": losses}))
                bar.update(1)
        return frames


# ----------------------------------------------------------------------------- analysis


def _fit(records: pd.DataFrame, arm: str, epoch: int, quantity: str, config: TrainedConfig) -> SlopeResult:
    sub = records.loc[(records["arm"] == arm) & (records["epoch"] == epoch) & (records["quantity"] == quantity)]
    means = sub.groupby("dim")["value"].mean()
    if (means <= 0).any():
        zero = [int(v) for v, m in means.items() if not m > 0]
        what = "no label flipped" if quantity == "vulnerability" else "a non-positive mean"
        return SlopeResult(arm, epoch, quantity, None, f"{what} at size(s) {zero}: no power law")
    try:
        fit = fit_power_law(sub, quantity, "d", n_boot=config.n_boot, seed=config.seed)
    except ValueError as exc:
        return SlopeResult(arm, epoch, quantity, None, str(exc))
    return SlopeResult(arm, epoch, quantity, fit)


def _claim(name: str, statement: str, result: SlopeResult, predicted: float, margin: float, broken, note="") -> Claim:
    verdict = band_verdict(result.interval, predicted, margin) if result.fit is not None else Verdict.INCONCLUSIVE
    notes = [n for n in (note, result.reason) if n]
    return Claim(
        name=name,
        statement=statement,
        predicted=predicted,
        estimate=result.slope if result.fit is not None else None,
        interval=result.interval,
        verdict=verdict,
        hypotheses_needed=_H,
        hypotheses_broken=tuple(h for h in broken if h in _H),
        note="; ".join(notes),
    )


def _analyse(records: pd.DataFrame, config: TrainedConfig, broken: tuple[str, ...]):
    slopes: list[SlopeResult] = []
    arms = config.arms
    final = config.epochs
    init_done: dict[tuple[str, str], SlopeResult] = {}
    for arm in arms:
        for e in range(final + 1):
            for q in FIT_QUANTITIES:
                if e == 0 and (arm.init_key, q) in init_done:
                    s = init_done[(arm.init_key, q)]
                    slopes.append(SlopeResult(arm.name, 0, q, s.fit, s.reason))
                    continue
                s = _fit(records, arm.name, e, q, config)
                if e == 0:
                    init_done[(arm.init_key, q)] = s
                slopes.append(s)
    by = {(s.arm, s.epoch, s.quantity): s for s in slopes}
    trained_broken = tuple(sorted(set(broken) | {"H3", "H4", "H5"}))
    claims: list[Claim] = []
    seen_init = set()
    for arm in arms:
        if arm.init_key in seen_init:
            continue
        seen_init.add(arm.init_key)
        claims.extend(
            _claim(
                f"{arm.init_key}: {q}",
                f"at initialisation ({arm.norm_text}), {_LABELS[q]} ~ d^{INIT_SLOPES[q]:g}",
                by[(arm.name, 0, q)],
                INIT_SLOPES[q],
                config.margin,
                broken,
            )
            for q in ("loss_grad_l1", "loss_grad_l2", "vulnerability")
        )
    for arm in arms:
        claims.extend(
            _claim(
                f"{arm.name}: {q}",
                f"after {final} epoch(s) of {arm.describe()}: {_LABELS[q]} ~ d^(1/2) (Section 4.2)",
                by[(arm.name, final, q)],
                PAPER_SLOPE,
                config.margin,
                trained_broken,
                "trained weights are not the random weights of (H): an empirical claim",
            )
            for q in CLAIM_QUANTITIES
        )
    comparisons = []
    bn_arm = next((a for a in arms if a.method == "plain" and a.bn and a.weight_decay == 0), None)
    nobn_arm = next((a for a in arms if a.method == "plain" and not a.bn and a.weight_decay > 0), None)
    if bn_arm is not None and nobn_arm is not None:
        for q in CLAIM_QUANTITIES:
            a, b = by[(bn_arm.name, final, q)], by[(nobn_arm.name, final, q)]
            ra = records.loc[(records["arm"] == bn_arm.name) & (records["epoch"] == final)]
            rb = records.loc[(records["arm"] == nobn_arm.name) & (records["epoch"] == final)]
            try:
                diff, diff_iv = slope_difference(ra, rb, q, "d", n_boot=config.n_boot, seed=config.seed)
            except ValueError:
                diff, diff_iv = math.nan, Interval.none()
            nobn_iv = b.interval
            paper_v = band_verdict(nobn_iv, PAPER_SLOPE, config.margin) if b.fit else Verdict.INCONCLUSIVE
            gal_v = band_verdict(nobn_iv, GALLOWAY_SLOPE, config.margin) if b.fit else Verdict.INCONCLUSIVE
            effect_v = bound_verdict(diff_iv, 0.0, above=True)
            comp = Comparison(q, bn_arm.name, nobn_arm.name, a, b, diff, diff_iv, paper_v, gal_v, effect_v)
            comparisons.append(comp)
            claims.append(
                _claim(
                    f"galloway: {nobn_arm.name}: {q}",
                    f"without batch norm, with weight decay {nobn_arm.weight_decay:g}: {_LABELS[q]} does not depend on d "
                    "(slope 0; Galloway et al. 2019)",
                    b,
                    GALLOWAY_SLOPE,
                    config.margin,
                    trained_broken,
                )
            )
            claims.append(
                Claim(
                    name=f"galloway: batch norm raises the slope of {q}",
                    statement=f"slope with batch norm ({bn_arm.name}) minus slope without ({nobn_arm.name}) > 0",
                    predicted=0.0,
                    estimate=None if math.isnan(diff) else diff,
                    interval=diff_iv,
                    verdict=effect_v,
                    note="one-sided: consistent when the whole interval is above 0; paired over training runs",
                )
            )
    return tuple(slopes), tuple(claims), tuple(comparisons)


def check_trained(
    config: TrainedConfig, *, rt=None, progress: bool | Progress = False, data: ImageData | None = None
) -> TrainedResult:
    """Train, measure, fit and weigh the two claims (module docstring). ``rt`` is a
    ``verify.runtime.Runtime``; ``data`` replaces loading ``config.data`` (tests); ``progress``:
    one stderr line per phase (``verify.progress``), the training bars inside its phase."""
    from tqdm import tqdm

    from verify.data import load_data

    if data is None:
        data = load_data(
            config.data,
            data_dir=config.data_dir,
            train_size=config.train_size,
            test_size=config.test_size,
            seed=config.seed,
        )
    if data.side != config.native:
        raise InputError(f"{config.data}: images of side {data.side}, expected {config.native}")
    prog = as_progress(progress, "trained")
    runner = _Runner(config, data, rt, prog.enabled)
    frames: list[pd.DataFrame] = []
    jobs = [(run, dim, arm) for run in range(config.seeds) for dim in config.dims for arm in config.arms]
    what = (
        f"training {len(jobs)} runs ({config.seeds} seeds x {len(config.dims)} sizes x {len(config.arms)} arms, "
        f"{config.train.epochs} epochs)"
    )
    with (
        prog.phase(what, bars=True),
        tqdm(
            total=len(jobs), desc="training runs", unit="run", disable=not prog.enabled, file=sys.stderr, leave=False
        ) as bar,
    ):
        for run, dim, arm in jobs:
            with runner.threads(dim):
                frames += runner.run(dim, arm, run, f"{arm.name} dim={dim} seed={run}")
            bar.update(1)
    records = pd.concat(frames, ignore_index=True)
    broken: tuple[str, ...] = ()
    spec_of = getattr(config.factory, "spec", None)
    if spec_of is not None:
        spec = spec_of(config.dims[-1], True)
        broken = tuple(sorted({h for layer in spec.layers for h in layer.hypotheses_broken()}))
    with prog.phase(f"slopes per epoch and their bootstrap over runs ({config.n_boot} resamples)"):
        slopes, claims, comparisons = _analyse(records, config, broken)
    info = {
        "name": data.name,
        "source": data.source,
        "train": len(data.train_y),
        "test": len(data.test_y),
        "full_train": data.full_train,
        "full_test": data.full_test,
        "side": data.side,
        "channels": data.channels,
        "classes": data.classes,
        "pixel_mean": data.mean,
        "pixel_std": data.std,
    }
    return TrainedResult(config, records, slopes, claims, comparisons, info, broken, runner.loaded, runner.trained)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None
