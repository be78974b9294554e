"""How fast does a row function get its LIST<STRUCT> arguments, next to DuckDB's own Python UDF?

One in-memory DuckDB, one table of customers, each with a list of orders (``STRUCT(totalprice
DOUBLE, orderstatus VARCHAR, orderdate DATE)[]``, 10 to 20 orders, 15 on average: TPC-H's
orders grouped per customer). Two questions:

  conversion   the column as one Arrow array, to Python values: ``pyarrow.Array.to_pylist``
               vs ``mixmesh.core.conversion.to_python`` (what a row function's batch uses)
  end to end   ``SELECT sum(order_score(orders)) FROM customers`` with
                 duckdb native UDF       DuckDB's own Python UDF, one call per row
                 mixmesh row, plain      ``@udf`` with the fast path off (DuckDB's native UDF
                                         underneath, with mixmesh's wrapper)
                 mixmesh row             ``@udf`` on the fast path (Arrow batches converted by
                                         ``to_python``, the function called per row)

It checks that the conversions give equal values and that the queries agree, prints the
median time of the repeats and the ratios, and writes the same table to
``benchmarks/results/nested_conversion.json``. Timings are reported, never asserted.

Run from the repository root::

    .venv/bin/python benchmarks/nested_conversion.py                 # 100,000 customers, 3 repeats
    .venv/bin/python benchmarks/nested_conversion.py --customers 10000 --repeat 5
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import statistics
import sys
import typing as t

import duckdb
import pyarrow as pa

from mixmesh import engines, fastpath, udf
import mixmesh.sqlmesh as sqlmesh_integration
from mixmesh.core.conversion import to_python
from mixmesh.core.names import binding_name

import reporting
from udf_throughput import _environment

REL_TOL = 1e-9
ORDERS = "STRUCT(totalprice DOUBLE, orderstatus VARCHAR, orderdate DATE)[]"
EPOCH = datetime.date(1992, 1, 1)


def order_score(orders: t.List[t.Dict[str, t.Any]]) -> float:
    """The fulfilled orders' value, plus the days from 1992 to the latest order."""
    fulfilled = 0.0
    latest = EPOCH
    for order in orders:
        if order["orderstatus"] == "F":
            fulfilled += order["totalprice"]
        if order["orderdate"] > latest:
            latest = order["orderdate"]
    return fulfilled + (latest - EPOCH).days


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    family: str  # variants of one family compute the same thing and must agree
    run: str  # the Bench method that runs it


VARIANTS = (
    Variant("to_pylist", "conversion", "convert_with_to_pylist"),
    Variant("to_python", "conversion", "convert_with_to_python"),
    Variant("duckdb native UDF", "order_score", "duckdb_native"),
    Variant("mixmesh row, plain", "order_score", "mixmesh_plain"),
    Variant("mixmesh row", "order_score", "mixmesh_fast_path"),
)

# (variant, compared with, at least this many times faster; None: reported only, the plain
# binding's arguments are converted by DuckDB, not by to_python)
BARS: t.Tuple[t.Tuple[str, str, t.Optional[float]], ...] = (
    ("to_python", "to_pylist", 1.0),
    ("mixmesh row", "duckdb native UDF", 1.5),
    ("mixmesh row, plain", "duckdb native UDF", None),
)


class Bench:
    """The customers' table, DuckDB's UDF and mixmesh's on one connection, and the orders
    column as one Arrow array for the conversion alone."""

    def __init__(self, customers: int) -> None:
        from sqlmesh.core.engine_adapter import DuckDBEngineAdapter

        sqlmesh_integration.install()
        self.connection = duckdb.connect(":memory:")
        self.connection.execute(
            f"""CREATE TABLE customers AS
            SELECT range AS customer, list_transform(range(10 + range % 11), i -> {{
                'totalprice': (hash(range * 100 + i) % 100000) / 100.0,
                'orderstatus': ['F', 'O', 'P'][1 + (hash(range + i) % 3)::INT],
                'orderdate': DATE '1992-01-01' + (hash(range * 7 + i) % 2400)::INT}}) AS orders
            FROM range({customers})"""
        )
        self.orders: pa.Array = self.connection.execute("SELECT orders FROM customers").fetch_arrow_table().column(0).combine_chunks()
        self.connection.create_function("duckdb_order_score", order_score, [duckdb.sqltype(ORDERS)], "DOUBLE")
        self.adapter = DuckDBEngineAdapter(lambda: self.connection)
        function = udf(name="mixmesh_order_score", args=[ORDERS], returns="DOUBLE")(order_score)
        self.mixmesh_name = binding_name(function.spec, "benchmark")
        engines.register_call(function.spec, "benchmark", self.mixmesh_name)

    def convert_with_to_pylist(self) -> int:
        return len(self.orders.to_pylist())

    def convert_with_to_python(self) -> int:
        return len(to_python(self.orders))

    def duckdb_native(self) -> float:
        return self.connection.execute("SELECT sum(duckdb_order_score(orders)) FROM customers").fetchone()[0]

    def mixmesh_plain(self) -> float:
        with _environment({"MIXMESH_FAST_PATH": "off"}):
            return self._mixmesh()

    def mixmesh_fast_path(self) -> float:
        total = self._mixmesh()
        decision = fastpath.decisions[-1] if fastpath.decisions else None
        if decision is None or not decision.staged:
            sys.exit(f"mixmesh row: the fast path was not taken: {decision.reason if decision else 'no decision'}")
        return total

    def _mixmesh(self) -> float:
        (total,) = self.adapter.fetchone(f"SELECT sum(CAST({self.mixmesh_name}(orders) AS DOUBLE)) FROM customers")
        return total

    def run(self, variant: Variant) -> float:
        return getattr(self, variant.run)()

    def check_conversions_equal(self) -> None:
        if to_python(self.orders) != self.orders.to_pylist():
            sys.exit("CONVERSIONS DISAGREE: to_python and to_pylist gave different values")


def summarize(runs: t.Mapping[str, t.Mapping[str, t.Any]], customers: int, orders: int) -> t.Dict[str, t.Any]:
    medians = {name: statistics.median(run["times"]) for name, run in runs.items()}
    variants = [
        {
            "variant": v.name,
            "family": v.family,
            "seconds_median": medians[v.name],
            "seconds_all": runs[v.name]["times"],
            "rows_per_second": customers / medians[v.name],
            "structs_per_second": orders / medians[v.name],
            "memory_added_mb": max(runs[v.name]["memory"]),
            "result": runs[v.name]["sums"][0],
        }
        for v in VARIANTS
    ]
    bars = []
    for ours, theirs, bar in BARS:
        speedup = medians[theirs] / medians[ours]  # > 1: ours is faster
        bars.append({
            "variant": ours, "compared_with": theirs, "speedup": speedup,
            "bar": "reported" if bar is None else f"faster {bar:g}x", "met": None if bar is None else speedup >= bar,
        })
    return {"variants": variants, "bars": bars}


def print_table(summary: t.Mapping[str, t.Any], customers: int, orders: int, repeat: int) -> None:
    print(f"\n{customers:,} lists of {orders / customers:.1f} structs on average ({ORDERS}), median of {repeat}")
    header = f"{'variant':<20} {'seconds':>9} {'lists/s':>12} {'structs/s':>13} {'MB added':>9}"
    print(header)
    print("-" * len(header))
    for v in summary["variants"]:
        print(
            f"{v['variant']:<20} {v['seconds_median']:>9.3f} {v['rows_per_second']:>12,.0f} "
            f"{v['structs_per_second']:>13,.0f} {v['memory_added_mb']:>9.0f}"
        )
    print()
    for bar in summary["bars"]:
        verdict = {True: "MET", False: "NOT MET", None: "reported"}[bar["met"]]
        ratio = f"{bar['speedup']:.2f}x as fast" if bar["speedup"] >= 1 else f"{1 / bar['speedup']:.2f}x as slow"
        print(f"{bar['variant']} vs {bar['compared_with']}: {ratio} (bar: {bar['bar']}) -> {verdict}")


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000, help="lists in the column (default 100,000)")
    reporting.add_measuring_arguments(parser, "nested_conversion", repeat=3)
    return parser.parse_args(argv)


def main(argv: t.Optional[t.Sequence[str]] = None) -> None:
    args = parse_args(argv)
    print(f"building {args.customers:,} customers' orders and binding the functions ...", flush=True)
    bench = Bench(args.customers)
    orders = len(bench.orders.values)
    bench.check_conversions_equal()
    runs = reporting.measure(bench.run, VARIANTS, args.repeat, args.warmup, width=20)
    reporting.check_agreement(runs, VARIANTS, REL_TOL)
    print("results agree: to_python gives to_pylist's values, and the three queries the same sum")
    summary = summarize(runs, args.customers, orders)
    print_table(summary, args.customers, orders, args.repeat)
    reporting.write_json(
        {
            "question": "converting LIST<STRUCT> arguments for a row function: to_pylist vs to_python, "
            "and mixmesh row functions vs DuckDB's native Python UDF",
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "customers": args.customers,
            "orders": orders,
            "argument_type": ORDERS,
            "repeat": args.repeat,
            "warmup_rounds": args.warmup,
            "query": "SELECT sum(order_score(orders)) FROM customers",
            "machine": {
                **reporting.machine_info("duckdb", "pyarrow", "mixmesh"),
                "duckdb_threads": bench.connection.execute("SELECT current_setting('threads')").fetchone()[0],
            },
            "peak_rss_mb": round(reporting.peak_rss_mb(), 1),
            **summary,
        },
        "nested_conversion",
        args.out,
    )


if __name__ == "__main__":
    main()
