"""How much memory does the driver need to read a Spark query's result: ``batches(n)`` against
``to_pandas()``?

A Python model on a Spark gateway reads its query with ``context.sql(...)``; ``to_pandas()``
collects the whole result into the driver, ``batches(n)`` streams it a partition at a time
(``mixmesh.engines.spark.streaming``). Each variant runs in a fresh child process with its
own Spark (local[2], the tests' settings, Arrow enabled for ``toPandas``) and reads
``SELECT id, CAST(id AS DOUBLE) * 0.25 AS x, CAST(id AS STRING) AS s FROM range(0, rows, 1, partitions)``
through the Spark engine's result (what ``context.sql`` runs), summing ``x`` as it goes:

  to_pandas()    ``SparkResult.df()``, the whole result as one pandas DataFrame
  batches(n)     ``SparkResult.to_arrow_reader(n)``, one Arrow batch of n rows at a time

Measured: the driver's Python process peak RSS (``ru_maxrss``, which includes Python,
pyspark and pandas: "RSS before" is the peak before the read), and the JVM driver's
peak RSS (psutil, sampled every 50 ms, so a short spike may be missed), and the seconds the
read took. Both variants must give the same sum. Figures are reported, never asserted.

It prints a table and writes ``benchmarks/results/spark_streaming_reads.json`` (``variants``:
objects with ``variant`` and the figures; ``machine``; ``timestamp_utc``).

Run from the repository root::

    .venv/bin/python benchmarks/spark_streaming_reads.py                 # 5,000,000 rows
    .venv/bin/python benchmarks/spark_streaming_reads.py --rows 200000 --batch-rows 10000
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from pathlib import Path

import reporting

VARIANTS = ("to_pandas()", "batches(n)")
ROOT = Path(__file__).resolve().parents[1]


def child(variant: str, rows: int, partitions: int, batch_rows: int) -> t.Dict[str, t.Any]:
    """One read in this (fresh) process: its figures."""
    import psutil
    import pyarrow.compute as pc
    from pyspark.sql import SparkSession

    from mixmesh.engines.spark.queries import SparkResult
    from tests.spark import session

    session.worker_environment()
    builder = SparkSession.builder
    for key, value in {**session.settings(Path(tempfile.mkdtemp())),
                       "spark.sql.execution.arrow.pyspark.enabled": "true"}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    jvm = JvmPeak(psutil.Process(spark.sparkContext._gateway.proc.pid))  # the driver JVM py4j started
    query = f"SELECT id, CAST(id AS DOUBLE) * 0.25 AS x, CAST(id AS STRING) AS s FROM range(0, {rows}, 1, {partitions})"
    before = reporting.peak_rss_mb()
    started = time.perf_counter()
    result = SparkResult(spark.sql(query))
    if variant == "to_pandas()":
        frame = result.df()
        total, read = float(frame["x"].sum()), len(frame)
        del frame
    else:
        total, read = 0.0, 0
        for batch in result.to_arrow_reader(batch_rows):
            total += pc.sum(batch.column("x")).as_py()
            read += batch.num_rows
    seconds = time.perf_counter() - started
    jvm.stop()
    spark.stop()
    if read != rows:
        sys.exit(f"{variant} read {read} rows of {rows}")
    return {
        "variant": variant, "seconds": seconds, "sum": total, "rss_before_mb": before,
        "peak_rss_mb": reporting.peak_rss_mb(), "added_rss_mb": reporting.peak_rss_mb() - before,
        "jvm_peak_rss_mb": jvm.peak_mb,
    }


class JvmPeak:
    """The highest RSS of a process, sampled on a thread."""

    def __init__(self, process: t.Any) -> None:
        self.process, self.peak_mb, self._done = process, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak_mb = max(self.peak_mb, self.process.memory_info().rss / 2**20)
            time.sleep(0.05)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def run_variant(variant: str, args: argparse.Namespace) -> t.Dict[str, t.Any]:
    command = [sys.executable, __file__, "--child", variant, "--rows", str(args.rows),
               "--partitions", str(args.partitions), "--batch-rows", str(args.batch_rows)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"{variant} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=reporting.RESULTS / "spark_streaming_reads.json")
    parser.add_argument("--child", choices=VARIANTS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.partitions, args.batch_rows)))
        return
    variants = [run_variant(variant, args) for variant in VARIANTS]
    if len({round(v["sum"], 6) for v in variants}) != 1:
        sys.exit(f"RESULTS DISAGREE: {[(v['variant'], v['sum']) for v in variants]}")
    print(f"{args.rows:,} rows in {args.partitions} partitions, batches of {args.batch_rows:,} rows")
    print(f"{'variant':<14}{'seconds':>9}{'peak RSS MB':>13}{'added MB':>10}{'JVM peak MB':>13}")
    for v in variants:
        print(f"{v['variant']:<14}{v['seconds']:>9.1f}{v['peak_rss_mb']:>13.0f}{v['added_rss_mb']:>10.0f}"
              f"{v['jvm_peak_rss_mb']:>13.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "question": "driver memory reading a Spark query's result: batches(n) vs to_pandas()",
        "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rows": args.rows, "partitions": args.partitions, "batch_rows": args.batch_rows,
        "spark_master": "local[2]",
        "machine": reporting.machine_info("pyspark", "pyarrow", "pandas", "mixmesh"),
        "variants": variants,
    }, indent=1) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
