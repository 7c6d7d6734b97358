"""``verify pooling`` in-process: JSON, report, plot, the --dim alias, and one-line errors."""

from __future__ import annotations

import json
import os

import pytest
import torch

from verify.cli import build_parser, main

SMALL = ["pooling", "--arch", "avgpool-cnn", "--dims", "32", "--channels", "8", "--strides", "1,2,2", "--batch", "2"]


def test_json_report_and_plot(tmp_path, capsys):
    argv = [*SMALL, "--pools", "1,2,4", "--draws", "12", "--n-boot", "200", "--out-dir", str(tmp_path), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["command"] == "pooling"
    assert out["x"] == "prod_a"
    assert out["xs"] == [4, 16, 64]
    assert out["draws"] == out["samples"] == 12
    assert out["margin"] == 0.05
    assert out["n_boot"] == 200
    assert out["run"]["command_line"].startswith("verify pooling")
    assert out["run"]["wall_seconds"] > 0
    for key in ("draws", "batch", "seed", "margin", "n_boot", "dims", "options", "pools"):
        assert key in out["run"]["settings"], key
    assert out["theorem11"]["paired"] is True
    report = (tmp_path / "pooling-avgpool-cnn.md").read_text()
    assert "Theorem 11" in report
    assert "(H) init" in report
    assert "pooling-avgpool-cnn.png" in report
    assert (tmp_path / "pooling-avgpool-cnn.png").stat().st_size > 1000
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")], "temporary files left behind"


def test_dim_is_an_alias_of_dims_and_samples_of_draws(tmp_path, capsys):
    argv = [*SMALL, "--pools", "1,2", "--samples", "4", "--n-boot", "100", "--out-dir", str(tmp_path), "--json"]
    argv[argv.index("--dims")] = "--dim"
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dims"] == [32]
    assert out["draws"] == 4


def test_help_states_the_command_defaults(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pooling", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "channels of every convolution (default 16)" in text
    assert "(default 256)" in text
    assert "--dims N, --dim N" in text
    assert "--widths" not in text  # only avgpool-cnn's flags


def test_cli_defaults_are_the_checks():
    import verify.checks.pooling as check
    import verify.cli.pooling as cli

    assert (cli.DEFAULT_DIM, cli.DEFAULT_CHANNELS, cli.DEFAULT_DRAWS, cli.DEFAULT_BATCH) == (
        check.DEFAULT_DIM,
        check.DEFAULT_CHANNELS,
        check.DEFAULT_DRAWS,
        check.DEFAULT_BATCH,
    )


def test_args_are_not_mutated(tmp_path, monkeypatch):
    import verify.cli.pooling as cli

    seen = {}
    real = cli.run

    def spy(args):
        before = dict(vars(args))
        try:
            return real(args)
        finally:
            seen["same"] = dict(vars(args)) == before

    parser = build_parser()
    args = parser.parse_args([*SMALL, "--pools", "1,2", "--draws", "3", "--n-boot", "100", "--out-dir", str(tmp_path)])
    args.command_line = "verify pooling"
    assert spy(args) == 0
    assert seen["same"]
    assert args.family_channels == "8"
    assert args.dims == "32"


@pytest.mark.parametrize(
    "extra",
    [
        ["--pools", "1,3"],  # a 3x3 window does not tile 32 x 32
        ["--pools", "1,2,32"],  # 32 * 2 > 32
        ["--pools", "2"],
        ["--pools", "1,1"],
        ["--pools", "1,x"],
        ["--pools", "1,2", "--draws", "1"],
        ["--pools", "1,2", "--device", "cuda"] if not torch.cuda.is_available() else ["--pools", "0,1"],
        ["--pools", "1,2", "--arch", "dense"],
        ["--pools", "1,2", "--widths", "4"],
        ["--pools", "1,2", "--margin", "0"],
        ["--pools", "1,2", "--n-boot", "5"],
        ["--pools", "1,2", "--seed", "-1"],
        ["--pools", "1,2", "--pool-windows", "2"],  # one window for two strided layers
        ["--pools", "1,2", "--dims", "32,64"],  # one size only
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, extra):
    out_dir = tmp_path / "out"
    assert main([*SMALL, *extra, "--out-dir", str(out_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("verify: error:"), err
    assert "\n" not in err, err
    assert not out_dir.exists()


def test_pool_windows_count_names_the_option(tmp_path, capsys):
    assert main([*SMALL, "--pools", "1,2", "--pool-windows", "2", "--out-dir", str(tmp_path)]) == 2
    assert "--pool-windows gives 1 window(s) for 2 strided layer(s)" in capsys.readouterr().err


def test_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([*SMALL, "--pools", "1,2", "--out-dir", str(blocker / "sub")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
