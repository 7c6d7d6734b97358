"""``--json`` carries every setting that changes the numbers: for each command and each of its
flags (family flags included), changing the flag changes ``run.settings``, except the flags
that cannot change a number (output, memory guard, threads) or that ``run`` records apart
(``--device``: ``run.device``).

The settings are read from the config the command hands to its check (the check itself is
replaced, so nothing is computed); ``run.settings`` of the JSON is that config's
``settings()`` (``test_the_json_run_settings_are_the_configs`` checks it on one real run).
"""

from __future__ import annotations

import argparse
import importlib
import json

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
}

# A valid command line per (command, family), small enough to build in milliseconds.
BASES = {
    "scaling": {
        "resnet": ["--dims", "8,16", "--width", "2", "--blocks", "1", "--stage-strides", "1", "--draws", "4"],
        "paper-net": ["--dims", "64,128", "--channels", "2", "--draws", "4"],
        "dense": ["--dims", "8,16", "--widths", "4", "--draws", "4"],
        "strided-cnn": ["--dims", "8,16", "--channels", "2", "--strides", "1,2", "--draws", "4"],
        "avgpool-cnn": ["--dims", "8,16", "--channels", "2", "--strides", "1,2", "--draws", "4"],
        "random-dag": ["--dims", "8,16", "--hidden", "4,4", "--draws", "4"],
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
        "resnet": ["--dims", "8", "--width", "2", "--blocks", "1", "--stage-strides", "1"],
        "paper-net": ["--dims", "64", "--channels", "2"],
        "dense": ["--dims", "8,16", "--widths", "4"],
        "strided-cnn": ["--dims", "8", "--channels", "2", "--strides", "1,2"],
        "avgpool-cnn": ["--dims", "8", "--channels", "2", "--strides", "1,2"],
        "random-dag": ["--dims", "8", "--hidden", "4,4"],
    },
}

# Another valid value of each flag; a list is the whole replacement (several flags).
OTHER = {
    "--dims": {"scaling": "8,32", "paths": "4,16", "pooling": "32", "lemma9": "5", "first-order": "8,32"},
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
    "--init": "shared",
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
    "--bn-mode": "eval",
    "--head": "max",
    "--add-relu": "off",
    "--pool": "avg",
    "--dilation-base": "64",
}
# The command line a changed flag is compared with, where it is not the base itself.
COMPARED_WITH = {"--shared-layers": ["--init", "shared"], "--pool-windows": ["--strides", "1,2,2"]}


class _Captured(Exception):
    def __init__(self, config) -> None:
        self.config = config


def _capture(*args, **_kwargs):
    raise _Captured(args[0])


def _settings(argv: list[str], monkeypatch) -> dict:
    for name in ("scaling", "paths", "pooling", "lemma9", "first_order"):
        monkeypatch.setattr(importlib.import_module(f"verify.checks.{name}"), f"check_{name}", _capture)
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


CASES = [(command, flag) for command in BASES for flag in _flags(command) if flag not in NO_NUMBERS]


@pytest.mark.parametrize(("command", "flag"), CASES, ids=[f"{c} {f}" for c, f in CASES])
def test_every_number_changing_flag_is_in_the_settings(command, flag, monkeypatch):
    own = _family_of(flag)
    families = [f for f in own if f in BASES[command]] or list(BASES[command])
    if own and not set(own) & set(BASES[command]):
        # lemma9 builds the explicit DAG (at most 200,000 edges): the smallest paper-net has 1.2 million
        pytest.skip(f"no {command} run of {', '.join(own)} fits the command's limits")
    arch = families[0]
    base = [command, "--arch", arch, *BASES[command][arch]]
    other = OTHER[flag]
    if isinstance(other, dict):
        other = other[command]
    changed = other if isinstance(other, list) else [flag, other]
    if flag == "--exact":
        changed = [flag]
    reference = _settings([*base, *COMPARED_WITH.get(flag, [])], monkeypatch)
    modified = _settings([*base, *changed], monkeypatch)
    assert modified != reference, f"{command} {flag}: --json's run.settings does not change with it"


def test_the_table_knows_every_flag():
    missing = {flag for _, flag in CASES if flag not in OTHER}
    assert not missing, f"give these flags another value in OTHER: {sorted(missing)}"


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
