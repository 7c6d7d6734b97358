"""On a terminal every command shows one progress line per phase; on a pipe nothing."""

from __future__ import annotations

import shlex

import pytest

import verify.montecarlo
from verify.cli import main

RUNS = {
    "scaling": (
        shlex.split("scaling --arch dense --dims 8,16 --widths 4 --draws 4 --n-boot 200 --quantities logit_grad_l2"),
        ["exact side", "Monte Carlo", "bootstrap fits", "Monte Carlo against Eq. 13", "report and plots"],
    ),
    "pooling": (
        shlex.split("pooling --dims 16 --pools 1,2 --strides 1,2 --channels 2 --draws 4 --batch 1 --n-boot 200"),
        ["Monte Carlo", "exact side", "bootstrap fits", "report and plots"],
    ),
    "lemma9": (
        shlex.split("lemma9 --arch random-dag --dims 4 --hidden 4,4 --draws 20 --mc-draws 2"),
        ["explicit DAG", "weight draws", "t-tests", "engine Monte Carlo", "report"],
    ),
    "first-order": (
        shlex.split(
            "first-order --arch dense --dims 8,16 --widths 4 --draws 3 --batch 2 --eps 1e-3,1e-2 --norms 2 --n-boot 200 "
            "--pgd-steps 2"
        ),
        ["attacks", "linear-model reference", "bootstrap fits", "report and plots"],
    ),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_one_line_per_phase_on_a_terminal(name, tmp_path, capsys, monkeypatch):
    argv, phases = RUNS[name]
    monkeypatch.setattr(verify.montecarlo, "show_progress", lambda quiet=False: not quiet)
    assert main([*argv, "--out-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    # each phase's line is rewritten in place ("\r" + erase); what stays is its final text
    lines = [line.rsplit("\r", 1)[-1].removeprefix("\033[K") for line in err.split("\n") if line.strip()]
    lines = [line for line in lines if line.startswith(f"verify {name}: ")]
    assert len(lines) == len(phases), err
    for line, phase in zip(lines, phases):
        assert phase in line, (phase, line)
        assert line.endswith(" s"), line


def test_nothing_on_a_pipe(tmp_path, capsys):
    assert main(["paths", "--arch", "dense", "--dims", "4,8", "--widths", "4", "--out-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""
