"""``--json`` carries every setting that changes the numbers: for each command and each of its
flags (family flags included), changing the flag changes ``run.settings``, except the flags
that cannot change a number (output, memory guard, threads) or that ``run`` records apart
(``--device``: ``run.device``).

The settings are read from the config the command hands to its check (the check itself is
replaced, so nothing is computed); ``run.settings`` of the JSON is that config's
``settings()`` (``test_the_json_run_settings_are_the_configs`` checks it on one real run).

The flags of a user's module (``--model FILE.py:FACTORY`` and its ``--input-shape``,
``--init``, ``--weights``, ``--mode``) are checked on a tiny factory file written to the
test's folder; ``verify trained``'s data flags on scikit-learn's digits and a fake
Fashion-MNIST folder. A flag whose other value the command refuses by design is in
``REFUSED``, and the test checks that refusal instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import textwrap
from pathlib import Path

import pytest

from graphs.families import FAMILIES
from verify.cli import build_parser, main

# Flags that change no number, or that the envelope records outside ``settings``.
NO_NUMBERS = {
    "--help",
    "--json",
    "--out-dir",
    "--max-memory",
    "--threads",
    "--device",
    "--arch",
    # the results store keeps draws; where they are kept and in what blocks changes no number
    "--store",
    "--no-store",
    "--task-draws",
    # verify trained: checkpoints are resumed bit for bit (tests/verify/checks/test_trained.py)
    "--checkpoint-dir",
    "--no-checkpoints",
    # sweep, report and query: their numbers are the recorded runs' (the sweep file's commands)
    "--executor",
    "--workers",
    "--scheduler",
    "--retries",
    "--dry-run",
    "--command",
    "--format",
    "--max-rows",
}
# Commands whose flags change no number of their own (they run, re-render or read recorded runs).
NO_SETTINGS = ("sweep", "report", "query")

# Flags of --model: their base is a user's module, not a family.
MODEL_FLAGS = ("--model", "--input-shape", "--init", "--weights", "--mode")
# A tiny factory file (written to each test's folder as nets.py): ``pooled`` and ``other`` take
# any input size (images or vectors) with the same weights, so one checkpoint fits every size;
# ``paths`` needs a module traced into layer kinds (the exact side): ``mlp`` and its kin.
NETS = """
from torch import nn

def mlp(d):
    return nn.Sequential(nn.Linear(d, 6), nn.ReLU(), nn.Linear(6, 3))

def mlp_other(d):
    return nn.Sequential(nn.Linear(d, 5), nn.ReLU(), nn.Linear(5, 3))

def image_mlp(n):
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * n * n, 6), nn.ReLU(), nn.Linear(6, 3))

def pooled(n):
    return nn.Sequential(
        nn.Flatten(), nn.Unflatten(1, (1, -1)), nn.AdaptiveAvgPool1d(8), nn.Flatten(),
        nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3),
    )

def other(n):
    return nn.Sequential(
        nn.Flatten(), nn.Unflatten(1, (1, -1)), nn.AdaptiveAvgPool1d(4), nn.Flatten(),
        nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3),
    )

def pooled10(n):
    return nn.Sequential(
        nn.Flatten(), nn.Unflatten(1, (1, -1)), nn.AdaptiveAvgPool1d(8), nn.Flatten(),
        nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 10),
    )

def other10(n):
    return nn.Sequential(
        nn.Flatten(), nn.Unflatten(1, (1, -1)), nn.AdaptiveAvgPool1d(4), nn.Flatten(),
        nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 10),
    )
"""
MODEL_BASES = {
    "scaling": ["--model", "{tmp}/nets.py:pooled", "--dims", "8,16", "--draws", "4"],
    "paths": ["--model", "{tmp}/nets.py:mlp", "--dims", "8"],
    "first-order": ["--model", "{tmp}/nets.py:pooled", "--dims", "8,16"],
    "flip-distance": ["--model", "{tmp}/nets.py:pooled", "--dims", "8,16", "--draws", "4"],
    # the data sets have 10 classes: a 10-logit module
    "trained": ["--model", "{tmp}/nets.py:pooled10", "--data", "digits", "--dims", "8,16"],
}
# the setting each flag of --model sets (``verify.usermodel.model_settings``)
MODEL_KEYS = {
    "--model": "model",
    "--input-shape": "input_shape",
    "--init": "init",
    "--weights": "weights",
    "--mode": "mode",
}
# (command, flag): a base family other than the first that has the flag
FAMILY_FOR = {
    # weight decay is the batch-norm-off arm's, of a family with batch norm
    ("trained", "--weight-decay"): "resnet",
}
# (command, flag): the other value is refused by the command, by design (exit 2, one line)
REFUSED = {
    # pooling sweeps avgpool-cnn's windows; --model is there to point to verify scaling --model
    ("pooling", "--model"): ["--model", "{tmp}/nets.py:pooled"],
    # the data sets have 10 classes
    ("trained", "--classes"): ["--classes", "3"],
    # training uses batch statistics and measures with running ones, always
    ("trained", "--bn-mode"): ["--bn-mode", "eval"],
    # a module trains in train mode and is measured in eval mode, always
    ("trained", "--mode"): ["--mode", "train"],
}
VIT = ["--patch", "4", "--embed-dim", "8", "--heads", "2", "--depth", "1"]

# A valid command line per (command, family), small enough to build in milliseconds.
BASES = {
    "scaling": {
        "resnet": ["--dims", "8,16", "--width", "2", "--blocks", "1", "--stage-strides", "1", "--draws", "4"],
        "paper-net": ["--dims", "64,128", "--channels", "2", "--draws", "4"],
        "dense": ["--dims", "8,16", "--widths", "4", "--draws", "4"],
        "strided-cnn": ["--dims", "8,16", "--channels", "2", "--strides", "1,2", "--draws", "4"],
        "avgpool-cnn": ["--dims", "8,16", "--channels", "2", "--strides", "1,2", "--draws", "4"],
        "random-dag": ["--dims", "8,16", "--hidden", "4,4", "--draws", "4"],
        "vit": ["--dims", "8,16", *VIT, "--draws", "4"],
    },
    "paths": {
        "resnet": ["--dims", "8", "--width", "2", "--blocks", "1", "--stage-strides", "1"],
        "paper-net": ["--dims", "64", "--channels", "2"],
        "dense": ["--dims", "4,8", "--widths", "4"],
        "strided-cnn": ["--dims", "8", "--channels", "2", "--strides", "1,2"],
        "avgpool-cnn": ["--dims", "8", "--channels", "2", "--strides", "1,2"],
        "random-dag": ["--dims", "8", "--hidden", "4,4"],
    },
    "pooling": {"avgpool-cnn": ["--dims", "16", "--pools", "1,2", "--strides", "1,2", "--channels", "2"]},
    "lemma9": {
        "resnet": ["--dims", "4", "--width", "2", "--blocks", "1", "--stage-strides", "1"],
        "dense": ["--dims", "4", "--widths", "4,4"],
        "strided-cnn": ["--dims", "4", "--channels", "2", "--strides", "1,2"],
        "avgpool-cnn": ["--dims", "4", "--channels", "2", "--strides", "1,2"],
        "random-dag": ["--dims", "4", "--hidden", "4,4"],
    },
    "first-order": {
        # batch statistics couple the attacked samples: the attacks need running statistics
        "resnet": ["--dims", "8", "--width", "2", "--blocks", "1", "--stage-strides", "1", "--bn-mode", "eval"],
        "paper-net": ["--dims", "64", "--channels", "2", "--bn-mode", "eval"],
        "dense": ["--dims", "8,16", "--widths", "4"],
        "strided-cnn": ["--dims", "8", "--channels", "2", "--strides", "1,2"],
        "avgpool-cnn": ["--dims", "8", "--channels", "2", "--strides", "1,2"],
        "random-dag": ["--dims", "8", "--hidden", "4,4"],
        "vit": ["--dims", "8,16", *VIT],
    },
    "flip-distance": {
        "resnet": ["--dims", "8,16", "--width", "2", "--blocks", "1", "--stage-strides", "1", "--bn-mode", "eval"],
        "paper-net": ["--dims", "64,128", "--channels", "2", "--bn-mode", "eval"],
        "dense": ["--dims", "8,16", "--widths", "4"],
        "strided-cnn": ["--dims", "8,16", "--channels", "2", "--strides", "1,2"],
        "avgpool-cnn": ["--dims", "8,16", "--channels", "2", "--strides", "1,2"],
        "random-dag": ["--dims", "8,16", "--hidden", "4,4"],
        "vit": ["--dims", "8,16", *VIT],
    },
    "trained": {
        # scikit-learn's 8 x 8 digits: no download, sizes multiples of 8
        "dense": ["--data", "digits", "--dims", "8,16", "--widths", "4"],
        "strided-cnn": ["--data", "digits", "--dims", "8,16", "--channels", "2", "--strides", "1,2"],
        "avgpool-cnn": ["--data", "digits", "--dims", "8,16", "--channels", "2", "--strides", "1,2"],
        "random-dag": ["--data", "digits", "--dims", "8,16", "--hidden", "4,4"],
        "resnet": ["--data", "digits", "--dims", "8,16", "--width", "2", "--blocks", "1", "--stage-strides", "1"],
        "paper-net": ["--data", "digits", "--dims", "64,128", "--channels", "2"],  # dilation n / 32
        "vit": ["--data", "digits", "--dims", "8,16", *VIT],
    },
    "compare": {
        None: ["--archs", "strided-cnn:channels=2:strides=1.2,dense:widths=4", "--dims", "8,16", "--draws", "4"]
    },
    "calibrate": {
        None: ["--seeds", "2", "--pooled-seeds", "2", "--planted-seeds", "2", "--lemma9-seeds", "2", "--draws", "4"]
    },
}

# Another valid value of each flag; a list is the whole replacement (several flags).
OTHER = {
    "--dims": {
        "scaling": "8,32",
        "paths": "4,16",
        "pooling": "32",
        "lemma9": "5",
        "first-order": "8,32",
        "flip-distance": "8,32",
        "trained": "8,24",
        "compare": "8,32",
    },
    "--draws": "21",
    "--samples": "21",
    "--batch": "3",
    "--seed": "7",
    "--margin": "0.07",
    "--n-boot": "300",
    "--inputs": "upsampled",
    "--quantities": "loss_grad_l1,vuln_l2",
    "--eps-inf": "0.01",
    "--exact": [],
    "--trials": "5",
    "--pools": "1,4",
    "--dim": "32",
    "--init": {"lemma9": "shared", "model": "keep"},
    "--shared-layers": ["--init", "shared", "--shared-layers", "2,3"],
    "--rho": "0.5",
    "--max-inputs": "2",
    "--max-paths": "30",
    "--max-pairs": "100",
    "--mc-draws": "10",
    "--mc-samples": "10",
    "--alpha": "0.01",
    "--eps": "1e-3,1e-2",
    "--norms": "inf",
    "--dtype": "float32",
    "--pgd-steps": "3",
    "--pgd-step-size": "0.1",
    # family flags
    "--widths": "5",
    "--classes": "3",
    "--padding": "circular",
    "--channels": "3",
    "--strides": "1,1,2",
    "--kernel": "5",
    # the first window is the one pooling sweeps: a second pooling layer shows the flag
    "--pool-windows": ["--strides", "1,2,2", "--pool-windows", "2,1"],
    "--hidden": "5,5",
    "--max-in-degree": "3",
    "--skip-prob": "0.5",
    "--dag-seed": "1",
    "--width": "3",
    "--blocks": "2",
    "--stage-strides": "2",
    "--bn": "on",
    # the first-order bases run on running statistics: back to batch statistics, without batch norm
    "--bn-mode": {"first-order": "train", "flip-distance": "train", "default": "eval"},
    "--head": "max",
    "--add-relu": "off",
    "--pool": "avg",
    "--dilation-base": "64",
    "--patch": "2",
    "--grid": "2",
    "--depth": "2",
    "--embed-dim": "12",
    "--heads": "4",
    "--mlp-ratio": "3",
    "--precision": "bf16",
    # --model and its flags (MODEL_FLAGS), on the base ``pooled`` of nets.py
    "--model": {
        "paths": "{tmp}/nets.py:mlp_other",
        "trained": "{tmp}/nets.py:other10",
        "model": "{tmp}/nets.py:other",
    },
    "--input-shape": {
        "paths": ["--input-shape", "image", "--model", "{tmp}/nets.py:image_mlp"],
        "model": "image",
    },
    "--weights": {
        "paths": ["--init", "keep", "--weights", "{tmp}/mlp.pt"],
        "trained": ["--init", "keep", "--weights", "{tmp}/pooled10.pt"],
        "model": ["--init", "keep", "--weights", "{tmp}/pooled.pt"],
    },
    "--mode": "train",
    # compare
    "--archs": "strided-cnn:channels=3:strides=1.2,dense:widths=4",
    # flip-distance
    "--overshoot": "0.05",
    "--max-iter": "20",
    "--t-max": "5",
    # calibrate
    "--seeds": "4",
    "--pooled-seeds": "3",
    "--planted-seeds": "3",
    "--lemma9-seeds": "3",
    "--pooled-channels": "2",
    "--lemma9-draws": "50",
    "--cases": "dense-mean,lemma9",
    "--dense-dims": "32,64,128,256,1024",
    "--dense-widths": "16,16",
    "--pooled-dims": "24,32",
    # trained (a second fake Fashion-MNIST folder for --data-dir: other images)
    "--data": ["--data", "fashion-mnist", "--data-dir", "{tmp}/fashion", "--dims", "28,56"],
    "--data-dir": ["--data", "fashion-mnist", "--data-dir", "{tmp}/fashion2", "--dims", "28,56"],
    "--train-size": "50",
    "--test-size": "30",
    "--profile": "full",
    "--epochs": "2",
    "--batch-size": "16",
    "--optimizer": "sgd",
    "--lr": "0.01",
    "--methods": "gp",
    "--lambdas": "0.03",
    "--weight-decay": "0.001",
    "--train-pgd-steps": "3",
    "--train-pgd-step-size": "0.5",
    "--attack-eps": "0.02",
    "--attack-steps": "3",
    "--attack-step-size": "0.4",
    "--eval-batch": "64",
}
# The command line a changed flag is compared with, where it is not the base itself.
COMPARED_WITH = {
    "--shared-layers": ["--init", "shared"],
    "--pool-windows": ["--strides", "1,2,2"],
    "--weights": ["--init", "keep"],
    "--data-dir": ["--data", "fashion-mnist", "--data-dir", "{tmp}/fashion", "--dims", "28,56"],
}


class _Captured(Exception):
    def __init__(self, config) -> None:
        self.config = config


def _capture(*args, **_kwargs):
    raise _Captured(args[0])


CHECKS = ("scaling", "paths", "pooling", "lemma9", "first_order", "compare", "trained", "calibrate", "flip_distance")


def _patch_checks(monkeypatch) -> None:
    for name in CHECKS:
        monkeypatch.setattr(importlib.import_module(f"verify.checks.{name}"), f"check_{name}", _capture)


def _settings(argv: list[str], monkeypatch) -> dict:
    import torch

    _patch_checks(monkeypatch)
    # a factory builds its module from torch's global RNG, and the probe refuses a module whose
    # ReLUs are all dead on its two inputs: seeded, the outcome does not depend on test order
    torch.manual_seed(0)
    with pytest.raises(_Captured) as caught:
        main(argv)
    return json.loads(json.dumps(caught.value.config.settings()))


def _flags(command: str) -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for action in sub.choices[command]._actions:
        out.extend(s for s in action.option_strings if s.startswith("--"))
    return out


def _family_of(flag: str) -> list[str]:
    return [name for name, fam in FAMILIES.items() if any(o.flag == flag for o in fam.options)]


def _is_model_flag(command: str, flag: str) -> bool:
    return flag in MODEL_FLAGS and command in MODEL_BASES


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    """The test's folder with nets.py, a checkpoint of ``pooled`` and two fake Fashion-MNIST folders."""
    import torch

    from tests.verify.test_data import _fake_fashion

    (tmp_path / "nets.py").write_text(textwrap.dedent(NETS))
    namespace: dict = {}
    exec(textwrap.dedent(NETS), namespace)
    torch.save(namespace["pooled"](8).state_dict(), tmp_path / "pooled.pt")
    torch.save(namespace["mlp"](8).state_dict(), tmp_path / "mlp.pt")
    torch.save(namespace["pooled10"](8).state_dict(), tmp_path / "pooled10.pt")
    for folder in ("fashion", "fashion2"):
        (tmp_path / folder).mkdir()
        _fake_fashion(tmp_path / folder)
    return tmp_path


def _fill(argv: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in argv]


CASES = [
    (command, flag)
    for command in BASES
    for flag in dict.fromkeys(_flags(command))
    if flag not in NO_NUMBERS and (command, flag) not in REFUSED
]


def _base(command: str, flag: str) -> list[str] | None:
    """The command line a flag is changed on; None where no run of the flag's families fits."""
    if _is_model_flag(command, flag):
        return [command, "--input-shape", "vector", *MODEL_BASES[command]]
    if None in BASES[command]:
        return [command, *BASES[command][None]]
    own = _family_of(flag)
    families = [f for f in own if f in BASES[command]] or list(BASES[command])
    if own and not set(own) & set(BASES[command]):
        return None
    arch = FAMILY_FOR.get((command, flag), families[0])
    return [command, "--arch", arch, *BASES[command][arch]]


def _other(command: str, flag: str) -> list[str]:
    other = OTHER[flag]
    if isinstance(other, dict):
        keys = [command, "model" if _is_model_flag(command, flag) else "", "default"]
        other = other[next(k for k in keys if k in other)]
    if flag == "--exact":
        return [flag]
    return other if isinstance(other, list) else [flag, other]


@pytest.mark.parametrize(("command", "flag"), CASES, ids=[f"{c} {f}" for c, f in CASES])
def test_every_number_changing_flag_is_in_the_settings(command, flag, tmp, monkeypatch):
    base = _base(command, flag)
    if base is None:
        # lemma9 builds the explicit DAG (at most 200,000 edges): the smallest paper-net has 1.2 million;
        # paths needs an exact side, which a ViT has not
        pytest.skip(f"no {command} run of {', '.join(_family_of(flag))} fits the command's limits")
    reference = _settings(_fill([*base, *COMPARED_WITH.get(flag, [])], tmp), monkeypatch)
    modified = _settings(_fill([*base, *_other(command, flag)], tmp), monkeypatch)
    assert modified != reference, f"{command} {flag}: --json's run.settings does not change with it"
    if _is_model_flag(command, flag):
        key = MODEL_KEYS[flag]
        assert modified["options"][key] != reference["options"][key], f"{command} {flag}: options.{key} stays"


# verify trained --model: every flag of trained that changes a number, on the user's module
# (the flags of --model itself are in CASES). The batch-norm-off arm's weight decay has no arm
# to act on: a module keeps its own normalisation (verify.training.ModelFactory).
TRAINED_MODEL_NO_NUMBERS = {"--weight-decay"}
TRAINED_MODEL_CASES = [
    flag
    for flag in dict.fromkeys(_flags("trained"))
    if flag not in NO_NUMBERS
    and flag not in MODEL_FLAGS
    and flag not in TRAINED_MODEL_NO_NUMBERS
    and not _family_of(flag)
]


@pytest.mark.parametrize("flag", TRAINED_MODEL_CASES)
def test_every_number_changing_flag_of_trained_with_a_model_is_in_the_settings(flag, tmp, monkeypatch):
    base = ["trained", "--input-shape", "vector", *MODEL_BASES["trained"]]
    reference = _settings(_fill([*base, *COMPARED_WITH.get(flag, [])], tmp), monkeypatch)
    modified = _settings(_fill([*base, *_other("trained", flag)], tmp), monkeypatch)
    assert modified != reference, f"trained --model {flag}: --json's run.settings does not change with it"
    assert modified["options"]["model"] == reference["options"]["model"]


def test_trained_with_a_model_keeps_no_confounder_arm(tmp, monkeypatch):
    base = _fill(["trained", "--input-shape", "vector", *MODEL_BASES["trained"]], tmp)
    settings = _settings(base, monkeypatch)
    assert settings["arms"] == ["plain", "gp-0.01", "pgd-0.01"]
    assert _settings([*base, "--weight-decay", "0.001"], monkeypatch) == settings
    assert settings["options"]["model_sha256"]
    assert settings["in_channels"] == 1


@pytest.mark.parametrize(("command", "flag"), list(REFUSED), ids=[f"{c} {f}" for c, f in REFUSED])
def test_the_refused_values_are_refused(command, flag, tmp, monkeypatch, capsys):
    base = _base(command, flag)
    assert base is not None
    _patch_checks(monkeypatch)
    assert main(_fill([*base, *REFUSED[command, flag]], tmp)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert flag in err, err


def test_the_table_knows_every_flag():
    missing = {flag for _, flag in CASES if flag not in OTHER}
    assert not missing, f"give these flags another value in OTHER: {sorted(missing)}"


def test_every_command_is_in_the_table():
    from verify.cli import COMMANDS

    commands = {c for c, m in COMMANDS.items() if m != "verify.cli.lemma9" or c == "lemma9"}
    assert commands == set(BASES) | set(NO_SETTINGS)
    for command in NO_SETTINGS:
        unknown = {f for f in _flags(command) if f not in NO_NUMBERS}
        assert not unknown, f"{command}: say in NO_NUMBERS why {sorted(unknown)} change no number, or test them"


def test_a_changed_module_file_changes_the_settings(tmp, monkeypatch):
    """The same --model reference after the file changed: its SHA-256 is in the settings."""
    argv = _fill(["scaling", "--model", "{tmp}/nets.py:pooled", "--input-shape", "vector", "--dims", "8,16"], tmp)
    before = _settings(argv, monkeypatch)
    (tmp / "nets.py").write_text(
        textwrap.dedent(NETS).replace(
            "nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)", "nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4)"
        )
    )
    after = _settings(argv, monkeypatch)
    assert before["options"]["model_sha256"] != after["options"]["model_sha256"]
    assert after["options"]["num_classes"] == 4


def test_every_family_option_is_in_the_settings(monkeypatch):
    for arch, base in BASES["scaling"].items():
        settings = _settings(["scaling", "--arch", arch, *base], monkeypatch)
        assert set(settings["options"]) >= {o.name for o in FAMILIES[arch].options}, arch


def test_the_json_run_settings_are_the_configs(tmp_path, capsys, monkeypatch):
    argv = ["paths", "--arch", "strided-cnn", "--dims", "8", "--channels", "2", "--strides", "1,2", "--classes", "3"]
    assert main([*argv, "--json", "--out-dir", str(tmp_path)]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["run"]["settings"] == _settings(argv, monkeypatch)
    assert obj["run"]["settings"]["options"]["num_classes"] == 3
