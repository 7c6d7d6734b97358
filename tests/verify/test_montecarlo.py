"""verify.montecarlo: one record schema, block-invariant results, the runtime's thread policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from graphs.spec import build_spec
from verify.montecarlo import RECORD_COLUMNS, block_records, monte_carlo
from verify.runtime import Runtime, runtime


def _fake(ids):
    # value depends on the draw id and the input only: blocks must not matter
    values = np.array([[[10 * i + j, -(10 * i + j)] for j in range(2)] for i in ids], dtype=np.float64).transpose(
        0, 2, 1
    )
    return block_records(ids, ["a", "b"], values)


def test_schema_and_block_invariance():
    spec = build_spec("dense", 4, widths=(3,))
    one = monte_carlo(spec, range(5), _fake, block_size=1)
    three = monte_carlo(spec, range(5), _fake, block_size=3)
    assert tuple(one.columns) == RECORD_COLUMNS
    pd.testing.assert_frame_equal(one, three)
    assert len(one) == 5 * 2 * 2
    row = one[(one.draw == 3) & (one.input == 1) & (one.quantity == "b")]
    assert row["value"].item() == -31.0
    assert (one.arch == "dense").all()
    assert (one.d == 4).all()


def test_extra_key_columns_sit_before_value():
    spec = build_spec("dense", 4, widths=(3,))

    def fn(ids):
        out = _fake(ids)
        out["norm"] = np.full(len(out["value"]), "inf", dtype=object)
        return out

    rec = monte_carlo(spec, [2, 7], fn)
    assert list(rec.columns) == [*RECORD_COLUMNS[:-1], "norm", "value"]


def test_blocks_must_be_rectangular():
    spec = build_spec("dense", 4, widths=(3,))
    with pytest.raises(ValueError, match="unequal"):
        monte_carlo(
            spec,
            [0],
            lambda ids: {"draw": np.zeros(2), "input": np.zeros(1), "quantity": np.zeros(2), "value": np.zeros(2)},
        )


def test_thread_policy_is_applied_and_restored():
    spec = build_spec("dense", 4, widths=(3,))
    before = torch.get_num_threads()
    seen = []

    def fn(ids):
        seen.append(torch.get_num_threads())
        return _fake(ids)

    rt = Runtime(torch.device("cpu"), None, "fp32", max(2, before))
    monte_carlo(spec, [0, 1], fn, rt=rt, work_flops=10.0)
    assert seen == [1, 1]  # small work runs on one thread
    assert torch.get_num_threads() == before


def test_runtime_restores_precision_flags():
    before = torch.backends.cudnn.allow_tf32
    with runtime("cpu", precision="tf32") as rt:
        assert rt.device.type == "cpu"
        assert torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.allow_tf32 == before
