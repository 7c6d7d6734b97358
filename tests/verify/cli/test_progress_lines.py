"""On a terminal every command shows one progress line per phase; on a pipe nothing. The
reports these runs write are checked as GitHub renders their tables (``tests/gfm.py``)."""

from __future__ import annotations

import shlex

import pytest

import verify.montecarlo
from tests.gfm import assert_tables_render
from verify.cli import main

# verify compare: each architecture's phases, named by its label
_ARCH_PHASES = ["exact side", "Monte Carlo", "bootstrap fits", "Monte Carlo against Eq. 13", "Eq. 13 under (H)"]

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
    "compare": (
        shlex.split(
            "compare --archs dense:widths=4,strided-cnn:channels=2:strides=1.2 --dims 8,16 --draws 4 --batch 1 "
            "--n-boot 200"
        ),
        [
            f"{arch}: {phase}"
            for arch in ("dense:widths=4", "strided-cnn:channels=2:strides=1.2")
            for phase in _ARCH_PHASES
        ]
        + ["report and plots"],
    ),
    "trained": (
        shlex.split(
            "trained --arch dense --data digits --dims 8,16 --widths 4 --seeds 2 --epochs 1 --train-size 40 "
            "--test-size 20 --methods gp --attack-steps 1 --no-checkpoints --n-boot 200"
        ),
        ["training 8 runs", "slopes per epoch", "report and plots"],
    ),
    "calibrate": (
        shlex.split("calibrate --cases dense-mean,dense-slope --seeds 2 --draws 4 --dense-dims 8,16 --n-boot 200"),
        ["2 replications", "coverage and detection rates", "report and plots"],
    ),
    "flip-distance": (
        shlex.split("flip-distance --arch dense --dims 8,16 --widths 4 --draws 3 --batch 1 --n-boot 200"),
        ["line searches and DeepFool", "bootstrap fits of 6 distances", "report and plots"],
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
    reports = list(tmp_path.glob("*.md"))
    assert reports
    for report in reports:
        assert_tables_render(report.read_text())


def test_nothing_on_a_pipe(tmp_path, capsys):
    assert main(["paths", "--arch", "dense", "--dims", "4,8", "--widths", "4", "--out-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""


def test_no_training_bars_on_a_pipe(tmp_path, capsys):
    """verify trained's tqdm bars follow the phase lines: none on a pipe (they used to show)."""
    argv, _ = RUNS["trained"]
    assert main([*argv, "--epochs", "1", "--seeds", "2", "--out-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""
