"""The trained-networks check on the digits at two sizes, a few steps: the whole pipeline."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from graphs.errors import InputError
from verify.checks.trained import TrainedConfig, check_trained, default_arms
from verify.data import load_data
from verify.report import write_rendered
from verify.report.trained import render_trained
from verify.results import RunInfo, Verdict
from verify.training import AttackSettings, SpecFactory, TrainSettings

FACTORY = SpecFactory("paper-net", (("channels", 4), ("dilation_base", 16)), 1, 10)


def _config(**kw) -> TrainedConfig:
    base = {
        "factory": FACTORY,
        "data": "digits",
        "dims": (16, 32),
        "arms": default_arms([0.02], ["gp", "pgd"], bn=True, weight_decay=5e-4),
        "train": TrainSettings(epochs=2, batch_size=32, lr=0.01, optimizer="adam", pgd_steps=2, pgd_step_size=0.5),
        "attack": AttackSettings(0.05, 3, 0.5),
        "seeds": 2,
        "train_size": 64,
        "test_size": 32,
        "n_boot": 200,
    }
    base.update(kw)
    return TrainedConfig(**base)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", train_size=64, test_size=32, seed=0)


@pytest.fixture(scope="module")
def result(digits):
    return check_trained(_config(), data=digits)


def test_every_run_is_measured_at_every_epoch(result):
    r = result.records
    cfg = result.config
    assert list(r.columns) == ["arch", "dim", "d", "draw", "input", "quantity", "arm", "epoch", "value"]
    held_out = r[r["quantity"] != "train_loss"]
    counts = held_out.groupby(["arm", "dim", "draw", "epoch", "quantity"]).size()
    assert len(counts) == len(cfg.arms) * 2 * 2 * 3 * 6
    assert (counts == 32).all()
    assert np.isfinite(r["value"]).all()
    assert set(held_out["quantity"]) == {
        "accuracy",
        "loss",
        "loss_grad_l1",
        "loss_grad_l2",
        "vulnerability",
        "adv_loss_gain",
    }
    assert (r.loc[r["quantity"] == "loss_grad_l1", "value"] >= 0).all()
    assert set(r.loc[r["quantity"] == "vulnerability", "value"]) <= {0.0, 1.0}
    assert result.epochs_trained == len(cfg.arms) * 2 * 2 * 2
    assert result.checkpoints_loaded == 0


def test_training_lowers_the_loss(result):
    r = result.records
    for arm in ("plain", "nobn-wd0.0005"):
        sub = r[(r["arm"] == arm) & (r["quantity"] == "train_loss")]
        first, last = sub[sub["epoch"] == 1]["value"].mean(), sub[sub["epoch"] == 2]["value"].mean()
        held = r[(r["arm"] == arm) & (r["quantity"] == "loss")]
        assert last < first
        assert held[held["epoch"] == 2]["value"].mean() < held[held["epoch"] == 0]["value"].mean()


def test_epoch_zero_is_shared_by_the_arms_of_one_initial_net(result):
    r = result.records
    init = r[(r["epoch"] == 0) & (r["quantity"] == "loss_grad_l1")]
    plain = init[init["arm"] == "plain"]["value"].to_numpy()
    for arm in ("gp-0.02", "pgd-0.02"):
        np.testing.assert_array_equal(init[init["arm"] == arm]["value"].to_numpy(), plain)


def test_slopes_claims_and_the_comparison(result):
    cfg = result.config
    s = result.slope("plain", 2, "loss_grad_l1")
    assert s.fit is not None
    assert s.fit.paired
    assert list(s.fit.xs) == [256.0, 1024.0]
    assert s.interval.finite
    assert s.interval.low <= s.slope <= s.interval.high
    names = [c.name for c in result.claims]
    assert "init-bn: loss_grad_l1" in names
    assert "nobn-wd0.0005: vulnerability" in names
    assert "galloway: nobn-wd0.0005: loss_grad_l1" in names
    assert all(c.verdict in set(Verdict) for c in result.claims)
    assert len(result.comparisons) == 2
    comp = result.comparisons[0]
    assert comp.bn_arm == "plain"
    assert comp.nobn_arm == "nobn-wd0.0005"
    expected = comp.bn.slope - comp.nobn.slope
    assert math.isnan(comp.difference) or comp.difference == pytest.approx(expected)
    assert comp.supports in ("paper", "galloway", "neither", "leans-paper", "leans-galloway", "undecided")
    assert len(result.slopes) == len(cfg.arms) * 3 * 4


def test_report_is_written(result, tmp_path):
    run = RunInfo("verify trained ...", 0, "cpu", 1, "float32")
    rendered = render_trained(result, run)
    paths = write_rendered(tmp_path, rendered)
    names = sorted(p.name for p in paths)
    assert names == ["trained-paper-net-slopes.png", "trained-paper-net.md", "trained-paper-net.png"]
    text = (tmp_path / "trained-paper-net.md").read_text()
    for words in ("## Answer", "Galloway", "l_inf PGD, eps = 0.05", "3 steps of 0.5 eps", "random start", "## Claims"):
        assert words in text
    assert all((tmp_path / n).stat().st_size > 1000 for n in names)
    assert rendered.json["command"] == "trained"
    assert rendered.json["claims"]


def test_resuming_from_checkpoints_gives_the_uninterrupted_result(digits, result, tmp_path):
    """One epoch, then two with the same checkpoints: only epoch 2 is trained, and the records
    equal those of the uninterrupted run (whose other arms do not touch these two)."""
    arms = default_arms([], [], bn=True, weight_decay=5e-4)
    one = check_trained(
        _config(arms=arms, train=TrainSettings(1, 32, 0.01, "adam", 2, 0.5), checkpoint_dir=str(tmp_path)), data=digits
    )
    assert one.epochs_trained == 8
    two = check_trained(_config(arms=arms, checkpoint_dir=str(tmp_path)), data=digits)
    assert two.epochs_trained == 8  # only epoch 2 was trained
    assert two.checkpoints_loaded == 8 + 8  # epoch 1 of every run, epoch 0 of every (size, initial net, run)
    key = ["arm", "dim", "draw", "epoch", "quantity", "input"]
    a = result.records[result.records["arm"].isin([a.name for a in arms])]
    a = a.sort_values(key).reset_index(drop=True)
    b = two.records.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"dims": (16, 20)}, "multiple of 8"),
        ({"dims": (16,)}, "at least two"),
        ({"seeds": 1}, "--seeds"),
        ({"arms": ()}, "no training arm"),
        ({"attack": AttackSettings(0.0, 3, 0.5)}, "--attack-eps"),
        ({"train": TrainSettings(0, 32, 0.01)}, "--epochs"),
        ({"dims": (8, 16)}, "--dilation-base"),
    ],
)
def test_bad_configs_are_one_line_input_errors(change, words):
    with pytest.raises(InputError, match=words) as info:
        _config(**change)
    assert "\n" not in str(info.value)


class TinyFactory:
    """A user's own module: any object with these methods plugs into check_trained."""

    name = "tiny-cnn"
    has_bn_option = True

    def d(self, dim: int) -> int:
        return dim * dim

    def input_shape(self, dim: int) -> tuple[int, ...]:
        return (1, dim, dim)

    def build(self, dim, bn, generator, device):
        import torch
        from torch import nn

        layers = [nn.Conv2d(1, 4, 3, padding=1), *([nn.BatchNorm2d(4)] if bn else []), nn.ReLU()]
        net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
        return net.to(device)

    def settings(self) -> dict:
        return {"arch": self.name}


def test_a_user_module_factory_plugs_in(digits):
    cfg = _config(
        factory=TinyFactory(),
        dims=(8, 16),
        arms=default_arms([], [], bn=True, weight_decay=1e-3),
        train=TrainSettings(1, 32, 0.01),
    )
    res = check_trained(cfg, data=digits)
    assert set(res.records["arm"]) == {"plain", "nobn-wd0.001"}
    assert set(res.records["d"]) == {64, 256}
    assert res.broken == ()
    assert len(res.comparisons) == 2
