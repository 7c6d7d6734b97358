"""Every bad invocation of the commands, in one table, in-process: exit status 2, exactly
one line on stderr that starts with ``verify: error:`` and names the flag, nothing on stdout,
nothing written (no report, no empty folder, no temporary file).

The machine is taken to have 16 GiB available, so the memory refusals do not depend on the
machine. Each case runs in an empty working folder (the default ``--out-dir reports`` lands there), and
the whole folder is compared before and after. Cases marked ``before`` must fail before any
computation: the five check functions are replaced by a function that fails the test if
called. The few failures only a computation can find (every ReLU path dead in every draw)
use nets small enough to run in a second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from verify import memory
from verify.cli import main

# Cheap valid command lines; a case appends flags (argparse keeps the last of a repeated
# flag, so an appended flag replaces the base's value).
SCALING = ["scaling", "--arch", "dense", "--dims", "8,16", "--widths", "4", "--draws", "2", "--batch", "1"]
SCALING_CNN = ["scaling", "--arch", "strided-cnn", "--dims", "8,16", "--channels", "2", "--strides", "1,2"]
SCALING_DAG = ["scaling", "--arch", "random-dag", "--dims", "8,16", "--hidden", "4,4", "--draws", "2"]
PATHS = ["paths", "--arch", "dense", "--dims", "4", "--widths", "4"]
PATHS_CNN = ["paths", "--arch", "strided-cnn", "--dims", "8", "--channels", "2", "--strides", "1,2"]
PATHS_DAG = ["paths", "--arch", "random-dag", "--dims", "8"]
POOLING = ["pooling", "--dims", "16", "--pools", "1,2", "--strides", "1,2", "--channels", "2", "--draws", "2"]
LEMMA9 = ["lemma9", "--arch", "random-dag", "--dims", "4", "--hidden", "4,4", "--draws", "100", "--mc-draws", "0"]
FIRST = ["first-order", "--arch", "dense", "--dims", "8,16", "--widths", "4", "--draws", "2", "--batch", "2"]
FIRST_CNN = ["first-order", "--arch", "strided-cnn", "--dims", "8", "--channels", "2", "--strides", "1,2"]
# a user's module (tmp/nets.py, written by _nets) and the open families
MODEL = ["scaling", "--model", "{tmp}/nets.py:mlp", "--input-shape", "vector", "--dims", "8,16", "--draws", "2"]
RESNET = [
    "scaling",
    "--arch",
    "resnet",
    "--dims",
    "8,16",
    "--width",
    "2",
    "--blocks",
    "1",
    "--stage-strides",
    "1",
    "--draws",
    "2",
]
PAPER = ["scaling", "--arch", "paper-net", "--dims", "64,128", "--channels", "2", "--draws", "2"]
VIT = ["scaling", "--arch", "vit", "--dims", "8,16", "--patch", "4", "--embed-dim", "8", "--heads", "2", "--draws", "2"]
COMPARE = ["compare", "--dims", "8,16", "--draws", "2", "--batch", "1", "--archs"]
TRAINED = ["trained", "--arch", "dense", "--data", "digits", "--dims", "8,16", "--widths", "4", "--no-checkpoints"]
TRAINED_MODEL = ["trained", "--model", "{tmp}/nets.py:cnn10", "--data", "digits", "--dims", "8,16", "--no-checkpoints"]
CALIBRATE = ["calibrate", "--seeds", "2", "--pooled-seeds", "2", "--planted-seeds", "2", "--lemma9-seeds", "2"]
FLIP = ["flip-distance", "--arch", "dense", "--dims", "8,16", "--widths", "4", "--draws", "2"]

HUGE = "100000000000"  # 1e11: beyond every count and size a run can hold
CHECKS = ("scaling", "paths", "pooling", "lemma9", "first_order", "compare", "trained", "calibrate", "flip_distance")
MACHINE_BYTES = 16 << 30


@dataclass(frozen=True)
class Case:
    """``argv`` (``{tmp}`` is the case's folder), the flag the error must name, whether it must
    fail before any computation, and an optional setup (tmp folder, monkeypatch)."""

    argv: list[str]
    flag: str
    before: bool = True
    setup: Callable[[Path, pytest.MonkeyPatch], None] | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        return " ".join(self.argv) or "(no arguments)"


def _file(tmp: Path, _mp: pytest.MonkeyPatch) -> None:
    (tmp / "afile").write_text("a file, not a folder\n")


def _unwritable(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    # chmod does not stop root, and CI may run as root: the check asks os.access, so ask it no.
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    real = os.access
    mp.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == locked else real(p, mode, *a, **k))


def _no_cuda(_tmp: Path, mp: pytest.MonkeyPatch) -> None:
    import torch

    mp.setattr(torch.cuda, "is_available", lambda: False)


NETS = """
import torch
from torch import nn

def mlp(d):
    return nn.Sequential(nn.Linear(d, 6), nn.ReLU(), nn.Linear(6, 3))

def pooled(n):
    return nn.Sequential(
        nn.Flatten(), nn.Unflatten(1, (1, -1)), nn.AdaptiveAvgPool1d(8), nn.Flatten(), nn.Linear(8, 3)
    )

def broken(d):
    raise RuntimeError("factory failed")

def number(d):
    return 3

class Rounded(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, 3)

    def forward(self, x):
        return self.fc(torch.round(x))

def rounded(d):
    return Rounded(d)

def cnn10(n):
    # 1 x n x n images, 10 logits: a module verify trained takes
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 10))

def rgb10(n):
    # 3 x n x n images: not the data's one channel
    return nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 10))

not_callable = 3
"""


def _nets(tmp: Path, _mp: pytest.MonkeyPatch) -> None:
    """nets.py (factories good and bad), bad.py (raises on import) and three checkpoints: one
    of mlp(8), one pickle that weights_only refuses (an arbitrary object), one not a pickle."""
    import argparse

    import torch

    (tmp / "nets.py").write_text(NETS)
    (tmp / "bad.py").write_text("raise ImportError('boom')\n")
    namespace: dict = {}
    exec(NETS, namespace)
    torch.save(namespace["mlp"](8).state_dict(), tmp / "mlp8.pt")
    torch.save({"weight": argparse.Namespace(x=1)}, tmp / "object.pt")
    (tmp / "junk.pt").write_bytes(b"not a checkpoint")


def _model(flag: str, *extra: str) -> Case:
    return Case([*MODEL, *extra], flag, setup=_nets)


def _trained_model(flag: str, *extra: str) -> Case:
    return Case([*TRAINED_MODEL, *extra], flag, setup=_nets)


def _numbers(base: list[str], flag: str, values: list[str]) -> list[Case]:
    return [Case([*base, flag, v], flag) for v in values]


BAD_INT = ["x", "2.5", "0", "-1"]
BAD_FLOAT = ["x", "nan", "inf", "-1", "0"]

CASES: list[Case] = [
    # ------------------------------------------------------------------ the command itself
    Case([], "COMMAND"),
    Case(["frobnicate"], "frobnicate"),
    Case(["Scaling", "--arch", "dense", "--dims", "8,16"], "Scaling"),
    Case([*SCALING, "--no-such-flag"], "--no-such-flag"),
    Case([*SCALING, "stray"], "stray"),
    Case(["scaling", "--dims", "8,16"], "--arch"),
    Case(["scaling", "--arch", "dense"], "--dims"),
    Case(["scaling", "--arch", "dense", "--dims"], "--dims"),
    Case(["scaling", "--dims", "8,16", "--arch"], "--arch"),
    Case(["paths", "--arch", "dense"], "--dims"),
    Case(["first-order", "--arch"], "--arch"),
    Case(["lemma9", "--dims", "4"], "--arch"),
    Case(["moments", "--arch", "random-dag", "--dims", "x"], "--dims"),
    # ------------------------------------------------------------------ scaling
    Case(["scaling", "--arch", "no-such-net", "--dims", "8,16"], "no-such-net"),
    *_numbers(SCALING, "--dims", ["x", "0", "-1", "8,8", "8", "", "1,2", "8,,x"]),
    *_numbers(SCALING, "--widths", ["x", "0", "-1", ""]),
    *_numbers(SCALING, "--classes", ["x", "0", "1", "-1"]),
    *_numbers(SCALING, "--draws", ["x", "0", "1", "-1", HUGE]),
    *_numbers(SCALING, "--batch", ["x", "0", "-1", HUGE]),
    *_numbers(SCALING, "--seed", ["x", "-1", "2.5"]),
    *_numbers(SCALING, "--eps-inf", BAD_FLOAT),
    *_numbers(SCALING, "--margin", BAD_FLOAT),
    *_numbers(SCALING, "--n-boot", ["x", "0", "99", "-1", HUGE]),
    *_numbers(SCALING, "--threads", ["x", "0", "-1", "1000000"]),
    *_numbers(SCALING, "--max-memory", ["x", "0", "-5G", "", "12Q"]),
    Case([*SCALING, "--max-memory", "100M"], "--max-memory"),
    Case([*SCALING, "--inputs", "uniform"], "--inputs"),
    Case([*SCALING, "--dims", "8,12", "--inputs", "upsampled"], "--inputs"),
    Case([*SCALING, "--quantities", "no_such_quantity"], "--quantities"),
    Case([*SCALING, "--quantities", ","], "--quantities"),
    Case([*SCALING, "--device", "tpu"], "--device"),
    Case([*SCALING, "--device", "cuda"], "--device", setup=_no_cuda),
    Case([*SCALING, "--channels", "4"], "--channels"),
    Case([*SCALING, "--hidden", "4"], "--hidden"),
    Case([*SCALING, "--padding", "circular"], "--padding"),
    Case([*SCALING, "--widths", "100000000"], "--widths"),
    Case(["scaling", "--arch", "dense", "--dims", "16,32", "--classes", "100000000"], "--classes"),
    Case([*SCALING, "--dims", "16,2147483648"], "--dims"),
    Case([*SCALING, "--n-boot", "1000001"], "--n-boot"),
    Case([*SCALING, "--out-dir", ""], "--out-dir"),
    Case([*SCALING, "--out-dir", "{tmp}/afile"], "--out-dir", setup=_file),
    Case([*SCALING, "--out-dir", "{tmp}/afile/sub"], "--out-dir", setup=_file),
    Case([*SCALING, "--out-dir", "{tmp}/locked/sub"], "--out-dir", setup=_unwritable),
    *_numbers(SCALING_CNN, "--channels", ["x", "0", "-1"]),
    *_numbers(SCALING_CNN, "--strides", ["x", "0", "", "1,-2"]),
    *_numbers(SCALING_CNN, "--kernel", ["x", "0", "2", "-1"]),
    Case([*SCALING_CNN, "--padding", "mirror"], "--padding"),
    Case([*SCALING_CNN, "--padding", "reflect", "--dims", "1,4"], "--padding"),
    Case([*SCALING_CNN, "--padding", "circular", "--kernel", "5", "--dims", "1,4"], "--padding"),
    Case([*SCALING_CNN, "--widths", "8"], "--widths"),
    Case([*SCALING_CNN, "--pool-windows", "2"], "--pool-windows"),
    Case([*SCALING_CNN, "--dims", "32,100000"], "--dims"),
    Case([*SCALING_CNN, "--channels", "100000"], "--channels"),
    Case([*SCALING_CNN, "--kernel", "100001"], "--kernel"),
    *_numbers(SCALING_DAG, "--max-in-degree", ["x", "0", "1000000000"]),
    *_numbers(SCALING_DAG, "--skip-prob", ["x", "nan", "-0.1", "2"]),
    *_numbers(SCALING_DAG, "--dag-seed", ["x", "-1"]),
    Case([*SCALING_DAG, "--hidden", "0"], "--hidden"),
    Case([*SCALING_DAG, "--dims", "16,2147483648"], "--dims"),
    Case([*SCALING_DAG, "--hidden", "100000000"], "--hidden"),
    Case([*SCALING_DAG, "--dims", "1,2"], "--dims"),
    # nets whose every ReLU path is dead in every draw: found only by computing, still one line
    Case(
        ["scaling", "--arch", "dense", "--dims", "16,32", "--widths", "1", "--samples", "2", "--batch", "1"],
        "--widths",
        before=False,
    ),
    Case(
        ["scaling", "--arch", "strided-cnn", "--dims", "8,16", "--channels", "1", "--samples", "2", "--batch", "1"],
        "--channels",
        before=False,
    ),
    # ------------------------------------------------------------------ paths
    *_numbers(PATHS, "--dims", ["x", "0", "-1", "4,4", ""]),
    *_numbers(PATHS, "--trials", ["x", "0", "-1", "1000000"]),
    *_numbers(PATHS, "--seed", ["x", "-1"]),
    *_numbers(PATHS, "--max-memory", ["x", "100M"]),
    Case([*PATHS, "--device", "cpu"], "--device"),
    Case([*PATHS, "--kernel", "3"], "--kernel"),
    Case([*PATHS, "--exact", "--dims", "2048", "--widths", "4096"], "--exact"),
    Case([*PATHS, "--out-dir", ""], "--out-dir"),
    Case([*PATHS, "--out-dir", "{tmp}/afile"], "--out-dir", setup=_file),
    Case([*PATHS, "--out-dir", "{tmp}/locked/deeper/still"], "--out-dir", setup=_unwritable),
    Case(["paths", "--arch", "strided-cnn", "--dims", "16384"], "--dims"),
    Case([*PATHS_CNN, "--dims", "100000"], "--dims"),
    Case([*PATHS_CNN, "--exact", "--dims", "512"], "--exact"),
    Case([*PATHS_DAG, "--dag-seed", "-1"], "--dag-seed"),
    Case([*PATHS_DAG, "--max-in-degree", "1000000000"], "--max-in-degree"),
    Case([*PATHS_DAG, "--skip-prob", "inf"], "--skip-prob"),
    # ------------------------------------------------------------------ pooling
    Case([*POOLING, "--arch", "dense"], "--arch"),
    *_numbers(POOLING, "--pools", ["x", "0", "1", "2,2", "", "-2,1"]),
    *_numbers(POOLING, "--dims", ["x", "0", "16,32", "100000"]),
    Case([*POOLING, "--dim", "15"], "--dims"),
    *_numbers(POOLING, "--channels", ["x", "0", "100000"]),
    *_numbers(POOLING, "--pool-windows", ["2,2", "0"]),
    Case([*POOLING, "--strides", "1,1"], "--strides"),
    Case([*POOLING, "--widths", "4"], "--widths"),
    Case([*POOLING, "--hidden", "4"], "--hidden"),
    *_numbers(POOLING, "--draws", ["1", "x", HUGE]),
    *_numbers(POOLING, "--batch", ["0", HUGE]),
    *_numbers(POOLING, "--n-boot", ["50", HUGE]),
    *_numbers(POOLING, "--margin", ["-1", "nan"]),
    *_numbers(POOLING, "--classes", ["0", "100000000"]),
    Case([*POOLING, "--seed", "-3"], "--seed"),
    Case([*POOLING, "--threads", "0"], "--threads"),
    Case([*POOLING, "--out-dir", "{tmp}/afile"], "--out-dir", setup=_file),
    # ------------------------------------------------------------------ lemma9 (alias moments)
    *_numbers(LEMMA9, "--dims", ["x", "0", "4,4"]),
    Case([*LEMMA9, "--init", "xavier"], "--init"),
    Case([*LEMMA9, "--shared-layers", "1,2"], "--shared-layers"),
    Case([*LEMMA9, "--init", "shared", "--shared-layers", "a,b"], "--shared-layers"),
    Case([*LEMMA9, "--init", "shared", "--shared-layers", "1"], "--shared-layers"),
    Case([*LEMMA9, "--init", "shared", "--shared-layers", "1,99"], "--shared-layers"),
    Case([*LEMMA9, "--init", "shared", "--shared-layers", "1,1"], "--shared-layers"),
    *_numbers(LEMMA9, "--draws", ["x", "1", "-5", HUGE]),
    *_numbers(LEMMA9, "--rho", ["0", "2", "nan", "x"]),
    *_numbers(LEMMA9, "--max-inputs", ["0", "x"]),
    *_numbers(LEMMA9, "--max-paths", ["0", HUGE]),
    *_numbers(LEMMA9, "--max-pairs", ["0", HUGE]),
    *_numbers(LEMMA9, "--mc-draws", ["1", "-1", HUGE]),
    *_numbers(LEMMA9, "--alpha", ["0", "1", "nan"]),
    Case([*LEMMA9, "--seed", "-1"], "--seed"),
    Case(["lemma9", "--arch", "strided-cnn", "--dims", "4096"], "--dims"),
    Case(["lemma9", "--arch", "dense", "--dims", "1000"], "--dims"),
    Case([*LEMMA9, "--out-dir", ""], "--out-dir"),
    # ------------------------------------------------------------------ first-order
    *_numbers(FIRST, "--eps", ["x", "0,1e-3", "1e-3", "1e-3,1e-3", "-1e-3,1e-2", "nan,1e-3"]),
    *_numbers(FIRST, "--norms", ["3", "", "x,2"]),
    Case([*FIRST, "--dtype", "float16"], "--dtype"),
    *_numbers(FIRST, "--pgd-steps", ["x", "0", "-1", HUGE]),
    *_numbers(FIRST, "--pgd-step-size", ["x", "0", "-1", "nan"]),
    *_numbers(FIRST, "--classes", ["1", "100000000"]),
    *_numbers(FIRST, "--widths", ["100000000"]),
    *_numbers(FIRST, "--dims", ["16,2147483648", "8,8", "x"]),
    *_numbers(FIRST, "--draws", ["1", HUGE]),
    *_numbers(FIRST, "--batch", ["0", HUGE]),
    *_numbers(FIRST, "--n-boot", ["10", HUGE]),
    *_numbers(FIRST, "--margin", ["0", "inf"]),
    *_numbers(FIRST, "--threads", ["0", "1000000"]),
    Case([*FIRST, "--seed", "-1"], "--seed"),
    Case([*FIRST, "--channels", "4"], "--channels"),
    Case([*FIRST_CNN, "--dims", "100000"], "--dims"),
    Case([*FIRST, "--out-dir", "{tmp}/afile/x"], "--out-dir", setup=_file),
    # ------------------------------------------------------------------ --model FILE.py:FACTORY
    _model("--model", "--model", "{tmp}/missing.py:mlp"),
    _model("--model", "--model", "{tmp}/nets.py:nope"),
    _model("--model", "--model", "{tmp}/nets.py:not_callable"),
    _model("--model", "--model", "{tmp}/nets.py:broken"),
    _model("--model", "--model", "{tmp}/nets.py:number"),
    _model("--model", "--model", "{tmp}/bad.py:f"),
    _model("--model", "--model", "nets"),
    _model("--model", "--model", "no_such_package_xyz.nets:mlp"),
    _model("--model", "--model", "{tmp}/nets.py:rounded"),
    _model("--input-shape", "--input-shape", "image"),
    _model("--input-shape", "--input-shape", "cube"),
    _model("--init", "--init", "xavier"),
    _model("--mode", "--mode", "test"),
    _model("--weights", "--init", "keep", "--weights", "{tmp}/none.pt"),
    _model("--weights", "--init", "keep", "--weights", "{tmp}/object.pt"),
    _model("--weights", "--init", "keep", "--weights", "{tmp}/junk.pt"),
    _model("--weights", "--init", "keep", "--weights", "{tmp}/mlp8.pt"),  # fits mlp(8), not mlp(16)
    _model("--weights", "--weights", "{tmp}/mlp8.pt"),  # --init he would overwrite it
    _model("--arch", "--arch", "dense"),
    _model("--widths", "--widths", "4"),
    _model("--dims", "--dims", "8,8"),
    Case(["scaling", "--input-shape", "vector", "--dims", "8,16"], "--arch"),
    Case(["paths", "--model", "{tmp}/nets.py:pooled", "--dims", "8"], "paths", setup=_nets),  # no exact side
    Case(
        ["first-order", "--model", "{tmp}/nets.py:mlp", "--input-shape", "vector", "--dims", "8", "--model"], "--model"
    ),
    Case(["pooling", "--dims", "16", "--model", "{tmp}/nets.py:mlp"], "--model", setup=_nets),
    # ------------------------------------------------------------------ resnet, paper-net, vit
    Case([*RESNET, "--bn", "maybe"], "--bn"),
    Case([*RESNET, "--bn-mode", "sometimes"], "--bn-mode"),
    Case([*RESNET, "--head", "min"], "--head"),
    Case([*RESNET, "--add-relu", "x"], "--add-relu"),
    *_numbers(RESNET, "--width", ["x", "0"]),
    *_numbers(RESNET, "--blocks", ["x", ""]),
    Case([*RESNET, "--pool", "max"], "--pool"),
    Case([*PAPER, "--pool", "min"], "--pool"),
    *_numbers(PAPER, "--dilation-base", ["x", "0", "48"]),
    Case([*PAPER, "--dims", "40,80"], "--dilation-base"),
    Case([*PAPER, "--width", "4"], "--width"),
    *_numbers(VIT, "--patch", ["3", "0", "x"]),
    *_numbers(VIT, "--heads", ["3", "0"]),
    *_numbers(VIT, "--grid", ["0", "3"]),
    *_numbers(VIT, "--depth", ["0", "x"]),
    *_numbers(VIT, "--embed-dim", ["0"]),
    *_numbers(VIT, "--mlp-ratio", ["0"]),
    Case([*VIT, "--exact"], "--exact"),
    Case(["first-order", "--arch", "resnet", "--dims", "8,16", "--width", "2", "--bn", "on"], "--bn-mode"),
    # memory: the machine has 16 GiB; attention's heads x T^2 at 1024 tokens, a user's module
    # measured on the meta device before it is built
    Case([*VIT, "--dims", "8,4096"], "--dims"),
    Case([*VIT, "--max-memory", "1M"], "--max-memory"),
    Case([*RESNET, "--dims", "8,100000"], "--dims"),
    Case([*RESNET, "--max-memory", "1M"], "--max-memory"),
    Case([*PAPER, "--dims", "64,65536"], "--dims"),
    Case([*PAPER, "--max-memory", "1M"], "--max-memory"),
    Case(["scaling", "--model", "{tmp}/nets.py:pooled", "--dims", "8,100000"], "--dims", setup=_nets),
    _model("--dims", "--dims", "8,100000000000"),
    _model("--max-memory", "--max-memory", "1M"),
    Case(["paths", "--arch", "resnet", "--dims", "100000", "--width", "2"], "--dims"),
    Case(["first-order", "--arch", "vit", "--dims", "8,4096", "--patch", "4"], "--dims"),
    # ------------------------------------------------------------------ compare
    Case([*COMPARE, "transformer"], "--archs"),
    Case([*COMPARE, "resnet:depth=3"], "--archs"),
    Case([*COMPARE, "resnet:bn"], "--archs"),
    Case([*COMPARE, "resnet:bn=maybe"], "--archs"),
    Case([*COMPARE, "resnet:width=x"], "--archs"),
    Case([*COMPARE, "resnet,resnet"], "--archs"),
    Case([*COMPARE, ","], "--archs"),
    Case([*COMPARE, "paper-net"], "--archs"),
    Case([*COMPARE, "vit:patch=3"], "--archs"),
    Case([*COMPARE, "model={tmp}/missing.py:f"], "--archs"),
    Case([*COMPARE, "model={tmp}/nets.py:broken"], "--archs", setup=_nets),
    Case([*COMPARE, "resnet", "--dims", "16"], "--dims"),
    Case([*COMPARE, "resnet", "--draws", "1"], "--draws"),
    Case([*COMPARE, "resnet", "--n-boot", "50"], "--n-boot"),
    Case([*COMPARE, "resnet", "--threads", "0"], "--threads"),
    Case([*COMPARE, "vit:patch=4,resnet", "--dims", "8,4096"], "--dims"),
    Case([*COMPARE, "model={tmp}/nets.py:pooled", "--dims", "8,100000"], "--dims", setup=_nets),
    Case([*COMPARE, "dense:widths=4", "--max-memory", "1M"], "--max-memory"),
    Case([*COMPARE, "dense:widths=4", "--out-dir", "{tmp}/afile"], "--out-dir", setup=_file),
    # ------------------------------------------------------------------ trained
    Case(["trained", "--arch", "dense", "--dims", "28,56", "--data-dir", "{tmp}/nowhere"], "apt-get install"),
    Case(["trained", "--arch", "dense", "--dims", "28,56", "--data-dir", "{tmp}/nowhere"], "--data-dir"),
    *_numbers(TRAINED, "--dims", ["8,12", "8", "x", "8,100000"]),
    *_numbers(TRAINED, "--seeds", ["1", "x"]),
    *_numbers(TRAINED, "--methods", ["fgsm", "gp,x"]),
    *_numbers(TRAINED, "--lambdas", ["x", ",", "-0.1"]),
    *_numbers(TRAINED, "--weight-decay", ["-1"]),
    *_numbers(TRAINED, "--epochs", ["0"]),
    *_numbers(TRAINED, "--batch-size", ["0"]),
    *_numbers(TRAINED, "--lr", ["0"]),
    *_numbers(TRAINED, "--train-size", ["-1"]),
    *_numbers(TRAINED, "--attack-eps", ["0"]),
    *_numbers(TRAINED, "--eval-batch", ["0"]),
    *_numbers(TRAINED, "--data", ["cifar"]),
    *_numbers(TRAINED, "--optimizer", ["lbfgs"]),
    *_numbers(TRAINED, "--classes", ["3"]),
    *_numbers(TRAINED, "--bn-mode", ["eval"]),
    *_numbers(TRAINED, "--max-memory", ["1M", "x"]),
    *_numbers(TRAINED, "--threads", ["0"]),
    Case([*TRAINED, "--model", "{tmp}/nets.py:mlp"], "--model"),
    # verify trained --model: a 1 x n x n module with 10 logits (cnn10) is the base
    *[
        _trained_model(flag, *extra)
        for flag, *extra in (
            ("--model", "--model", "{tmp}/missing.py:f"),
            ("--model", "--model", "{tmp}/nets.py:broken"),
            ("--model", "--model", "{tmp}/nets.py:nope"),
            ("--model", "--model", "{tmp}/bad.py:f"),
            ("--model", "--model", "{tmp}/nets.py:pooled"),  # 3 logits, the data have 10 classes
            ("--model", "--model", "{tmp}/nets.py:rgb10"),  # 3-channel images, the data have 1
            ("--model", "--model", "{tmp}/nets.py:rounded"),  # no input gradient
            ("--input-shape", "--input-shape", "vector"),  # cnn10 takes images
            ("--mode", "--mode", "train"),  # training sets the module's mode itself
            ("--mode", "--mode", "eval"),
            ("--weights", "--weights", "{tmp}/mlp8.pt"),  # --init he would overwrite it
            ("--weights", "--init", "keep", "--weights", "{tmp}/mlp8.pt"),  # not cnn10's
            ("--weights", "--init", "keep", "--weights", "{tmp}/junk.pt"),
            ("--arch", "--arch", "dense"),
            ("--widths", "--widths", "4"),
            ("--dims", "--dims", "8,12"),
            ("--dims", "--dims", "8"),
            ("--dims", "--dims", "8,100000000"),  # refused on the meta device, before the factory allocates
            ("--methods", "--methods", "fgsm"),
            ("--seeds", "--seeds", "1"),
            ("--max-memory", "--max-memory", "1M"),
        )
    ],
    Case([*TRAINED, "--out-dir", "{tmp}/afile"], "--out-dir", setup=_file),
    # ------------------------------------------------------------------ calibrate
    *_numbers(CALIBRATE, "--seeds", ["0", "x"]),
    *_numbers(CALIBRATE, "--cases", ["nope", ","]),
    *_numbers(CALIBRATE, "--dense-dims", ["32", "x"]),
    *_numbers(CALIBRATE, "--dense-widths", ["x", "100000000"]),
    *_numbers(CALIBRATE, "--pooled-dims", ["10,12"]),
    *_numbers(CALIBRATE, "--alpha", ["2"]),
    *_numbers(CALIBRATE, "--n-boot", ["50"]),
    *_numbers(CALIBRATE, "--lemma9-draws", ["5"]),
    *_numbers(CALIBRATE, "--draws", ["1"]),
    *_numbers(CALIBRATE, "--max-memory", ["1M", "x"]),
    *_numbers(CALIBRATE, "--threads", ["0"]),
    Case([*CALIBRATE, "--out-dir", "{tmp}/afile"], "--out-dir", setup=_file),
    # ------------------------------------------------------------------ flip-distance
    *_numbers(FLIP, "--dims", ["8", "x"]),
    *_numbers(FLIP, "--overshoot", ["0", "nan"]),
    *_numbers(FLIP, "--max-iter", ["0"]),
    *_numbers(FLIP, "--t-max", ["-1"]),
    *_numbers(FLIP, "--dtype", ["float16"]),
    *_numbers(FLIP, "--classes", ["1"]),
    *_numbers(FLIP, "--widths", ["100000000"]),
    *_numbers(FLIP, "--max-memory", ["1M", "x"]),
    *_numbers(FLIP, "--threads", ["0"]),
    Case(["flip-distance", "--arch", "paper-net", "--dims", "64,128", "--channels", "2"], "--bn-mode"),
    Case(["flip-distance", "--arch", "vit", "--dims", "8,4096", "--patch", "4"], "--dims"),
    Case(["flip-distance", "--model", "{tmp}/nets.py:pooled", "--dims", "8,100000"], "--dims", setup=_nets),
    Case([*FLIP, "--out-dir", "{tmp}/afile"], "--out-dir", setup=_file),
]


def _tree(root: Path) -> list[str]:
    """Every path under ``root`` (hidden temporary files included), sorted."""
    out = []
    for folder, dirs, files in os.walk(root):
        out.extend(os.path.relpath(os.path.join(folder, name), root) for name in [*dirs, *files])
    return sorted(out)


def _fail_if_called(*_args, **_kwargs):
    raise AssertionError("the command started computing before rejecting its input")


def test_the_table_covers_every_command():
    commands = {c.argv[0] for c in CASES if c.argv}
    assert {"scaling", "paths", "pooling", "lemma9", "first-order"} <= commands
    assert {"compare", "trained", "calibrate", "flip-distance"} <= commands
    assert len(CASES) >= 380


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_invocation(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    import importlib

    monkeypatch.chdir(tmp_path)
    # The memory refusals must not depend on the machine running the test: 16 GiB, always.
    monkeypatch.setattr(memory, "available_bytes", lambda: MACHINE_BYTES)
    if case.setup is not None:
        case.setup(tmp_path, monkeypatch)
    if case.before:
        for name in CHECKS:
            module = importlib.import_module(f"verify.checks.{name}")
            monkeypatch.setattr(module, f"check_{name}", _fail_if_called)
    before = _tree(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in case.argv]
    status = main(argv)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert status == 2, f"exit {status}: {err}"
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{err}"
    assert lines[0].startswith("verify: error: "), lines[0]
    assert case.flag in lines[0], f"the error does not name {case.flag}: {lines[0]}"
    assert out == ""
    assert _tree(tmp_path) == before, "something was written"
