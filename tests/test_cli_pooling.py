"""``verify pooling`` end to end (small nets) and its one-line errors."""

from __future__ import annotations

import json

import pytest

from verify.cli import main

SMALL = ["pooling", "--arch", "avgpool-cnn", "--dim", "32", "--channels", "8", "--strides", "1,2,2", "--batch", "2"]


def test_pooling_cli_json_report_and_plot(tmp_path, capsys):
    argv = [*SMALL, "--pools", "1,2,4", "--samples", "12", "--n-boot", "200", "--out-dir", str(tmp_path), "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["x"] == "prod_a" and payload["xs"] == [4, 16, 64]
    assert payload["dims"] == [32] and payload["windows"] == [[1, 2], [2, 2], [4, 2]]
    (norm, sq) = payload["quantities"]
    assert norm["name"] == "logit_grad_l2" and norm["predicted_slope"] == -0.5
    assert norm["verdict"] in ("consistent", "inconsistent", "inconclusive")
    assert norm["h_predicted"] == pytest.approx([(2 / a) ** 0.5 for a in (4, 16, 64)], rel=1e-12)
    assert len(norm["means"]) == 3 and norm["ci_low"] <= norm["slope"] <= norm["ci_high"]
    t11 = payload["theorem11"]
    assert t11["predicted"] == pytest.approx(0.25) and t11["h_ratio_he"] == pytest.approx(0.25)
    assert t11["ci_low"] <= t11["ratio"] <= t11["ci_high"]
    assert t11["paired"] is True  # both nets are measured on the same draws
    assert len(payload["second_moments"]) == 3
    report = (tmp_path / "pooling-avgpool-cnn.md").read_text()
    assert "Theorem 11" in report and "(H) init" in report and "pooling-avgpool-cnn.png" in report
    assert (tmp_path / "pooling-avgpool-cnn.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "extra",
    [
        ["--pools", "1,3"],  # a 3x3 window does not tile 32 x 32
        ["--pools", "1,2,32"],  # 32 * 2 > 32
        ["--pools", "2"],
        ["--pools", "1,1"],
        ["--pools", "1,x"],
        ["--pools", "1,2", "--samples", "1"],
        ["--pools", "1,2", "--device", "cuda"] if not __import__("torch").cuda.is_available() else ["--pools", "0,1"],
        ["--pools", "1,2", "--arch", "dense"],
        ["--pools", "1,2", "--widths", "4"],
        ["--pools", "1,2", "--margin", "0"],
        ["--pools", "1,2", "--pool-windows", "2"],  # one window for two strided layers
    ],
)
def test_pooling_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, extra):
    assert main([*SMALL, *extra, "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("verify: error:") and "\n" not in err, err
    assert not list(tmp_path.iterdir())


def test_pool_windows_count_names_the_option(tmp_path, capsys):
    assert main([*SMALL, "--pools", "1,2", "--pool-windows", "2", "--out-dir", str(tmp_path)]) == 2
    assert "--pool-windows gives 1 window(s) for 2 strided layer(s)" in capsys.readouterr().err


def test_pooling_cli_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([*SMALL, "--pools", "1,2", "--out-dir", str(blocker / "sub")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
