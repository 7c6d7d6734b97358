"""The `verify` entry point: help with worked examples, version, one-line errors with exit status 2."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from verify.cli import COMMANDS, main
from verify.report import json_text
from verify.version import __version__


def test_help_has_worked_examples(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "verify scaling --arch strided-cnn --dims 32,64,128,256" in out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"verify {__version__}"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help_with_examples(name, capsys):
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert "verify " in out.split("examples", 1)[-1], "the epilog must show a worked command line"


@pytest.mark.parametrize(
    "argv", [[], ["frobnicate"], ["scaling", "--no-such-flag"], ["scaling", "--arch", "no-such-net", "--dims", "8,16"]]
)
def test_bad_command_lines_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("verify"), err


def test_json_text_is_strict_json():
    text = json_text({"a": math.nan, "b": [np.float64(1.5), math.inf], "c": np.arange(2), "d": (1, 2)})
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": [0, 1], "d": [1, 2]}
