"""`verify scaling` in-process: report, plot, JSON envelope, determinism and every bad input."""

from __future__ import annotations

import json
import os

import pytest
import torch

from tests.gfm import assert_tables_render
from verify.cli import main
from verify.theory import SCALING_QUANTITIES

DENSE = ["scaling", "--arch", "dense", "--dims", "16,64,256", "--widths", "32", "--draws", "8", "--batch", "2"]
CNN = [
    "scaling",
    "--arch",
    "strided-cnn",
    "--dims",
    "8,16",
    "--channels",
    "4",
    "--strides",
    "1,2",
    "--draws",
    "6",
    "--batch",
    "1",
]


def _run_json(argv, capsys):
    assert main(argv) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_json_envelope_report_and_plot(tmp_path, capsys):
    out, _ = _run_json([*DENSE, "--out-dir", str(tmp_path), "--json"], capsys)
    assert {"command", "version", "run", "claims", "verdicts"} <= set(out)
    assert out["command"] == "scaling"
    run = out["run"]
    assert run["seed"] == 0
    assert run["torch_version"] == torch.__version__
    assert run["wall_seconds"] > 0
    # every setting that changes the numbers is in the JSON: a run can be rebuilt from it
    settings = run["settings"]
    for key in ("draws", "batch", "seed", "inputs", "eps_inf", "margin", "n_boot", "dims", "options"):
        assert key in settings, key
    # today's keys stay where they were
    assert out["arch"] == "dense"
    assert out["padding"] is None
    assert out["dims"] == [16, 64, 256]
    assert out["d"] == [16, 64, 256]
    assert out["seed"] == 0
    assert out["samples"] == 8
    assert out["batch"] == 2
    assert out["margin"] == 0.05
    assert out["symmetric"] is True
    assert out["h3_violation_fraction"] == 0.0
    names = list(SCALING_QUANTITIES)
    names.insert(names.index("logit_grad_l2") + 1, "logit_grad_l2_sq")  # the square, exact under (H)
    assert [q["name"] for q in out["quantities"]] == names
    # three sizes: no finite-size fit, and the report says why
    assert [c["name"] for c in out["claims"]] == [*names, "second_moments"]
    assert out["asymptotic_note"]
    assert "at least 5 sizes" in out["asymptotic_note"]
    assert all(q["asymptotic"] is None for q in out["quantities"])
    # dense nets: Eq. 13 gives 2 at every size with either variance (Lemma 7)
    for size in out["sizes"]:
        assert size["exact_logit_grad_sq_he"] == pytest.approx(2.0, rel=1e-12)
        assert size["exact_logit_grad_sq_init"] == pytest.approx(2.0, rel=1e-12)
    squared = out["quantities"][names.index("logit_grad_l2_sq")]
    assert squared["exact"]["slope"] == pytest.approx(0.0, abs=1e-12)
    assert len(out["second_moments"]) == 3
    for q, c in zip(out["quantities"], out["claims"]):
        assert len(q["means"]) == len(q["stderr"]) == 3
        assert q["verdict"] == c["verdict"]
        assert q["slope"] == c["estimate"]
        assert c["interval"]["low"] == q["ci_low"]
        assert c["interval"]["method"].startswith("BCa")
        assert c["hypotheses_broken"] == []  # dense nets satisfy (H) and (S) exactly
    assert sum(out["verdicts"].values()) == len(out["claims"])
    report = (tmp_path / "scaling-dense.md").read_text()
    assert_tables_render(report)
    for text in (
        "## Settings",
        "wall time",
        "torch",
        "## Verdicts",
        "predicted slope",
        "95% CI",
        "Per-size means",
        "Exact (H) curve against Monte Carlo",
        "Asymptotic exponent: not fitted",
        "(S) holds",
        "H3 holds",
        "scaling-dense.png",
    ):
        assert text in report, text
    assert (tmp_path / "scaling-dense.png").stat().st_size > 1000
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")], "temporary files left behind"


def test_same_seed_same_numbers(tmp_path, capsys):
    def numbers(out):
        return [(q["slope"], q["ci_low"], q["ci_high"], q["means"]) for q in out["quantities"]]

    a, _ = _run_json([*DENSE, "--out-dir", str(tmp_path / "a"), "--json", "--seed", "3"], capsys)
    b, _ = _run_json([*DENSE, "--out-dir", str(tmp_path / "b"), "--json", "--seed", "3"], capsys)
    c, _ = _run_json([*DENSE, "--out-dir", str(tmp_path / "c"), "--json", "--seed", "4"], capsys)
    assert numbers(a) == numbers(b)
    assert numbers(a) != numbers(c)


def test_samples_is_an_alias_of_draws(tmp_path, capsys):
    argv = [*DENSE]
    argv[argv.index("--draws")] = "--samples"
    out, _ = _run_json([*argv, "--out-dir", str(tmp_path), "--json"], capsys)
    assert out["draws"] == 8


def test_broken_hypotheses_are_stated_next_to_the_verdicts(tmp_path, capsys):
    assert main([*CNN, "--out-dir", str(tmp_path), "--quantities", "logit_grad_l2,vuln_linf"]) == 0
    out = capsys.readouterr().out
    assert "(S) FAILS" in out
    assert "H3 FAILS" in out
    assert "wall time" in out
    assert "needs (S)" not in out  # the terminal summary names only columns it shows
    report = (tmp_path / "scaling-strided-cnn.md").read_text()
    verdicts = report.split("## Verdicts", 1)[1].split("## Per-size", 1)[0]
    assert "Warning: (S), H3 fail" in verdicts
    rows = [line for line in verdicts.splitlines() if line.startswith(("| logit_grad_l2 |", "| vuln_linf |"))]
    assert len(rows) == 2
    assert all("| H3 |" in row for row in rows)
    assert "padding=zeros" in report
    assert_tables_render(report)


def test_dims_order_does_not_matter(tmp_path, capsys):
    # Per-size tables pair each size with its mean: sizes given out of order must not shift them.
    a, _ = _run_json([*DENSE, "--out-dir", str(tmp_path / "a"), "--json"], capsys)
    shuffled = [*DENSE]
    shuffled[shuffled.index("--dims") + 1] = "256,16,64"
    b, _ = _run_json([*shuffled, "--out-dir", str(tmp_path / "b"), "--json"], capsys)
    assert a["quantities"] == b["quantities"]
    report = (tmp_path / "b" / "scaling-dense.md").read_text()
    assert "| 16 -> 64 |" in report
    assert "| 64 -> 256 |" in report


def test_quantities_subset_in_json(tmp_path, capsys):
    out, _ = _run_json([*DENSE, "--out-dir", str(tmp_path), "--json", "--quantities", "vuln_l2,loss_grad_l1"], capsys)
    assert [q["name"] for q in out["quantities"]] == ["vuln_l2", "loss_grad_l1"]


def test_signs_survive_in_tables(tmp_path, capsys):
    assert main([*DENSE, "--out-dir", str(tmp_path)]) == 0
    report = (tmp_path / "scaling-dense.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| loss_grad_linf"))
    assert "| -0.5 |" in row
    row = next(line for line in report.splitlines() if line.startswith("| loss_grad_l1 |"))
    assert "| +0.5 |" in row


BAD = [
    (["--dims", "16"], "at least 2"),
    (["--dims", "16,16"], "distinct"),
    (["--dims", "16,-4"], "positive"),
    (["--dims", "16,0"], "positive"),
    (["--dims", "a,b"], "integer"),
    (["--dims", "1,2"], "d >= 2"),
    (["--draws", "0"], "--draws"),
    (["--samples", "-3"], "--draws"),
    (["--batch", "0"], "--batch"),
    (["--margin", "0"], "--margin"),
    (["--margin", "-0.1"], "--margin"),
    (["--n-boot", "10"], "--n-boot"),
    (["--quantities", "loss_grad_l3"], "loss_grad_l3"),
    (["--quantities", ","], "--quantities"),
    (["--eps-inf", "0"], "--eps-inf"),
    (["--inputs", "uniform"], "--inputs"),
    (["--padding", "circular"], "--padding"),  # not a dense option
    (["--seed", "-1"], "--seed"),
    (["--classes", "1"], "--classes"),
    (["--out-dir", ""], "--out-dir"),
    (["--precision", "fp16"], "--precision"),
]


@pytest.mark.parametrize(("extra", "needle"), BAD, ids=[" ".join(e) for e, _ in BAD])
def test_bad_input_one_line_exit_2_no_report(extra, needle, tmp_path, capsys):
    argv = ["scaling", "--arch", "dense", "--dims", "16,64", "--draws", "4", "--out-dir", str(tmp_path / "r")]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("verify"), err
    assert needle in err, err
    assert not (tmp_path / "r").exists(), "a failed run must not create the output folder"


def test_dead_nets_end_in_one_line(tmp_path, capsys):
    argv = [
        "scaling",
        "--arch",
        "dense",
        "--dims",
        "16,32",
        "--widths",
        "1",
        "--draws",
        "2",
        "--batch",
        "1",
        "--out-dir",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "dead" in err, err
    assert not (tmp_path / "r").exists()


def test_unknown_family(tmp_path, capsys):
    assert main(["scaling", "--arch", "no-such-net", "--dims", "8,16", "--out-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "no-such-net" in err
    assert not (tmp_path / "r").exists()


def test_upsampled_sizes_must_be_multiples(tmp_path, capsys):
    assert main([*CNN[:4], "8,12", *CNN[5:], "--inputs", "upsampled", "--out-dir", str(tmp_path / "r")]) == 2
    assert "multiples" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_where_none(tmp_path, capsys):
    assert main([*DENSE, "--device", "cuda", "--out-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "cuda" in err.lower()
    assert not (tmp_path / "r").exists()


def test_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main([*DENSE, "--out-dir", str(blocker / "reports")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "not a folder" in err
    assert not (blocker.parent / "scaling-dense.md").exists()


def test_help_documents_the_defaults(capsys):
    assert main(["scaling", "--help"]) == 0
    out = capsys.readouterr().out
    assert "verify scaling --arch strided-cnn --dims 32,64,128,256" in out
    assert "75 CPU-seconds" in out  # the cost of the main command, stated in its help
    assert "--draws" in out
    assert "--batch" in out
    # family flags are grouped by the families they apply to, with each family's default
    assert "options of strided-cnn, avgpool-cnn" in out
    assert "(default 64)" in out


def test_precision_is_a_setting_and_its_error_is_measured(tmp_path, capsys):
    quick = [*DENSE, "--n-boot", "200", "--quantities", "loss_grad_l2", "--json"]
    fp32, _ = _run_json([*quick, "--out-dir", str(tmp_path / "a")], capsys)
    bf16, _ = _run_json([*quick, "--precision", "bf16", "--out-dir", str(tmp_path / "b")], capsys)
    assert fp32["run"]["settings"]["precision"] == "fp32"
    assert bf16["run"]["settings"]["precision"] == "bf16"
    assert bf16["run"]["dtype"] == "bfloat16"
    assert fp32["precision"]["dim"] == 256
    assert fp32["precision"]["draw"] == 0
    assert 0 <= fp32["precision"]["max_relative_error"] < 1e-5
    assert 1e-4 < bf16["precision"]["max_relative_error"] < 0.2
    report = (tmp_path / "b" / "scaling-dense.md").read_text()
    assert "- precision: bf16 (bfloat16 nets, float64 sums): per-sample quantities within" in report


def test_help_lists_the_theorys_quantities():
    from verify import settings, theory

    # the command line reads them from verify.settings so that --help need not import numpy
    assert settings.SCALING_QUANTITIES == theory.SCALING_QUANTITIES
    assert settings.EPS_INF == theory.EPS_INF
