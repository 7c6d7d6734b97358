"""``verify trained --model FILE.py:FACTORY``: a user's module trained end to end, its
``--init keep`` reproducible, its batch norm trained as the module's own, and its checkpoints
keyed by the file's digest. Digits (8 x 8, one channel) and tiny nets keep it to seconds."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
import torch

from verify.cli import build_parser, main

NETS = """
import torch
from torch import nn


def make(n):
    # two layers for 1 x n x n images, any n (traced into layer kinds)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
    )


class Normed(nn.Module):
    # batch norm and a functional step: trained as the module itself under --init keep
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        return self.fc(h.mean(dim=(2, 3)))


def normed(n):
    return Normed()
"""


def _run(capsys, tmp: Path, *extra: str, out: str = "out") -> dict:
    argv = [
        "trained",
        "--data",
        "digits",
        "--dims",
        "8,16",
        "--seeds",
        "2",
        "--epochs",
        "1",
        "--train-size",
        "32",
        "--test-size",
        "16",
        "--n-boot",
        "100",
        "--threads",
        "1",
        "--no-checkpoints",
        "--json",
        "--out-dir",
        str(tmp / out),
        *extra,
    ]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "nets.py").write_text(textwrap.dedent(NETS))
    return tmp_path


def test_a_users_module_is_trained_end_to_end(tmp, capsys):
    obj = _run(capsys, tmp, "--model", f"{tmp}/nets.py:make", "--methods", "")
    assert [a["name"] for a in obj["arms"]] == ["plain"]
    assert obj["comparisons"] == []  # no confounder arm: the module decides its own normalisation
    fitted = {(s["epoch"], s["quantity"]) for s in obj["slopes"] if s["arm"] == "plain"}
    assert {(0, "loss_grad_l1"), (1, "loss_grad_l1"), (1, "loss_grad_l2")} <= fitted
    assert all(s["slope"] is not None for s in obj["slopes"] if s["quantity"] == "loss_grad_l1")
    options = obj["run"]["settings"]["options"]
    assert options["model"] == f"{tmp}/nets.py:make"
    assert (options["init"], options["input_shape"], options["traced"]) == ("he", "image", True)
    assert len(options["model_sha256"]) == 64
    assert options["num_classes"] == 10
    assert obj["run"]["settings"]["d"] == [64, 256]
    report = (tmp / "out" / obj["report"]).read_text()
    assert "no batch-norm switch" in report
    assert f"your module `{tmp}/nets.py:make`" in report
    assert "confounder" in report


def test_init_keep_runs_again_to_the_same_numbers(tmp, capsys):
    args = ("--model", f"{tmp}/nets.py:normed", "--init", "keep", "--methods", "pgd")
    first = _run(capsys, tmp, *args, out="a")
    second = _run(capsys, tmp, *args, out="b")
    assert first["means"] == second["means"]
    assert first["slopes"] == second["slopes"]
    assert [a["name"] for a in first["arms"]] == ["plain", "pgd-0.01"]


def _config(tmp: Path, *extra: str):
    from verify.cli.trained import build_config

    args = build_parser().parse_args(["trained", "--data", "digits", "--dims", "8,16", "--seeds", "2", *extra])
    return build_config(args)


def test_the_module_path_trains_batch_norm_as_the_modules_own(tmp):
    """--init keep builds the module itself: run i's weights are the module's own draw for
    (seed, i), its running statistics move with batch statistics in training and are not
    weights a gradient reaches."""
    from graphs.rng import Stream, generator_for
    from verify.training import Arm, TrainSettings, train_epoch

    config = _config(tmp, "--model", f"{tmp}/nets.py:normed", "--init", "keep")
    factory = config.factory
    build = lambda run: factory.build(8, True, generator_for(Stream.TRAIN_INIT, 0, run), torch.device("cpu"))  # noqa: E731
    a, b, again = build(0), build(1), build(0)
    assert type(a).__name__ == "Normed"
    assert not torch.equal(a.conv.weight, b.conv.weight)
    assert torch.equal(a.conv.weight, again.conv.weight)
    before = a.bn.running_mean.clone()
    x = torch.rand(16, 1, 8, 8)
    y = torch.randint(0, 10, (16,))
    settings = TrainSettings(epochs=1, batch_size=8, lr=0.01, optimizer="adam")
    optimizer = torch.optim.Adam(a.parameters(), lr=0.01)
    geometry = {"dim": 8, "native": 8, "mean": 0.5, "std": 0.3, "input_shape": (1, 8, 8)}
    train_epoch(a, optimizer, x, y, Arm("plain", own_norm=True), settings, seed=0, run=0, epoch=1, **geometry)
    assert not torch.equal(a.bn.running_mean, before)
    assert all(p is not a.bn.running_mean for p in a.parameters())


def test_an_edited_module_file_gets_new_checkpoints(tmp):
    ref = f"{tmp}/nets.py:make"
    before = _config(tmp, "--model", ref)
    (tmp / "nets.py").write_text(
        textwrap.dedent(NETS).replace(
            "nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()", "nn.Conv2d(1, 4, 3, padding=1), nn.Tanh()"
        )
    )
    after = _config(tmp, "--model", ref)
    assert before.checkpoint_key() != after.checkpoint_key()
    assert before.settings()["options"]["model_sha256"] != after.settings()["options"]["model_sha256"]
    assert before.checkpoint_key().startswith("model-nets-make-digits-")


def test_help_names_the_module_convention(capsys):
    assert main(["trained", "--help"]) == 0
    out = capsys.readouterr().out
    assert "verify trained --model examples/fashion_cnn.py:fashion_cnn" in out
    assert "1 x n x n" in out
    assert not re.search(r"--mode\b", out)  # training sets the module's mode itself
