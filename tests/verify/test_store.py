"""The results store: tasks, resume, more draws on demand, overlapping tasks, signals."""

from __future__ import annotations

import os
import signal

import numpy as np
import pandas as pd
import pytest

from graphs.spec import build_spec
from verify.engine import measure
from verify.montecarlo import block_records, monte_carlo, task_draws
from verify.store import MissingDraws, Store, TaskKey, deferred_signals, task_ranges, using_store

SPECS = [build_spec("dense", n, widths=(16,)) for n in (8, 32)]


def test_task_ranges_cut_missing_runs_on_the_grid():
    assert task_ranges(range(10), [], 4) == [(0, 4), (4, 8), (8, 10)]
    # a partial task 8-10 is kept; growing to 16 computes 10-12 then 12-16, never 8-10 again
    assert task_ranges(range(16), [(0, 4), (4, 8), (8, 10)], 4) == [(10, 12), (12, 16)]
    assert task_ranges(range(6), [(0, 4), (4, 8)], 4) == []
    assert task_ranges([1, 2, 7], [(2, 3)], 4) == [(1, 2), (7, 8)]
    assert task_ranges([], [(0, 4)], 4) == []


def test_task_draws_is_a_multiple_of_the_block_and_bounded():
    assert task_draws(1, None) == 64
    assert task_draws(8, 1e15) == 8
    assert task_draws(1, 2e9) == 8
    assert task_draws(64, 1.0) == 1024
    for b, w in [(1, 1e3), (3, 1e8), (5, 1e11)]:
        assert task_draws(b, w) % b == 0


def _counting_block(calls: list[int]):
    def block(ids):
        calls.extend(ids)
        values = np.array([[[float(i), float(i) ** 2]] for i in ids])
        return block_records(ids, ("q",), values)

    return block


def test_more_draws_compute_only_the_new_ones_and_fewer_use_the_first(tmp_path):
    spec = SPECS[0]
    key = TaskKey("test", 0, {"x": 1})
    fresh = monte_carlo(spec, range(20), _counting_block([]))
    calls: list[int] = []
    with using_store(Store(tmp_path, task_draws=4)):
        first = monte_carlo(spec, range(10), _counting_block(calls), key=key)
        assert calls == list(range(10))
        calls.clear()
        grown = monte_carlo(spec, range(20), _counting_block(calls), key=key)
        assert calls == list(range(10, 20))  # only the new draws
        calls.clear()
        fewer = monte_carlo(spec, range(7), _counting_block(calls), key=key)
        assert calls == []
    pd.testing.assert_frame_equal(grown, fresh)
    pd.testing.assert_frame_equal(first, fresh[fresh["draw"] < 10].reset_index(drop=True))
    pd.testing.assert_frame_equal(fewer, fresh[fresh["draw"] < 7].reset_index(drop=True))
    # no draw is stored twice under the final names' reading rule, and a different key is another series
    with using_store(Store(tmp_path, task_draws=4)):
        monte_carlo(spec, range(3), _counting_block(calls), key=TaskKey("test", 1, {"x": 1}))
    assert calls == [0, 1, 2]


def test_overlapping_tasks_give_each_draw_once(tmp_path):
    spec = SPECS[0]
    key = TaskKey("test", 0, {})
    store = Store(tmp_path, task_draws=4)
    series = store.series(spec, key)
    block = _counting_block([])
    # two writers that cut the draws differently: 0-6 and 0-4, 4-8
    for lo, hi in [(0, 6), (0, 4), (4, 8)]:
        cols = block(list(range(lo, hi)))
        series.write(lo, hi, {"arch": np.full(len(cols["draw"]), "dense", dtype=object), **cols})
    got = series.read(range(8))
    assert got["draw"].tolist() == sorted(list(range(8)) * 2)
    assert got["value"].tolist() == [v for i in range(8) for v in (float(i), float(i) ** 2)]
    # rows come back in the order of the ids asked for
    assert series.read([5, 1])["draw"].tolist() == [5, 5, 1, 1]


def test_engine_records_from_the_store_equal_computed_ones(tmp_path):
    direct = measure(SPECS, draws=6, batch=2, seed=3)
    with using_store(Store(tmp_path, task_draws=4)) as store:
        stored = measure(SPECS, draws=6, batch=2, seed=3)
        again = measure(SPECS, draws=6, batch=2, seed=3)
    assert store is not None
    assert store.written_tasks == 4
    assert store.written_draws == 12
    pd.testing.assert_frame_equal(stored, direct)
    pd.testing.assert_frame_equal(again, direct)
    # pandas and pyarrow read the store as it is
    table = pd.read_parquet(tmp_path / "kind=engine")
    assert len(table) == len(direct)
    assert set(table["series"].astype(str)) == {p.name.split("=")[1] for p in (tmp_path / "kind=engine").iterdir()}
    assert len(pd.read_parquet(tmp_path)) == len(direct)


def test_first_order_records_with_null_keys_round_trip(tmp_path):
    from verify.checks.first_order import FirstOrderConfig, measure_first_order

    config = FirstOrderConfig(
        (build_spec("dense", 8, widths=(8,)),), eps_inf=(0.01, 0.1), draws=2, batch=2, pgd_steps=1
    )
    direct = measure_first_order(config)
    with using_store(Store(tmp_path)):
        stored = measure_first_order(config)
    pd.testing.assert_frame_equal(stored, direct)
    assert direct["norm"].isna().any()


def test_a_read_only_store_never_computes(tmp_path):
    key = TaskKey("test", 0, {})
    with using_store(Store(tmp_path, task_draws=4)):
        monte_carlo(SPECS[0], range(4), _counting_block([]), key=key)
    calls: list[int] = []
    with using_store(Store(tmp_path, read_only=True)), pytest.raises(MissingDraws, match="lacks 2 draw"):
        monte_carlo(SPECS[0], range(6), _counting_block(calls), key=key)
    assert calls == []


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    store = Store(tmp_path)
    series = store.series(SPECS[0], TaskKey("test", 0, {}))
    series.path.mkdir(parents=True)
    host = __import__("verify.store", fromlist=["_host_tag"])._host_tag()
    dead = series.path / f".000000000-000000004.parquet.{host}.999999999.abc.tmp"
    alive = series.path / f".000000000-000000004.parquet.{host}.{os.getpid()}.abc.tmp"
    other = series.path / ".000000000-000000004.parquet.otherhost.1.abc.tmp"
    for p in (dead, alive, other):
        p.write_bytes(b"partial")
    cols = _counting_block([])([0, 1])
    series.write(0, 2, cols)
    assert not dead.exists()
    assert alive.exists()
    assert other.exists()
    assert [t[:2] for t in series.tasks()] == [(0, 2)]


class _Stop(Exception):
    pass


def _raise(signum, frame):
    raise _Stop()


def _signal_inside_section(reached: list) -> None:
    with deferred_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        reached.append(True)


def test_a_signal_during_a_write_waits_for_the_rename(tmp_path):
    from verify.report.writer import write_files

    class Killing(str):
        def encode(self, *args, **kwargs):  # the signal arrives mid-write
            os.kill(os.getpid(), signal.SIGTERM)
            return str(self).encode(*args, **kwargs)

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        (tmp_path / "r.md").write_text("old")
        (tmp_path / "r.png").write_bytes(b"old")
        with pytest.raises(_Stop):
            write_files(tmp_path, {"r.md": Killing("new"), "r.png": b"new"})
        # both files replaced together, no temporary file left
        assert (tmp_path / "r.md").read_text() == "new"
        assert (tmp_path / "r.png").read_bytes() == b"new"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["r.md", "r.png"]
        reached = []
        with pytest.raises(_Stop):
            _signal_inside_section(reached)
        assert reached == [True]  # the section ran to its end before the signal was handled
    finally:
        signal.signal(signal.SIGTERM, previous)
