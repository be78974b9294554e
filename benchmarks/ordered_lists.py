"""Where does building ``ARRAY_AGG(x ORDER BY k)`` by sorting each list beat DuckDB's ordered aggregate?

The fast path rewrites an ordered list aggregate into an unordered one whose lists are then
sorted one by one (``mixmesh.engines.duckdb.ordered_lists``). That wins with many small
groups (DuckDB's ordered aggregate pays per group) and loses with a few large ones (a list
sorts on one thread). This times both, side by side, over the same rows in groups of
different sizes, and says whether the rewrite's rule (DuckDB's estimated rows per group at
most ``MAX_GROUP_ROWS``) would apply:

  written   ``ARRAY_AGG({'a': amount, 'c': category} ORDER BY k, amount)``, grouped
  sorted    the same, as ``ordered_lists.rewrite`` writes it

The groups are a column of the table (``g``), so DuckDB estimates them from its statistics as
it does for the example's customer-days. Each statement is a CREATE TABLE AS of the lists; the
lists are checked equal (ties broken the same way: the keys are unique). It prints the median
seconds of the repeats and the ratio written / sorted (above 1: the rewrite is faster), and
writes the same to ``benchmarks/results/ordered_lists.json``. Timings are reported, never
asserted.

Run from the repository root::

    .venv/bin/python benchmarks/ordered_lists.py              # 2,000,000 rows, 3 repeats
    .venv/bin/python benchmarks/ordered_lists.py --rows 100000 --repeat 1
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
import typing as t

import duckdb
import sqlglot

import reporting
from mixmesh.engines.duckdb import ordered_lists

ROWS_PER_GROUP = (2, 20, 200, 500, 2_000, 20_000, None)  # None: one group of every row
WRITTEN = (
    "CREATE OR REPLACE TABLE lists AS SELECT g, ARRAY_AGG({{'a': amount, 'c': category}} ORDER BY k, amount) AS l "
    "FROM t{size} GROUP BY g"
)


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows (default 2,000,000)")
    reporting.add_measuring_arguments(parser, "ordered_lists", repeat=3)
    return parser.parse_args(argv)


def tables(connection: duckdb.DuckDBPyConnection, rows: int) -> None:
    """One table per group size, ``t<size>`` (``t0``: one group), with unique keys ``k``."""
    for size in ROWS_PER_GROUP:
        group = f"i // {size}" if size else "0"
        connection.execute(
            f"CREATE TABLE t{size or 0} AS SELECT {group} AS g, hash(i) AS k, (i % 97)::DOUBLE AS amount, "
            f"'m' || (i % 7) AS category FROM range({rows}) r(i)"
        )


def timed(connection: duckdb.DuckDBPyConnection, sql: str, repeat: int, warmup: int) -> t.Tuple[float, str]:
    """The median seconds of ``sql`` and a digest of the lists it made."""
    times = []
    for round_ in range(warmup + repeat):
        start = time.perf_counter()
        connection.execute(sql)
        if round_ >= warmup:
            times.append(time.perf_counter() - start)
    (digest,) = connection.execute("SELECT md5(string_agg(l::VARCHAR, '|' ORDER BY g)) FROM lists").fetchone()
    return statistics.median(times), digest


def measure(args: argparse.Namespace) -> t.List[t.Dict[str, t.Any]]:
    connection = duckdb.connect()
    tables(connection, args.rows)
    results = []
    for size in ROWS_PER_GROUP:
        written = WRITTEN.format(size=size or 0)
        statement = sqlglot.parse_one(written, read="duckdb")
        sorted_sql = ordered_lists.rewrite(statement)[0].sql("duckdb")
        applies = ordered_lists.sort_each_list(connection, statement)[1] == 1
        written_s, written_lists = timed(connection, written, args.repeat, args.warmup)
        sorted_s, sorted_lists = timed(connection, sorted_sql, args.repeat, args.warmup)
        if written_lists != sorted_lists:
            raise SystemExit(f"RESULTS DISAGREE for groups of {size or args.rows} rows")
        results.append({
            "rows_per_group": size or args.rows, "groups": -(-args.rows // size) if size else 1,
            "written_s": written_s, "sorted_s": sorted_s, "written_over_sorted": written_s / sorted_s,
            "rule_sorts": applies,
        })
        print(f"  {size or args.rows:>12,} rows a group: written {written_s:7.3f} s, sorted {sorted_s:7.3f} s", flush=True)
    return results


def main(argv: t.Optional[t.Sequence[str]] = None) -> None:
    args = parse_args(argv)
    results = measure(args)
    print(f"\n{args.rows:,} rows; median of {args.repeat}; written / sorted above 1: sorting each list is faster")
    print(f"{'rows a group':>12} {'groups':>10} {'written s':>10} {'sorted s':>9} {'ratio':>7}  rule")
    for row in results:
        rule = "sorts" if row["rule_sorts"] else "keeps as written"
        print(f"{row['rows_per_group']:>12,} {row['groups']:>10,} {row['written_s']:>10.3f} {row['sorted_s']:>9.3f} "
              f"{row['written_over_sorted']:>6.2f}x  {rule}")
    print("results agree: every group size gives the same lists both ways")
    reporting.write_json(
        {
            "question": "ARRAY_AGG(x ORDER BY k): DuckDB's ordered aggregate vs sorting each list, by group size",
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "rows": args.rows,
            "repeat": args.repeat,
            "max_group_rows": ordered_lists.MAX_GROUP_ROWS,
            "machine": reporting.machine_info("duckdb", "sqlglot", "mixmesh"),
            "results": results,
        },
        "ordered_lists",
        args.out,
    )


if __name__ == "__main__":
    main()
