"""How fast is a mixmesh ``@udf`` on DuckDB, next to DuckDB's own Python UDFs and plain SQL?

One process, one in-memory DuckDB, one table of DOUBLE rows; every variant runs
``SELECT sum(<expr>) FROM t``. DuckDB's own UDFs run on the connection; mixmesh's run
through SQLMesh's DuckDB engine adapter, as in a model, so the fast path applies (the
query below the call streams out in 1M-row Arrow batches, the function runs per batch):

  native SQL                 x * 2 written in SQL
  duckdb native UDF          DuckDB's own Python UDF, one call per row, on ``times_two_row``
  duckdb arrow UDF           DuckDB's own Arrow UDF, one call per 2048-row vector, on ``times_two``
  mixmesh vectorized         ``@udf(vectorized=True)`` on ``times_two``
  mixmesh vectorized, plain  the same with the fast path off (DuckDB's Arrow UDF underneath)
  duckdb row UDF             DuckDB's own Python UDF on ``row_fn``, a scalar function with branches
  mixmesh row                ``@udf`` on ``row_fn``: parallel="auto", the default, which runs
                             its batches in worker processes (it holds no process state)
  mixmesh row, threads       ``@udf(parallel="threads")`` on ``row_fn``: batches on threads
                             (the fast path forced on: alone, the rule runs it plainly)
  mixmesh row, processes     ``@udf(parallel="processes")`` on ``row_fn``: one worker per core
  heavy, 1 thread / N threads  a vectorized numpy function that releases the GIL, with the
                             fast path computing on 1 thread, then on as many as DuckDB runs

It checks that the variants computing the same function agree, prints the median time of
the repeats, rows/s, the cores kept busy (CPU time over wall time, worker processes
included), the most memory the query added to the process (worker processes not counted)
and the ratios the acceptance bars are about, and writes the same table to
``benchmarks/results/udf_throughput.json``. Timings are reported, never asserted.

Run from the repository root::

    .venv/bin/python benchmarks/udf_throughput.py            # 10,000,000 rows, 3 repeats
    .venv/bin/python benchmarks/udf_throughput.py --rows 1000000 --repeat 5
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import os
import statistics
import sys
import typing as t

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import engines, udf
from mixmesh import fastpath
import mixmesh.sqlmesh as sqlmesh_integration
from mixmesh.core.names import binding_name

import reporting

REL_TOL = 1e-9


# --- the functions under test ------------------------------------------------------------


def row_fn(x: float) -> float:
    """A scalar function with branches: what row mode is for."""
    return x * 2 if x > 10 else (-x if x < -10 else x + 1.0)


def times_two_row(x: float) -> float:
    return x * 2


def times_two(x: pa.Array) -> pa.Array:
    """The vectorized function: one pyarrow compute call per batch."""
    return pc.multiply(x, 2.0)


def heavy(x: pa.Array) -> pa.Array:
    """A vectorized function with real work in numpy (which releases the GIL)."""
    values = x.to_numpy()
    for _ in range(8):
        values = np.sqrt(np.abs(np.sin(values) * 100.0) + 1.0)
    return pa.array(values)


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    expr: str  # what goes inside sum(...); mixmesh functions by their SQL name
    family: str  # variants of one family compute the same function and must agree
    through_sqlmesh: bool = False  # run through SQLMesh's engine adapter (mixmesh's path)
    env: t.Tuple[t.Tuple[str, str], ...] = ()


VARIANTS = (
    Variant("native SQL", "x * 2", "times_two"),
    Variant("duckdb native UDF", "duckdb_times_two_row(x)", "times_two"),
    Variant("duckdb arrow UDF", "duckdb_arrow(x)", "times_two"),
    Variant("mixmesh vectorized", "mixmesh_vec(x)", "times_two", True),
    Variant("mixmesh vectorized, plain", "mixmesh_vec(x)", "times_two", True, (("MIXMESH_FAST_PATH", "off"),)),
    Variant("duckdb row UDF", "duckdb_row(x)", "row_fn"),
    Variant("mixmesh row", "mixmesh_row(x)", "row_fn", True),
    # Forced onto the fast path, as the threads default was: the rule sends it to the plain binding.
    Variant("mixmesh row, threads", "mixmesh_row_threads(x)", "row_fn", True, (("MIXMESH_FAST_PATH", "on"),)),
    Variant("mixmesh row, processes", "mixmesh_row_processes(x)", "row_fn", True),
    Variant("heavy, 1 thread", "mixmesh_heavy(x)", "heavy", True, (("MIXMESH_FAST_PATH_THREADS", "1"),)),
    Variant("heavy, N threads", "mixmesh_heavy(x)", "heavy", True),
)

# The bars: (variant, compared with, at least this many times faster / at most this many times slower)
BARS = (
    ("mixmesh vectorized", "duckdb arrow UDF", "faster", 8.0),
    ("mixmesh vectorized", "duckdb native UDF", "faster", 3.0),
    ("mixmesh vectorized", "native SQL", "slower", 25.0),
    ("mixmesh row", "duckdb row UDF", "faster", 1.6),  # the default, parallel="auto"
    ("mixmesh row, processes", "duckdb row UDF", "faster", 1.5),
    ("heavy, N threads", "heavy, 1 thread", "faster", 1.0),
)


# --- setup -------------------------------------------------------------------------------


class Bench:
    """An in-memory database holding ``t(x DOUBLE)``, DuckDB's UDFs on it, and a SQLMesh
    engine adapter on the same connection with the mixmesh functions bound."""

    def __init__(self, rows: int) -> None:
        from sqlmesh.core.engine_adapter import DuckDBEngineAdapter

        sqlmesh_integration.install()
        self.connection = duckdb.connect(":memory:")
        self.connection.execute(f"CREATE TABLE t AS SELECT random() * 100 - 50 AS x FROM range({rows})")
        self.connection.create_function("duckdb_row", row_fn, ["DOUBLE"], "DOUBLE")
        self.connection.create_function("duckdb_times_two_row", times_two_row, ["DOUBLE"], "DOUBLE")
        self.connection.create_function("duckdb_arrow", times_two, ["DOUBLE"], "DOUBLE", type="arrow")
        self.adapter = DuckDBEngineAdapter(lambda: self.connection)
        self.placements: t.Dict[str, str] = {}  # variant -> where the fast path ran its batches
        self.names = {
            name: self._bind(function)
            for name, function in {
                "mixmesh_vec": udf(name="mixmesh_vec", vectorized=True)(times_two),
                "mixmesh_row": udf(name="mixmesh_row")(row_fn),
                "mixmesh_row_threads": udf(name="mixmesh_row_threads", parallel="threads")(row_fn),
                "mixmesh_row_processes": udf(name="mixmesh_row_processes", parallel="processes")(row_fn),
                "mixmesh_heavy": udf(name="mixmesh_heavy", vectorized=True)(heavy),
            }.items()
        }

    def _bind(self, function: t.Any) -> str:
        name = binding_name(function.spec, "benchmark")
        engines.register_call(function.spec, "benchmark", name)
        return name

    def sql(self, variant: Variant) -> str:
        name, _, arguments = variant.expr.partition("(")
        expr = f"CAST({self.names[name]}({arguments} AS DOUBLE)" if name in self.names else variant.expr
        return f"SELECT sum({expr}) FROM t"

    def run(self, variant: Variant) -> float:
        sql = self.sql(variant)
        if not variant.through_sqlmesh:
            return self.connection.execute(sql).fetchone()[0]
        with _environment(dict(variant.env)):
            (total,) = self.adapter.fetchone(sql)
        if fastpath.decisions and variant.env != (("MIXMESH_FAST_PATH", "off"),):
            decision = fastpath.decisions[-1]
            if not decision.staged:
                sys.exit(f"{variant.name}: the fast path was not taken: {decision.reason}")
            self.placements[variant.name] = "; ".join(where for _, where in decision.parallel)
        return total


@contextlib.contextmanager
def _environment(values: t.Mapping[str, str]) -> t.Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
            "cores_busy": statistics.median(runs[v.name]["cores"]),
            "memory_added_mb": max(runs[v.name]["memory"]),
            "vs_native_sql": medians[v.name] / native,
            "result": runs[v.name]["sums"][0],
        }
        for v in VARIANTS
    ]
    bars = []
    for ours, theirs, direction, bar in BARS:
        speedup = medians[theirs] / medians[ours]  # > 1: ours is faster
        met = speedup >= bar if direction == "faster" else 1 / speedup <= bar
        bars.append({"variant": ours, "compared_with": theirs, "speedup": speedup, "bar": f"{direction} {bar:g}x", "met": met})
    return {"variants": variants, "bars": bars}


def machine_info(con: duckdb.DuckDBPyConnection) -> t.Dict[str, t.Any]:
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]  # the fast path's too
    return {**reporting.machine_info("duckdb", "pyarrow", "mixmesh"), "duckdb_threads": threads}


# mixmesh's vectorized variant takes about 0.1 s: three runs of it were 0.07 to 0.125 s.
ROUND_AT_LEAST_S = 0.5


def print_table(summary: t.Mapping[str, t.Any], rows: int, repeat: int, rss_mb: float) -> None:
    print(f"\nsum(<expr>) over {rows:,} DOUBLE rows, median of {repeat} rounds (a variant quicker than "
          f"{ROUND_AT_LEAST_S} s runs again within a round, until its runs took that long)")
    header = f"{'variant':<26} {'seconds':>9} {'rows/s':>14} {'cores busy':>11} {'MB added':>9} {'vs native SQL':>14}"
    print(header)
    print("-" * len(header))
    for v in summary["variants"]:
        print(
            f"{v['variant']:<26} {v['seconds_median']:>9.3f} {v['rows_per_second']:>14,.0f} "
            f"{v['cores_busy']:>11.2f} {v['memory_added_mb']:>9.0f} {v['vs_native_sql']:>13.1f}x"
        )
    print()
    for bar in summary["bars"]:
        verdict = "MET" if bar["met"] else "NOT MET"
        ratio = f"{bar['speedup']:.2f}x as fast" if bar["speedup"] >= 1 else f"{1 / bar['speedup']:.2f}x as slow"
        print(f"{bar['variant']} vs {bar['compared_with']}: {ratio} (bar: {bar['bar']}) -> {verdict}")
    print(f"\npeak RSS: {rss_mb:,.0f} MB")


def print_placements(placements: t.Mapping[str, str]) -> None:
    print("\nwhere the fast path ran the batches (the last run of each variant):")
    for variant, where in placements.items():
        print(f"  {variant:<26} {where}")


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows in the table (default 10,000,000)")
    reporting.add_measuring_arguments(parser, "udf_throughput", repeat=3)
    return parser.parse_args(argv)


def main(argv: t.Optional[t.Sequence[str]] = None) -> None:
    args = parse_args(argv)
    print(f"building a table of {args.rows:,} rows and binding the functions ...", flush=True)
    bench = Bench(args.rows)
    runs = reporting.measure(bench.run, VARIANTS, args.repeat, args.warmup, width=26, round_at_least_s=ROUND_AT_LEAST_S)
    reporting.check_agreement(runs, VARIANTS, REL_TOL)
    print("results agree: each family's variants with each other (times_two also with native SQL)")
    summary = summarize(runs, args.rows)
    rss_mb = reporting.peak_rss_mb()
    print_table(summary, args.rows, args.repeat, rss_mb)
    print_placements(bench.placements)
    reporting.write_json(
        {
            "question": "throughput of mixmesh @udf on DuckDB vs DuckDB's own Python UDFs and native SQL",
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "rows": args.rows,
            "repeat": args.repeat,
            "warmup_rounds": args.warmup,
            "round_at_least_s": ROUND_AT_LEAST_S,
            "query": "SELECT sum(<expr>) FROM t",
            "fast_path_batch_rows": fastpath.BATCH_ROWS,
            "machine": machine_info(bench.connection),
            "peak_rss_mb": round(rss_mb, 1),
            "parallel": bench.placements,
            **summary,
        },
        "udf_throughput",
        args.out,
    )


if __name__ == "__main__":
    main()
