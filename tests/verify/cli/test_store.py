"""Durable runs: kill -9 and resume, SIGTERM, more draws on demand, verify report and verify query."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from verify.cli import main

ROOT = Path(__file__).resolve().parents[3]
# Several small tasks, each a fraction of a second: a kill lands between or inside tasks.
DENSE = [
    *("scaling", "--arch", "dense", "--dims", "16,32,64", "--widths", "16", "--batch", "2", "--n-boot", "200"),
    *("--quantities", "loss_grad_l2,vuln_l2"),  # two panels: the figure is most of a small run's time
]
# The keys of the JSON that may differ between an interrupted-and-resumed run and an
# uninterrupted one: the wall time, and the command line (which names another store and
# output folder). Everything else, every number included, must be bit-identical.
VOLATILE = ("wall_seconds", "command_line")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "verify", *args]


def _stable(out: dict) -> dict:
    out = json.loads(json.dumps(out))
    for k in VOLATILE:
        out["run"].pop(k)
    return out


def _tasks(store: Path) -> list[Path]:
    return sorted(store.glob("kind=*/series=*/*.parquet"))


def _temporaries(*folders: Path) -> list[Path]:
    return [p for f in folders if f.exists() for p in f.rglob("*.tmp")]


def _start_and_wait(args: list[str], store: Path, n_tasks: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        _cmd(*args), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while len(_tasks(store)) < n_tasks:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it was killed: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no task was stored within 120 s")
        time.sleep(0.02)
    return proc


def test_kill_9_then_resume_gives_the_uninterrupted_json(tmp_path, capsys):
    args = [*DENSE, "--draws", "24", "--task-draws", "2", "--json"]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = _start_and_wait([*args, "--out-dir", str(killed)], killed / "store", 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(_tasks(killed / "store"))
    assert 3 <= done_before < 36
    assert not (killed / "scaling-dense.md").exists()
    resumed = subprocess.run(
        _cmd(*args, "--out-dir", str(killed)), cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    # the uninterrupted run, in process (one torch thread, as OMP_NUM_THREADS=1 gives the subprocesses)
    capsys.readouterr()
    assert main([*args, "--out-dir", str(clean)]) == 0
    assert _stable(json.loads(resumed.stdout)) == _stable(json.loads(capsys.readouterr().out))
    # no draw lost or counted twice: each draw of each size is in the store exactly once
    records = pd.read_parquet(killed / "store" / "kind=engine")
    counts = records.groupby(["dim", "draw", "quantity", "input"]).size()
    assert counts.eq(1).all()
    assert len(counts) == 3 * 24 * 7 * 2
    # readers and the next writer ignore what kill -9 may have left half-written
    assert all(p.name.startswith(".") for p in _temporaries(killed))


def test_sigterm_drops_the_task_in_flight_and_leaves_no_temporary(tmp_path):
    args = [*DENSE, "--draws", "40", "--task-draws", "1", "--out-dir", str(tmp_path)]
    proc = _start_and_wait(args, tmp_path / "store", 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "SIGTERM" in lines[0]
    assert "rerun the same command to resume" in lines[0]
    assert _temporaries(tmp_path) == []
    assert not (tmp_path / "scaling-dense.md").exists()
    # the store is consistent: every task file is whole and holds exactly its draws
    for p in _tasks(tmp_path / "store"):
        lo, hi = (int(x) for x in p.stem.split("-"))
        assert sorted(set(pd.read_parquet(p)["draw"])) == list(range(lo, hi))


def test_more_draws_compute_only_the_new_ones(tmp_path, capsys):
    assert main([*DENSE, "--draws", "6", "--task-draws", "4", "--out-dir", str(tmp_path / "a")]) == 0
    assert "6 task(s) computed, 18 draw(s); 0 draw(s) reused" in capsys.readouterr().out
    assert main([*DENSE, "--draws", "10", "--task-draws", "4", "--out-dir", str(tmp_path / "a"), "--json"]) == 0
    grown = json.loads(capsys.readouterr().out)
    # 6 then 10 draws with tasks of 4: 0-4, 4-6, then only 6-8 and 8-10 per size
    spans = sorted({p.stem for p in _tasks(tmp_path / "a" / "store")})
    assert spans == ["000000000-000000004", "000000004-000000006", "000000006-000000008", "000000008-000000010"]
    assert len(_tasks(tmp_path / "a" / "store")) == 3 * 4
    assert main([*DENSE, "--draws", "10", "--out-dir", str(tmp_path / "b"), "--json"]) == 0
    fresh = json.loads(capsys.readouterr().out)
    assert _stable(grown)["quantities"] == _stable(fresh)["quantities"]
    # a report says beside its wall time how much of the Monte Carlo it did not recompute
    (grown_line,) = [x for x in (tmp_path / "a" / "scaling-dense.md").read_text().splitlines() if "wall time" in x]
    assert grown_line.endswith("s (18 draws read from the results store, 12 computed in this run)")
    (fresh_line,) = [x for x in (tmp_path / "b" / "scaling-dense.md").read_text().splitlines() if "wall time" in x]
    assert fresh_line.endswith(" s")


def test_report_rerenders_from_the_store_and_query_reads_it(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*DENSE, "--draws", "6", "--out-dir", str(out)]) == 0
    original = (out / "scaling-dense.md").read_text()
    assert main([*DENSE, "--draws", "6", "--out-dir", str(out)]) == 0
    assert "0 task(s) computed, 0 draw(s); 18 draw(s) reused" in capsys.readouterr().out
    assert main(["report", "--store", str(out / "store"), "--out-dir", str(tmp_path / "again")]) == 0
    again = (tmp_path / "again" / "scaling-dense.md").read_text()

    def strip(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if not ln.startswith("- wall time")]

    assert strip(again) == strip(original)
    assert (tmp_path / "again" / "scaling-dense.png").stat().st_size > 0
    # every inconclusive verdict names the exact command that would settle it
    if "inconclusive" in original:
        assert "To settle the inconclusive verdicts, rerun with more draws: `verify scaling" in original
    capsys.readouterr()
    assert main(["report", "--store", str(out / "store"), "--arch", "strided-cnn"]) == 2
    assert "no recorded report of --arch strided-cnn" in capsys.readouterr().err

    sql = "SELECT dim, count(DISTINCT draw) AS draws FROM engine GROUP BY dim ORDER BY dim"
    assert main(["query", sql, "--store", str(out / "store")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["dim", "draws"]
    assert [ln.split() for ln in lines[1:]] == [["16", "6"], ["32", "6"], ["64", "6"]]
    assert main(["query", "SELECT arch, seed FROM series", "--store", str(out / "store"), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["dense,0"] * 3
    assert main(["query", "SELECT nope FROM engine", "--store", str(out / "store")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("verify: error: query:")


def test_report_names_the_command_when_draws_are_missing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*DENSE, "--draws", "4", "--out-dir", str(out)]) == 0
    for p in _tasks(out / "store")[:1]:
        p.unlink()
    capsys.readouterr()
    assert main(["report", "--store", str(out / "store")]) == 2
    err = capsys.readouterr().err
    assert "lacks" in err
    assert "rerun `verify scaling" in err


def test_store_flags_bad_input(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([*DENSE, "--draws", "4", "--out-dir", str(tmp_path / "o"), "--store", str(blocker)]) == 2
    assert main([*DENSE, "--draws", "4", "--out-dir", str(tmp_path / "o"), "--task-draws", "0"]) == 2
    assert main([*DENSE, "--draws", "4", "--out-dir", str(tmp_path / "o"), "--no-store", "--store", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert all(line.startswith("verify: error:") for line in err)
    assert not (tmp_path / "o").exists()
    assert main(["query", "SELECT 1", "--store", str(tmp_path / "none")]) == 2
