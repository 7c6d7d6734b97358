"""``verify trained``: one-line errors, and a killed run that resumes from its checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from verify.cli import main

ROOT = Path(__file__).resolve().parents[3]
SMALL = [
    "trained",
    "--arch",
    "paper-net",
    "--data",
    "digits",
    "--dims",
    "16,32",
    "--dilation-base",
    "16",
    "--channels",
    "4",
    "--seeds",
    "2",
    "--train-size",
    "64",
    "--test-size",
    "32",
    "--methods",
    "",
    "--threads",
    "1",
    "--n-boot",
    "200",
]


def test_help_has_worked_examples(capsys):
    assert main(["trained", "--help"]) == 0
    out = capsys.readouterr().out
    assert "verify trained --arch paper-net --data fashion-mnist --dims 28,56,112 --seeds 3" in out
    assert "apt-get install dataset-fashion-mnist" in out
    assert "weights_only=True" in out


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (
            ["--data", "fashion-mnist", "--dims", "112,224", "--data-dir", "{tmp}/none"],
            "apt-get install dataset-fashion-mnist",
        ),
        (["--dims", "16,20"], "multiple of 8"),
        (["--bn-mode", "eval"], "--bn-mode does not apply"),
        (["--lambdas", "0.01,x", "--methods", "gp"], "--lambdas"),
        (["--methods", "fgsm"], "--methods"),
        (["--width", "8"], "--width"),
        (["--seeds", "1"], "--seeds"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, words):
    args = [*SMALL, "--out-dir", str(tmp_path / "out"), "--checkpoint-dir", str(tmp_path / "ck")]
    args += [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert words in err
    assert "\n" not in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "ck").exists()


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path, capsys):
    """A real process is killed (SIGKILL) once some epochs are saved; the same command then
    trains only what is missing, and its numbers equal those of an uninterrupted run."""
    ck = tmp_path / "ck"
    args = [*SMALL, "--epochs", "4", "--checkpoint-dir", str(ck), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "verify", *args, "--out-dir", str(tmp_path / "killed")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if any(ck.rglob("epoch-0002.pt")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    saved = len(list(ck.rglob("epoch-*.pt")))
    trained_before = saved - len(list(ck.rglob("epoch-0000.pt")))
    runs = 2 * 2 * 2  # sizes x arms (plain, batch norm off) x training runs
    assert 0 < trained_before < runs * 4
    assert main([*args, "--out-dir", str(tmp_path / "resumed")]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["epochs_trained"] == runs * 4 - trained_before  # nothing saved is trained again
    assert resumed["checkpoints_loaded"] >= trained_before
    assert main([*SMALL, "--epochs", "4", "--no-checkpoints", "--json", "--out-dir", str(tmp_path / "fresh")]) == 0
    fresh = json.loads(capsys.readouterr().out)
    assert fresh["epochs_trained"] == 2 * 2 * 2 * 4
    assert fresh["checkpoints_loaded"] == 0
    assert resumed["means"] == fresh["means"]
    assert resumed["slopes"] == fresh["slopes"]
    assert (tmp_path / "resumed" / "trained-paper-net.md").is_file()
