"""verify.checks.flip_distance from Python: records, claims, Euler's identity, bad settings."""

from __future__ import annotations

import numpy as np
import pytest

from graphs.errors import InputError
from graphs.spec import build_spec
from verify.checks.flip_distance import METHODS, FlipConfig, check_flip_distance, draw_flips
from verify.results import Verdict


def _config(dims=(16, 64, 256), **kw):
    return FlipConfig(tuple(build_spec("dense", d, widths=(16, 16)) for d in dims), **kw)


@pytest.fixture(scope="module")
def result():
    return check_flip_distance(_config(draws=6, batch=2, n_boot=200))


def test_records_claims_and_the_identity(result):
    names = [m[0] for m in METHODS]
    assert [c.name for c in result.claims] == [*names, "homogeneity"]
    assert result.homogeneity_claim.verdict is Verdict.CONSISTENT
    assert result.homogeneity < 1e-12
    assert set(result.records.columns) == {"arch", "dim", "d", "draw", "input", "quantity", "value"}
    for m in result.methods:
        assert len(m.fit.means) == 3
        assert m.constant > 0
        assert m.per_size_constant == pytest.approx(m.fit.means * np.sqrt(m.fit.xs))
    # the line search along the gradient can only be longer than the nearest boundary, up to the
    # search's precision; DeepFool ends beyond the first-order step by its overshoot or more
    rec = result.records
    for norm in ("l2", "linf"):
        line = rec[rec.quantity == f"ratio_{norm}_line"]["value"].to_numpy()
        first = rec[rec.quantity == f"ratio_{norm}_first_order"]["value"].to_numpy()
        ok = np.isfinite(line)
        assert (line[ok] >= first[ok] * (1 - 1e-6)).all()


def test_records_from_elsewhere_give_the_same_result(result):
    again = check_flip_distance(result.config, records=result.records)
    assert [c.to_dict() for c in again.claims] == [c.to_dict() for c in result.claims]


def test_one_draw_is_reproducible_alone():
    cfg = _config(draws=2)
    a = draw_flips(cfg.specs[0], cfg, 1)
    b = draw_flips(cfg.specs[0], cfg, 1)
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"dims": (16,)}, "two sizes"),
        ({"draws": 1}, "--draws"),
        ({"overshoot": 0.0}, "--overshoot"),
        ({"max_iter": 0}, "--max-iter"),
        ({"t_max": -1.0}, "--t-max"),
        ({"dtype": "float16"}, "--dtype"),
    ],
)
def test_config_refuses_bad_settings(kw, needle):
    dims = kw.pop("dims", (16, 64))
    with pytest.raises(InputError, match=needle):
        _config(dims, **kw)
