"""``verify query "SQL"``: SQL over a results store's Parquet files (DuckDB), printed as a table."""

from __future__ import annotations

import argparse

HELP = "SQL over a results store (DuckDB), printed as a table"

EPILOG = """\
examples:
  verify query "SELECT kind, arch, dim, count(DISTINCT draw) AS draws FROM records GROUP BY ALL ORDER BY ALL"
  verify query "SELECT dim, avg(value) AS mean FROM engine WHERE quantity = 'vuln_l2' GROUP BY dim ORDER BY dim"
  verify query "SELECT s.options, e.dim, avg(e.value) FROM engine e JOIN series s USING (series)
                WHERE e.quantity = 'logit_grad_l2' GROUP BY ALL ORDER BY ALL" --store reports/sweep/store
  verify query "SELECT * FROM tasks LIMIT 5" --format csv

Tables: records (every kind, columns joined by name), one per kind: engine (scaling,
pooling, Lemma 9's Monte Carlo), first_order, lemma9_weights; each with the record columns
arch, dim, d, draw, input, quantity[, key columns], value and the store's kind and series.
series: one row per series (kind, arch, dim, d, seed, fingerprint, options and params as
JSON). tasks: one row per stored task (kind, series, lo, hi, rows, path). From Python,
pandas.read_parquet("STORE/kind=engine") reads one kind as a DataFrame.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "query",
        help=HELP,
        description="Run one SQL statement (DuckDB) over the Parquet files of a results store and print the result.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sql", metavar="SQL", help="one SQL statement (DuckDB dialect)")
    parser.add_argument("--store", default="reports/store", metavar="DIR", help="the store (default reports/store)")
    parser.add_argument(
        "--format", default="table", choices=("table", "csv", "json"), help="output format (default table)"
    )
    parser.add_argument("--max-rows", type=int, default=200, metavar="N", help="rows printed as a table (default 200)")
    parser.set_defaults(func=run)
    return parser


def connect(root):
    """A DuckDB connection with the store's views (module docstring of ``verify.cli.query``)."""
    import json

    import duckdb
    import pandas as pd
    import pyarrow.parquet as pq

    from verify.store import Store

    store = Store(root)
    con = duckdb.connect()
    kinds = sorted({p.parent.parent.name.split("=", 1)[1] for p in store.task_files()})
    base = str(store.root).replace("'", "''")

    def scan(kind: str) -> str:
        return f"read_parquet('{base}/kind={kind}/series=*/*.parquet', hive_partitioning = true, union_by_name = true)"

    for kind in kinds:
        con.execute(f'CREATE VIEW "{kind.replace("-", "_")}" AS SELECT * FROM {scan(kind)}')
    if kinds:
        con.execute(
            f"CREATE VIEW records AS SELECT * FROM read_parquet('{base}/kind=*/series=*/*.parquet', "
            "hive_partitioning = true, union_by_name = true)"
        )
    series = pd.DataFrame(
        [
            {
                "series": d["series"],
                "kind": d["kind"],
                "arch": d["arch"],
                "dim": d["dim"],
                "d": d["d"],
                "seed": d["seed"],
                "fingerprint": d["fingerprint"],
                "options": json.dumps(d["options"], sort_keys=True),
                "params": json.dumps(d["params"], sort_keys=True),
            }
            for d in store.series_descriptions()
        ],
        columns=["series", "kind", "arch", "dim", "d", "seed", "fingerprint", "options", "params"],
    )
    tasks = pd.DataFrame(
        [
            {
                "kind": p.parent.parent.name.split("=", 1)[1],
                "series": p.parent.name.split("=", 1)[1],
                "lo": int(p.stem.split("-")[0]),
                "hi": int(p.stem.split("-")[1]),
                "rows": pq.ParquetFile(p).metadata.num_rows,
                "path": str(p),
            }
            for p in store.task_files()
        ],
        columns=["kind", "series", "lo", "hi", "rows", "path"],
    )
    con.register("series", series)
    con.register("tasks", tasks)
    return con


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from graphs.errors import InputError

    root = Path(args.store)
    if not root.is_dir():
        raise InputError(f"--store {args.store!r}: no such folder; give a store a command recorded into")
    if args.max_rows < 1:
        raise InputError(f"--max-rows: {args.max_rows} is too small; give an integer >= 1")
    import duckdb

    con = connect(root)
    try:
        frame = con.execute(args.sql).df()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"query: {first}; the tables are records, engine, first_order, lemma9_weights, series, tasks"
        ) from None
    if args.format == "csv":
        print(frame.to_csv(index=False), end="")
    elif args.format == "json":
        print(frame.to_json(orient="records"))
    elif frame.empty:
        print("(no rows)")
    else:
        import pandas as pd

        with pd.option_context("display.width", 200, "display.max_columns", 50, "display.max_colwidth", 60):
            print(frame.head(args.max_rows).to_string(index=False))
        if len(frame) > args.max_rows:
            print(f"... {len(frame) - args.max_rows} more row(s) (--max-rows, or --format csv for all)")
    return 0
