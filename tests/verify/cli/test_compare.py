"""`verify compare` in-process: files, JSON, and one-line errors with nothing written."""

from __future__ import annotations

import json

import pytest

from verify.cli import main


def test_compare_writes_one_report_and_one_plot(tmp_path, capsys):
    argv = ["compare", "--archs", "strided-cnn:channels=2:strides=1.2,avgpool-cnn:channels=2:strides=1.2"]
    argv += ["--dims", "8,16", "--draws", "3", "--batch", "1", "--n-boot", "100", "--out-dir", str(tmp_path), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["command"] == "compare"
    assert out["run"]["settings"]["archs"] == [
        "strided-cnn:channels=2:strides=1.2",
        "avgpool-cnn:channels=2:strides=1.2",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.md", "compare.png"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--archs", "mlp"], "unknown architecture 'mlp'"),
        (["--archs", "resnet:colour=red"], "not FLAG=VALUE"),
        (["--dims", "32"], "at least 2 size"),
        (["--draws", "1"], "--draws"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, args, words):
    out_dir = tmp_path / "o"
    assert main(["compare", *args, "--out-dir", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert words in err
    assert err.count("\n") == 1
    assert not out_dir.exists()


def test_help_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys; from verify.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
