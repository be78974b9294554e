"""Where does the fast path lose to the plain binding, and does the cost-based choice avoid it?

One process, one in-memory DuckDB, statements run through SQLMesh's DuckDB engine adapter
as in a model. Four shapes, each run three ways: ``MIXMESH_FAST_PATH=on`` (the fast path
whenever the split is possible), ``off`` (the plain binding: DuckDB calls the function per
2,048-row vector) and ``auto`` (the default: the cost rule of ``mixmesh.fastpath.choice``):

  scalar, row            ``sum(row_fn(x))`` over DOUBLE rows, a ``@udf`` row function
  scalar, vectorized     ``sum(times_two(x))``, a ``@udf(vectorized=True)``
  LIST<STRUCT>, vectorized  the document's shape: ``ARRAY_AGG(STRUCT ...)`` per customer in a
                         CTE, then a vectorized function over each customer's list
  LIST<STRUCT>, row      the same lists, a row function

It checks that the three ways agree per shape, prints the median time of the repeats and the
ratios plain / fast path and plain / auto (above 1: faster than the plain binding), which
way ``auto`` went and why, and writes the same table to
``benchmarks/results/fast_path_choice.json``. Timings are reported, never asserted.

Run from the repository root::

    .venv/bin/python benchmarks/fast_path_choice.py      # 2,000,000 rows, 1,000,000 in 50,000 lists, 3 repeats
    .venv/bin/python benchmarks/fast_path_choice.py --rows 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import os
import statistics
import typing as t

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import mixmesh.sqlmesh as sqlmesh_integration
from mixmesh import engines, fastpath, udf
from mixmesh.core.names import binding_name

import reporting

REL_TOL = 1e-9
WAYS = ("on", "off", "auto")
DETAILS = "STRUCT(amount DOUBLE, category VARCHAR)[]"


# --- the functions under test ------------------------------------------------------------


def row_fn(x: float) -> float:
    return x * 2 if x > 10 else (-x if x < -10 else x + 1.0)


def times_two(x: pa.Array) -> pa.Array:
    return pc.multiply(x, 2.0)


def list_total(details: list) -> float:
    """A row function over one customer's list of structs."""
    return sum(item["amount"] for item in details) if details else 0.0


def list_totals(details: pa.Array) -> pa.Array:
    """A vectorized function over a batch of lists of structs: each list's amount summed."""
    details = details.combine_chunks() if isinstance(details, pa.ChunkedArray) else details
    amounts = pc.fill_null(pc.struct_field(pc.list_flatten(details), "amount"), 0.0).to_numpy(zero_copy_only=False)
    lengths = pc.fill_null(pc.list_value_length(details), 0).to_numpy(zero_copy_only=False)
    sums = np.zeros(len(details))
    owners = np.repeat(np.arange(len(details)), lengths)
    np.add.at(sums, owners, amounts)
    return pa.array(sums)


@dataclasses.dataclass(frozen=True)
class Shape:
    name: str
    function: str  # the mixmesh function's SQL name
    nested: bool  # over the grouped lists, not the scalar table


SHAPES = (
    Shape("scalar, row", "choice_row", False),
    Shape("scalar, vectorized", "choice_vec", False),
    Shape("LIST<STRUCT>, vectorized", "choice_list_vec", True),
    Shape("LIST<STRUCT>, row", "choice_list_row", True),
)


@dataclasses.dataclass(frozen=True)
class Variant:
    shape: Shape
    way: str  # MIXMESH_FAST_PATH

    @property
    def name(self) -> str:
        return f"{self.shape.name} [{self.way}]"

    @property
    def family(self) -> str:
        return self.shape.name


VARIANTS = tuple(Variant(shape, way) for shape in SHAPES for way in WAYS)


# --- setup -------------------------------------------------------------------------------


class Bench:
    """``t(x DOUBLE)`` and ``tx(customer_id, amount, category)`` in an in-memory database,
    a SQLMesh DuckDB adapter on it, the mixmesh functions bound."""

    def __init__(self, rows: int, transactions: int, customers: int) -> None:
        from sqlmesh.core.engine_adapter import DuckDBEngineAdapter

        sqlmesh_integration.install()
        self.connection = duckdb.connect(":memory:")
        self.connection.execute(f"CREATE TABLE t AS SELECT random() * 100 - 50 AS x FROM range({rows})")
        self.connection.execute(
            f"CREATE TABLE tx AS SELECT (i % {customers}) AS customer_id, round(random() * 100, 2) AS amount, "
            f"['food', 'travel', 'online'][(i % 3) + 1] AS category FROM range({transactions}) r(i)"
        )
        self.adapter = DuckDBEngineAdapter(lambda: self.connection)
        functions = {
            "choice_row": udf(name="choice_row")(row_fn),
            "choice_vec": udf(name="choice_vec", vectorized=True)(times_two),
            "choice_list_vec": udf(name="choice_list_vec", vectorized=True, args={"details": DETAILS},
                                   returns="DOUBLE")(list_totals),
            "choice_list_row": udf(name="choice_list_row", args={"details": DETAILS}, returns="DOUBLE")(list_total),
        }
        self.names = {name: self._bind(function) for name, function in functions.items()}

    def _bind(self, function: t.Any) -> str:
        name = binding_name(function.spec, "benchmark")
        engines.register_call(function.spec, "benchmark", name)
        return name

    def sql(self, shape: Shape) -> str:
        call = self.names[shape.function]
        if not shape.nested:
            return f"SELECT sum({call}(x)) FROM t"
        # The document's shape: a list of structs per customer in a CTE, then the function.
        return (
            "WITH grouped AS (SELECT customer_id, SUM(amount) AS total, "
            "ARRAY_AGG({'amount': amount, 'category': category} ORDER BY amount) AS details "
            "FROM tx GROUP BY customer_id) "
            f"SELECT sum(round({call}(details), 6)) FROM grouped"
        )

    def run(self, variant: Variant) -> float:
        with _environment({fastpath.VARIABLE: variant.way}):
            (total,) = self.adapter.fetchone(self.sql(variant.shape))
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


def auto_decisions(bench: Bench) -> t.Dict[str, fastpath.Decision]:
    """How ``auto`` decided each shape (one more run each, untimed)."""
    decided = {}
    for shape in SHAPES:
        bench.run(Variant(shape, "auto"))
        decided[shape.name] = fastpath.decisions[-1]
    return decided


# --- reporting ---------------------------------------------------------------------------


def summarize(runs: t.Mapping[str, t.Mapping[str, t.Any]], decided: t.Mapping[str, fastpath.Decision]) -> t.List[t.Dict[str, t.Any]]:
    table = []
    for shape in SHAPES:
        medians = {way: statistics.median(runs[Variant(shape, way).name]["times"]) for way in WAYS}
        decision = decided[shape.name]
        table.append({
            "shape": shape.name,
            "seconds_median": medians,
            "seconds_all": {way: runs[Variant(shape, way).name]["times"] for way in WAYS},
            "fast_path_vs_plain": medians["off"] / medians["on"],  # > 1: faster than the plain binding
            "auto_vs_plain": medians["off"] / medians["auto"],
            "auto_took": "fast path" if decision.staged else "plain binding",
            "auto_reason": decision.reason,
        })
    return table


def print_table(table: t.Sequence[t.Mapping[str, t.Any]], args: argparse.Namespace) -> None:
    print(f"\n{args.rows:,} scalar rows; {args.transactions:,} transactions in {args.customers:,} lists; "
          f"median of {args.repeat}; ratios: plain seconds / seconds (above 1: faster than plain)")
    header = f"{'shape':<26} {'fast path':>9} {'plain':>9} {'auto':>9} {'fast/plain':>11} {'auto/plain':>11}  auto took"
    print(header)
    print("-" * len(header))
    for row in table:
        s = row["seconds_median"]
        print(f"{row['shape']:<26} {s['on']:>9.3f} {s['off']:>9.3f} {s['auto']:>9.3f} "
              f"{row['fast_path_vs_plain']:>10.2f}x {row['auto_vs_plain']:>10.2f}x  {row['auto_took']}")
    for row in table:
        if row["auto_reason"]:
            print(f"  {row['shape']}: {row['auto_reason']}")


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the scalar table (default 2,000,000)")
    parser.add_argument("--transactions", type=int, default=1_000_000, help="rows grouped into lists (default 1,000,000)")
    parser.add_argument("--customers", type=int, default=50_000, help="lists (groups) (default 50,000)")
    reporting.add_measuring_arguments(parser, "fast_path_choice", repeat=3)
    return parser.parse_args(argv)


def main(argv: t.Optional[t.Sequence[str]] = None) -> None:
    args = parse_args(argv)
    print(f"building {args.rows:,} rows and {args.transactions:,} transactions, binding the functions ...", flush=True)
    bench = Bench(args.rows, args.transactions, args.customers)
    runs = reporting.measure(bench.run, VARIANTS, args.repeat, args.warmup, width=36)
    reporting.check_agreement(runs, VARIANTS, REL_TOL)
    print("results agree: each shape's three ways with each other")
    table = summarize(runs, auto_decisions(bench))
    print_table(table, args)
    reporting.write_json(
        {
            "question": "per statement shape: the fast path, the plain binding and the cost-based choice",
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "rows": args.rows,
            "transactions": args.transactions,
            "customers": args.customers,
            "repeat": args.repeat,
            "warmup_rounds": args.warmup,
            "fast_path_batch_rows": fastpath.BATCH_ROWS,
            "machine": {**reporting.machine_info("duckdb", "pyarrow", "mixmesh"),
                        "duckdb_threads": bench.connection.execute("SELECT current_setting('threads')").fetchone()[0]},
            "peak_rss_mb": round(reporting.peak_rss_mb(), 1),
            "shapes": table,
        },
        "fast_path_choice",
        args.out,
    )


if __name__ == "__main__":
    main()
