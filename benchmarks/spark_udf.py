"""How fast is a mixmesh ``@udf`` on Spark, next to Spark's own pandas_udf and plain Spark SQL?

Two columns: Spark in local mode (``local[2]``: two executor threads, each with its own Python
worker process), and a Spark standalone cluster (a master and two workers of one core each,
separate JVMs on this machine, started from the installed pyspark as ``tests/spark/cluster.py``
starts it; its start-up time is reported apart). In each, one cached table of DOUBLE rows;
every variant runs ``SELECT sum(<expr>) FROM t``:

  native SQL          x * 2 written in SQL
  spark pandas_udf    Spark's own pandas_udf (Series -> Series) running ``x * 2``
  spark arrow_udf     Spark's own arrow_udf (Arrow array -> Arrow array) running ``times_two``
  mixmesh vectorized  ``@udf(vectorized=True)`` on ``times_two``, bound with
                      ``mixmesh.engines.spark.register``
  spark row udf       Spark's own Python UDF (Arrow-optimized, one call per row) running ``row_fn``
  mixmesh row         ``@udf`` on ``row_fn``, bound the same way

It checks that the variants computing the same function agree, prints the median time of
the repeats, rows/s and the ratios the acceptance bars are about (local mode: mixmesh
vectorized at least 0.9x the pandas_udf's throughput; cluster: at least 1.0x the
arrow_udf's), and writes the same tables to ``benchmarks/results/spark_udf.json``: local
mode's at the top level (``variants``, ``ratios``, ``bar``, as ``report.py`` reads every
benchmark's), the cluster's under ``cluster`` in the same shape, with ``start_seconds``.
Timings are reported, never asserted. A round moves by up to 30% here, as much as the
gaps between the vectorized variants: 9 rounds by default (3 gave 0.91x the arrow_udf on
the cluster in one run, where 9 gave 1.01x in the next).

Run from the repository root (needs Java 17 or 21)::

    .venv/bin/python benchmarks/spark_udf.py            # 5,000,000 rows, 9 repeats, both columns
    .venv/bin/python benchmarks/spark_udf.py --rows 1000000 --repeat 5 --setups local
    .venv/bin/python benchmarks/spark_udf.py --cluster spark://127.0.0.1:7077   # a running cluster
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import statistics
import sys
import time
import typing as t
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import udf
from mixmesh.engines.spark import register

import reporting

BAR = 0.9  # local mode: mixmesh's throughput at least 0.9x the pandas_udf's
CLUSTER_BAR = 1.0  # cluster: mixmesh vectorized at least 1.0x the arrow_udf's
SETUPS = ("local", "cluster")
REL_TOL = 1e-9


# --- the functions under test ------------------------------------------------------------


def row_fn(x: float) -> float:
    """A scalar function with branches: what row mode is for."""
    return x * 2 if x > 10 else (-x if x < -10 else x + 1.0)


def times_two(x: pa.Array) -> pa.Array:
    """The vectorized function: one pyarrow compute call per batch."""
    return pc.multiply(x, 2.0)


def pandas_times_two(x: pd.Series) -> pd.Series:
    return x * 2.0


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    expr: str  # what goes inside sum(...)
    family: str  # variants of one family compute the same function and must agree


VARIANTS = (
    Variant("native SQL", "x * 2", "times_two"),
    Variant("spark pandas_udf", "spark_pandas(x)", "times_two"),
    Variant("spark arrow_udf", "spark_arrow(x)", "times_two"),
    Variant("mixmesh vectorized", "mixmesh_vec(x)", "times_two"),
    Variant("spark row udf", "spark_row(x)", "row_fn"),
    Variant("mixmesh row", "mixmesh_row(x)", "row_fn"),
)

# (mixmesh variant, the Spark UDF it is measured against): throughput ratios.
PAIRS = (
    ("mixmesh vectorized", "spark pandas_udf"),
    ("mixmesh vectorized", "spark arrow_udf"),
    ("mixmesh row", "spark row udf"),
)


# --- setup -------------------------------------------------------------------------------


def start_spark(warehouse: Path, master: str = "local[2]") -> t.Any:
    """Spark at ``master``, its Python workers running this interpreter, no UI."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master)
    if not master.startswith("local"):  # the driver on loopback, as the cluster is
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.executor.memory", "512m")
    spark = (
        builder
        .appName("mixmesh-benchmark")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def prepare(spark: t.Any, rows: int) -> None:
    """A cached view ``t(x DOUBLE)`` in two partitions, and every function bound."""
    from pyspark.sql.functions import arrow_udf, pandas_udf
    from pyspark.sql.functions import udf as spark_udf

    table = spark.range(0, rows, 1, 2).selectExpr("rand(42) * 100 - 50 AS x").cache()
    table.count()
    table.createOrReplaceTempView("t")
    spark.udf.register("spark_pandas", pandas_udf(pandas_times_two, "double"))
    spark.udf.register("spark_arrow", arrow_udf(times_two, "double"))
    spark.udf.register("spark_row", spark_udf(row_fn, "double", useArrow=True))
    register(spark, udf(name="mixmesh_vec", vectorized=True)(times_two))
    register(spark, udf(name="mixmesh_row")(row_fn))


# --- measuring ---------------------------------------------------------------------------


def run_once(spark: t.Any, variant: Variant) -> t.Tuple[float, float]:
    """Seconds the query took, and its result."""
    start = time.perf_counter()
    (total,) = spark.sql(f"SELECT sum({variant.expr}) FROM t").collect()[0]
    return time.perf_counter() - start, total


def measure(spark: t.Any, repeat: int, warmup: int) -> t.Dict[str, t.Dict[str, t.Any]]:
    """Run every variant ``repeat`` times, round-robin so that machine drift hits all alike.

    ``warmup`` rounds run first and are not counted (first calls start Python workers).
    """
    for _ in range(warmup):
        for variant in VARIANTS:
            run_once(spark, variant)
    times: t.Dict[str, t.List[float]] = {v.name: [] for v in VARIANTS}
    sums: t.Dict[str, t.List[float]] = {v.name: [] for v in VARIANTS}
    for round_ in range(1, repeat + 1):
        for variant in VARIANTS:
            seconds, total = run_once(spark, variant)
            times[variant.name].append(seconds)
            sums[variant.name].append(total)
            print(f"  round {round_}/{repeat}  {variant.name:<20} {seconds:8.3f} s", flush=True)
    return {v.name: {"times": times[v.name], "sums": sums[v.name]} for v in VARIANTS}


# --- reporting ---------------------------------------------------------------------------


def summarize(
    runs: t.Mapping[str, t.Mapping[str, t.Any]], rows: int, *, bar_pair: int = 0, bar: float = BAR
) -> t.Dict[str, t.Any]:
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
    # Throughput ratio: theirs' time over ours (1.0 = as fast; above 1 = mixmesh faster).
    ratios = [
        {"mixmesh": ours, "spark": theirs, "throughput_ratio": medians[theirs] / medians[ours]}
        for ours, theirs in PAIRS
    ]
    measured = ratios[bar_pair]
    return {
        "variants": variants,
        "ratios": ratios,
        "bar": {**measured, "bar": bar, "met": measured["throughput_ratio"] >= bar},
    }


def print_table(summary: t.Mapping[str, t.Any], rows: int, repeat: int, where: str = "local[2]") -> None:
    print(f"\nsum(<expr>) over {rows:,} DOUBLE rows on Spark {where}, median of {repeat}")
    header = f"{'variant':<20} {'expr':<22} {'seconds':>9} {'rows/s':>14} {'vs native SQL':>14}"
    print(header)
    print("-" * len(header))
    for v in summary["variants"]:
        print(
            f"{v['variant']:<20} {v['expr']:<22} {v['seconds_median']:>9.3f} "
            f"{v['rows_per_second']:>14,.0f} {v['vs_native_sql']:>13.1f}x"
        )
    print()
    for ratio in summary["ratios"]:
        print(f"{ratio['mixmesh']} throughput / {ratio['spark']}: {ratio['throughput_ratio']:.3f}x")
    bar = summary["bar"]
    verdict = "MET" if bar["met"] else "NOT MET"
    print(f"bar: {bar['mixmesh']} at least {bar['bar']:.1f}x the {bar['spark']}'s throughput -> {verdict}")


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows in the table (default 5,000,000)")
    parser.add_argument("--setups", default=",".join(SETUPS), help="local, cluster or both (default both)")
    parser.add_argument("--cluster", metavar="MASTER_URL", help="use this running cluster instead of starting one")
    reporting.add_measuring_arguments(parser, "spark_udf", repeat=9)
    args = parser.parse_args(argv)
    args.setups = [setup.strip() for setup in args.setups.split(",") if setup.strip()]
    unknown = sorted(set(args.setups) - set(SETUPS))
    if unknown or not args.setups:
        parser.error(f"--setups takes {' and/or '.join(SETUPS)}, not {args.setups!r}")
    return args


def run_on(master: str, args: argparse.Namespace, warehouse: Path, **bar: t.Any) -> t.Tuple[t.Dict[str, t.Any], str]:
    """The table of every variant on a SparkSession at ``master``, and Arrow's batch size there."""
    spark = start_spark(warehouse, master)
    try:
        print(f"[{master}] caching a table of {args.rows:,} rows and binding the functions ...", flush=True)
        prepare(spark, args.rows)
        runs = measure(spark, args.repeat, args.warmup)
        reporting.check_agreement(runs, VARIANTS, REL_TOL)
        print("results agree: row variants with each other; vectorized ones with each other and native SQL")
        summary = summarize(runs, args.rows, **bar)
        print_table(summary, args.rows, args.repeat, master)
        return summary, spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    finally:
        spark.stop()


def on_a_cluster(args: argparse.Namespace, folder: Path) -> t.Dict[str, t.Any]:
    """The cluster column: a cluster started for it (its start-up timed), or the one given."""
    cluster = None
    if args.cluster is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' cluster launcher
        from tests.spark import cluster as standalone

        print("starting a Spark standalone cluster (a master, two workers) ...", flush=True)
        cluster = standalone.start(folder / "cluster")
        print(f"cluster started in {cluster.start_seconds:.1f} s", flush=True)
    master = args.cluster or cluster.master_url
    try:
        summary, _ = run_on(master, args, folder / "warehouse-cluster", bar_pair=1, bar=CLUSTER_BAR)
    finally:
        if cluster is not None:
            cluster.stop()
    workers = "two workers of one core" if cluster is not None else "the cluster given"
    return {"master": master, "workers": workers, "start_seconds": cluster.start_seconds if cluster else None, **summary}


def main(argv: t.Optional[t.Sequence[str]] = None) -> None:
    import tempfile

    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mixmesh-spark-benchmark-") as folder:
        results: t.Dict[str, t.Any] = {}
        batch_rows = None
        if "local" in args.setups:
            summary, batch_rows = run_on("local[2]", args, Path(folder) / "warehouse")
            results.update(summary, spark_master="local[2]")
        if "cluster" in args.setups:
            results["cluster"] = on_a_cluster(args, Path(folder))
        reporting.write_json(
            {
                "question": "throughput of mixmesh @udf on Spark (local[2], and a standalone cluster) vs Spark's own "
                "pandas_udf, arrow_udf, Python UDF and native Spark SQL",
                "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "rows": args.rows,
                "repeat": args.repeat,
                "warmup_rounds": args.warmup,
                "query": "SELECT sum(<expr>) FROM t",
                "arrow_max_records_per_batch": batch_rows,
                "machine": reporting.machine_info("pyspark", "pyarrow", "pandas", "mixmesh"),
                **results,
            },
            "spark_udf",
            args.out,
        )


if __name__ == "__main__":
    main()
