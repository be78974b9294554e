"""How fast is a mixmesh ``@udf`` on DuckDB, next to DuckDB's own Python UDFs and plain SQL?

One process, one in-memory DuckDB, one table of DOUBLE rows; every variant runs
``SELECT sum(<expr>) FROM t``:

  native SQL        x * 2 written in SQL
  duckdb row UDF    DuckDB's own Python UDF (one call per row) running ``row_fn``
  duckdb arrow UDF  DuckDB's own Arrow UDF (one call per vector) running ``times_two``
  mixmesh row       ``@udf`` on ``row_fn``, bound with ``mixmesh.engines.duckdb.register``
  mixmesh vectorized ``@udf(vectorized=True)`` on ``times_two``, bound the same way

It checks that the variants computing the same function agree, prints the median time of
the repeats, rows/s and the ratios the acceptance bar is about (mixmesh at most 20% slower
than the matching DuckDB UDF), and writes the same table to
``benchmarks/results/udf_throughput.json``. Timings are reported, never asserted.

Run from the repository root::

    .venv/bin/python benchmarks/udf_throughput.py            # 10,000,000 rows, 3 repeats
    .venv/bin/python benchmarks/udf_throughput.py --rows 1000000 --repeat 5
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import resource
import statistics
import sys
import time
import typing as t
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import udf
from mixmesh.engines.duckdb import register

import reporting

BAR = 1.20  # mixmesh may take at most 20% longer than the matching DuckDB UDF
REL_TOL = 1e-9


# --- the functions under test ------------------------------------------------------------


def row_fn(x: float) -> float:
    """A scalar function with branches: what row mode is for."""
    return x * 2 if x > 10 else (-x if x < -10 else x + 1.0)


def times_two(x: pa.Array) -> pa.Array:
    """The vectorized function: one pyarrow compute call per batch."""
    return pc.multiply(x, 2.0)


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    expr: str  # what goes inside sum(...)
    family: str  # variants of one family compute the same function and must agree


VARIANTS = (
    Variant("native SQL", "x * 2", "times_two"),
    Variant("duckdb row UDF", "duckdb_row(x)", "row_fn"),
    Variant("duckdb arrow UDF", "duckdb_arrow(x)", "times_two"),
    Variant("mixmesh row", "mixmesh_row(x)", "row_fn"),
    Variant("mixmesh vectorized", "mixmesh_vec(x)", "times_two"),
)

# (mixmesh variant, the DuckDB UDF it is measured against)
PAIRS = (("mixmesh row", "duckdb row UDF"), ("mixmesh vectorized", "duckdb arrow UDF"))


# --- setup -------------------------------------------------------------------------------


def connect(rows: int) -> duckdb.DuckDBPyConnection:
    """An in-memory database holding ``t(x DOUBLE)`` and every function bound."""
    con = duckdb.connect(":memory:")
    con.execute(f"CREATE TABLE t AS SELECT random() * 100 - 50 AS x FROM range({rows})")
    con.create_function("duckdb_row", row_fn, ["DOUBLE"], "DOUBLE")
    con.create_function("duckdb_arrow", times_two, ["DOUBLE"], "DOUBLE", type="arrow")
    register(con, udf(name="mixmesh_row")(row_fn))
    register(con, udf(name="mixmesh_vec", vectorized=True)(times_two))
    return con


# --- measuring ---------------------------------------------------------------------------


def run_once(con: duckdb.DuckDBPyConnection, variant: Variant) -> t.Tuple[float, float]:
    """Seconds the query took, and its result."""
    start = time.perf_counter()
    (total,) = con.execute(f"SELECT sum({variant.expr}) FROM t").fetchone()
    return time.perf_counter() - start, total


def measure(con: duckdb.DuckDBPyConnection, repeat: int, warmup: int) -> t.Dict[str, t.Dict[str, t.Any]]:
    """Run every variant ``repeat`` times, round-robin so that machine drift hits all alike.

    ``warmup`` rounds run first and are not counted (first calls pay one-off costs).
    """
    for _ in range(warmup):
        for variant in VARIANTS:
            run_once(con, variant)
    times: t.Dict[str, t.List[float]] = {v.name: [] for v in VARIANTS}
    sums: t.Dict[str, t.List[float]] = {v.name: [] for v in VARIANTS}
    for round_ in range(1, repeat + 1):
        for variant in VARIANTS:
            seconds, total = run_once(con, variant)
            times[variant.name].append(seconds)
            sums[variant.name].append(total)
            print(f"  round {round_}/{repeat}  {variant.name:<20} {seconds:8.3f} s", flush=True)
    return {v.name: {"times": times[v.name], "sums": sums[v.name]} for v in VARIANTS}


def check_agreement(runs: t.Mapping[str, t.Mapping[str, t.Any]]) -> None:
    """Variants of one family give the same sum (within REL_TOL) in every repeat, or exit."""
    for family in sorted({v.family for v in VARIANTS}):
        members = [v.name for v in VARIANTS if v.family == family]
        reference = runs[members[0]]["sums"][0]
        for name in members:
            for total in runs[name]["sums"]:
                # abs_tol only guards against a reference sum that happens to be ~0.
                if not math.isclose(total, reference, rel_tol=REL_TOL, abs_tol=1e-6):
                    sys.exit(
                        f"RESULTS DISAGREE for {family}: {name} gave {total!r}, "
                        f"{members[0]} gave {reference!r}"
                    )


# --- reporting ---------------------------------------------------------------------------


def summarize(runs: t.Mapping[str, t.Mapping[str, t.Any]], rows: int) -> t.Dict[str, t.Any]:
    medians = {name: statistics.median(run["times"]) for name, run in runs.items()}
    native = medians["native SQL"]
    variants = [
        {
            "variant": v.name,
            "expr": f"sum({v.expr})",
            "seconds_median": medians[v.name],
            "seconds_all": runs[v.name]["times"],
            "rows_per_second": rows / medians[v.name],
            "vs_native_sql": medians[v.name] / native,
            "result": runs[v.name]["sums"][0],
        }
        for v in VARIANTS
    ]
    bars = [
        {
            "mixmesh": ours,
            "duckdb": theirs,
            "ratio": medians[ours] / medians[theirs],
            "bar": BAR,
            "met": medians[ours] / medians[theirs] <= BAR,
        }
        for ours, theirs in PAIRS
    ]
    return {"variants": variants, "bars": bars}


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def machine_info(con: duckdb.DuckDBPyConnection) -> t.Dict[str, t.Any]:
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    return {**reporting.machine_info("duckdb", "pyarrow", "mixmesh"), "duckdb_threads": threads}


def print_table(summary: t.Mapping[str, t.Any], rows: int, repeat: int, rss_mb: float) -> None:
    print(f"\nsum(<expr>) over {rows:,} DOUBLE rows, median of {repeat}")
    header = f"{'variant':<20} {'expr':<22} {'seconds':>9} {'rows/s':>14} {'vs native SQL':>14}"
    print(header)
    print("-" * len(header))
    for v in summary["variants"]:
        print(
            f"{v['variant']:<20} {v['expr']:<22} {v['seconds_median']:>9.3f} "
            f"{v['rows_per_second']:>14,.0f} {v['vs_native_sql']:>13.1f}x"
        )
    print()
    for bar in summary["bars"]:
        verdict = "MET" if bar["met"] else "NOT MET"
        print(
            f"{bar['mixmesh']} / {bar['duckdb']}: {bar['ratio']:.3f}x "
            f"(bar <= {bar['bar']:.2f}x) -> {verdict}"
        )
    print(f"\npeak RSS: {rss_mb:,.0f} MB")


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows in the table (default 10,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the median is reported (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds before measuring (default 1)")
    parser.add_argument("--out", type=Path, help="where to write the JSON (default benchmarks/results/udf_throughput.json)")
    return parser.parse_args(argv)


def main(argv: t.Optional[t.Sequence[str]] = None) -> None:
    args = parse_args(argv)
    print(f"building a table of {args.rows:,} rows and binding the functions ...", flush=True)
    con = connect(args.rows)
    runs = measure(con, args.repeat, args.warmup)
    check_agreement(runs)
    print("results agree: row variants with each other; vectorized ones with each other and native SQL")
    summary = summarize(runs, args.rows)
    rss_mb = peak_rss_mb()
    print_table(summary, args.rows, args.repeat, rss_mb)
    reporting.write_json(
        {
            "question": "throughput of mixmesh @udf on DuckDB vs DuckDB's own Python UDFs and native SQL",
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "rows": args.rows,
            "repeat": args.repeat,
            "warmup_rounds": args.warmup,
            "query": "SELECT sum(<expr>) FROM t",
            "machine": machine_info(con),
            "peak_rss_mb": round(rss_mb, 1),
            **summary,
        },
        "udf_throughput",
        args.out,
    )


if __name__ == "__main__":
    main()
