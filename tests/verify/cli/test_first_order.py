"""`verify first-order` in-process: report, figure, JSON envelope, aliases, threads and every bad input."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from verify.cli import main

ARGV = [
    "first-order",
    "--arch",
    "dense",
    "--widths",
    "16,16",
    "--dims",
    "16,32",
    "--eps",
    "1e-3,1e-2",
    "--draws",
    "3",
    "--batch",
    "4",
]


def _run_json(argv, capsys) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_json_report_and_figure(tmp_path, capsys):
    out = _run_json([*ARGV, "--out-dir", str(tmp_path), "--json"], capsys)
    assert list(out)[:5] == ["command", "version", "run", "claims", "verdicts"]
    assert out["command"] == "first-order"
    assert out["d"] == [16, 32]
    assert out["norms"] == ["inf", "2"]
    assert out["samples"] == out["draws"] == 3
    assert out["batch"] == 4
    assert out["dtype"] == "float64"
    run = out["run"]
    assert run["threads"] == 1
    assert run["dtype"] == "float64"
    assert run["torch_version"] == torch.__version__
    for key in (
        "eps_inf",
        "norms",
        "draws",
        "batch",
        "seed",
        "dtype",
        "pgd_steps",
        "pgd_step_size",
        "margin",
        "n_boot",
    ):
        assert key in run["settings"], key
    assert len(out["lemma2"]) == 2 * 2 * 2 * 2
    assert all(math.isfinite(r["ratio"]) for r in out["lemma2"])
    assert len(out["prop3_order"]) == 4
    assert len(out["remark1"]) == 2
    assert out["snr"]
    assert set(out["pgd"]["linear_model_limit"]) == {"inf", "2"}
    assert out["pgd"]["steps"] == 7
    # claims: Lemma 2 per (d, norm, attack), Prop. 3 per (d, norm), the SNR, Remark 1 per d
    assert len(out["claims"]) == 8 + 4 + 1 + 2
    assert sum(out["verdicts"].values()) == 15
    pgd = [c for c in out["claims"] if c["name"].startswith("lemma2 pgd")]
    assert {c["predicted"] for c in pgd} == {
        out["pgd"]["linear_model_limit_by_d"][str(d)][n] for d in (16, 32) for n in ("inf", "2")
    }
    report = tmp_path / "first-order-dense.md"
    figure = tmp_path / "first-order-dense.png"
    assert report.exists()
    assert figure.stat().st_size > 1000
    text = report.read_text()
    for section in (
        "## Settings",
        "## Verdicts",
        "## Lemma 2",
        "## Proposition 3",
        "## Eq. 3",
        "## Remark 1",
        "first-order-dense.png",
    ):
        assert section in text
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")], "temporary files left behind"


def test_samples_alias_norm_subset_and_thread_restore(tmp_path, capsys):
    argv = [*ARGV]
    argv[argv.index("--draws")] = "--samples"
    before = torch.get_num_threads()
    out = _run_json([*argv, "--out-dir", str(tmp_path), "--json", "--norms", "inf", "--threads", "2"], capsys)
    assert torch.get_num_threads() == before
    assert out["draws"] == 3
    assert out["run"]["threads"] == 2
    assert {r["norm"] for r in out["lemma2"]} == {"inf"}


def test_terminal_summary(tmp_path, capsys):
    assert main([*ARGV, "--out-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "| lemma2 one-step p=inf d=16 |" in text
    assert "report:" in text
    assert "wall time" in text


@pytest.mark.parametrize(
    "change",
    [
        ("--eps", "0,1e-3"),
        ("--eps", "-1e-3,1e-2"),
        ("--eps", "abc,1e-3"),
        ("--eps", "nan,1e-3"),
        ("--eps", "1e-3"),
        ("--norms", "inf,3"),
        ("--norms", "1"),
        ("--norms", "inf,inf"),
        ("--dims", "16,abc"),
        ("--dims", "0,16"),
        ("--arch", "nope"),
        ("--draws", "1"),
        ("--samples", "1"),
        ("--batch", "0"),
        ("--pgd-step-size", "0"),
        ("--pgd-steps", "0"),
        ("--dtype", "float16"),
        ("--margin", "0"),
        ("--n-boot", "5"),
        ("--threads", "0"),
        ("--device", "tpu"),
        ("--seed", "-1"),
        ("--classes", "1"),
        ("--channels", "4"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, change):
    argv = [*ARGV, "--out-dir", str(tmp_path / "out")]
    if change[0] in argv:
        argv[argv.index(change[0]) + 1] = change[1]
    else:
        argv += list(change)
    if change[0] == "--arch":
        argv.remove("--widths")
        argv.remove("16,16")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("verify: error:"), err
    assert not (tmp_path / "out").exists()


def test_out_dir_is_checked_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([*ARGV, "--out-dir", str(blocker / "sub")]) == 2
    assert "--out-dir" in capsys.readouterr().err


def test_broken_hypotheses_are_stated_next_to_the_verdicts(tmp_path, capsys):
    argv = ["first-order", "--arch", "strided-cnn", "--dims", "8", "--channels", "4", "--strides", "1,2"]
    out = _run_json(
        [*argv, "--eps", "1e-3,1e-2", "--draws", "2", "--batch", "2", "--out-dir", str(tmp_path), "--json"], capsys
    )
    remark = [c for c in out["claims"] if c["name"].startswith("remark1")]
    assert remark
    assert all(c["hypotheses_broken"] == ["H3"] for c in remark)
    assert all(c["hypotheses_broken"] == [] for c in out["claims"] if not c["name"].startswith("remark1"))
    assert out["hypotheses_broken"] == {"192": ["H3"]}
    assert "**Warning: H3 fails for this net.**" in (tmp_path / "first-order-strided-cnn.md").read_text()
