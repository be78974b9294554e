"""What does ``timeout_s`` cost a row function on DuckDB?

One process, one in-memory DuckDB, one table ``t(x DOUBLE)``; every variant runs
``SELECT sum(<expr>) FROM t`` on the same scalar function with a branch (``row_fn``). The
bar: a row function with a timeout takes at most 1.5x the time it takes without one.

Three pairs of ``@udf`` row functions, each "without" and "with ``timeout_s=30``" (a
timeout never reached: what is measured is what keeping it costs):

  no policy        ``@udf`` alone
  on_error=null    ``@udf(on_error="null")``
  retry+on_error   ``@udf(retry=Retry(attempts=3), on_error="null")``

Each pair runs on two paths, through SQLMesh's DuckDB engine adapter as a model runs it:

  fast path   the default, ``MIXMESH_FAST_PATH=auto``: the fast path where the cost rule
              (``mixmesh.fastpath.choice``) expects a gain: the query below the call streams
              out in 262,144-row Arrow batches, the rows of a batch run in one Python loop
              (with a timeout: in one watched worker thread). For the bare function (no
              policy, no timeout: a row function over scalars on threads) the rule picks the
              plain binding, which the staged batches did not beat (0.95x); the "took" column
              says which way each variant went
  plain       ``MIXMESH_FAST_PATH=off``: DuckDB's own binding, a native UDF called per row;
              with a timeout, an Arrow UDF whose 2,048-row vectors run in a watched worker

DuckDB's own native Python UDF on ``row_fn`` is the reference row.

It checks that all variants agree, prints the median time of the repeats, rows/s, the
cores kept busy (CPU time over wall time), the most memory the query added to the
process, and the ratios "with timeout / without" per pair and path, and writes the same
table to ``benchmarks/results/timeout_overhead.json``. Timings are reported, never asserted.

Run from the repository root::

    .venv/bin/python benchmarks/timeout_overhead.py            # 1,000,000 rows, 5 repeats
    .venv/bin/python benchmarks/timeout_overhead.py --rows 200000 --repeat 3
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

import mixmesh.sqlmesh as sqlmesh_integration
from mixmesh import Retry, engines, fastpath, udf
from mixmesh.core.names import binding_name

import reporting

REL_TOL = 1e-9
TIMEOUT_S = 30.0
BAR = 1.5  # the issue's: a timeout costs at most 1.5x the time without one
PLAIN = (("MIXMESH_FAST_PATH", "off"),)


# --- the function under test -------------------------------------------------------------


def row_fn(x: float) -> float:
    """A cheap scalar function with a branch: what row mode is for."""
    return x * 2.0 if x > 10 else x + 1.0


# The pairs: what else the function declares besides (or not) timeout_s.
POLICIES: t.Dict[str, t.Callable[[], t.Dict[str, t.Any]]] = {
    "no policy": lambda: {},
    "on_error=null": lambda: {"on_error": "null"},
    "retry+on_error": lambda: {"retry": Retry(attempts=3), "on_error": "null"},
}
PATHS = {"fast path": (), "plain": PLAIN}


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    function: t.Optional[str]  # the mixmesh function's name; None: DuckDB's own UDF
    policy: t.Optional[str] = None
    path: t.Optional[str] = None
    timeout: bool = False
    env: t.Tuple[t.Tuple[str, str], ...] = ()
    family: str = "row_fn"  # all variants compute the same function and must agree


def _function_name(policy: str, timeout: bool) -> str:
    base = {"no policy": "bare", "on_error=null": "null", "retry+on_error": "retry"}[policy]
    return f"row_{base}_timeout" if timeout else f"row_{base}"


VARIANTS = (
    Variant("duckdb native UDF", None),
    *(
        Variant(
            f"{policy}, {path}" + (" + timeout" if timeout else ""),
            _function_name(policy, timeout),
            policy,
            path,
            timeout,
            env,
        )
        for policy in POLICIES
        for path, env in PATHS.items()
        for timeout in (False, True)
    ),
)


# --- setup -------------------------------------------------------------------------------


class Bench:
    """An in-memory database holding ``t(x DOUBLE)``, DuckDB's own UDF on it, and a SQLMesh
    engine adapter on the same connection with the mixmesh functions bound."""

    def __init__(self, rows: int) -> None:
        from sqlmesh.core.engine_adapter import DuckDBEngineAdapter

        sqlmesh_integration.install()
        self.connection = duckdb.connect(":memory:")
        self.connection.execute(f"CREATE TABLE t AS SELECT random() * 100 - 50 AS x FROM range({rows})")
        self.connection.create_function("duckdb_row", row_fn, ["DOUBLE"], "DOUBLE")
        self.adapter = DuckDBEngineAdapter(lambda: self.connection)
        self.names: t.Dict[str, str] = {}
        self.took: t.Dict[str, str] = {}  # variant -> "fast path" or "plain binding: <why>"
        for policy, declared in POLICIES.items():
            for timeout in (False, True):
                name = _function_name(policy, timeout)
                extra = {"timeout_s": TIMEOUT_S} if timeout else {}
                self.names[name] = self._bind(udf(name=name, **declared(), **extra)(row_fn))

    def _bind(self, function: t.Any) -> str:
        name = binding_name(function.spec, "benchmark")
        engines.register_call(function.spec, "benchmark", name)
        return name

    def sql(self, variant: Variant) -> str:
        expr = "duckdb_row(x)" if variant.function is None else f"CAST({self.names[variant.function]}(x) AS DOUBLE)"
        return f"SELECT sum({expr}) FROM t"

    def run(self, variant: Variant) -> float:
        sql = self.sql(variant)
        if variant.function is None:
            return self.connection.execute(sql).fetchone()[0]
        with _environment(dict(variant.env)):
            (total,) = self.adapter.fetchone(sql)
        decision = fastpath.decisions[-1]
        if decision.staged and variant.env == PLAIN:
            sys.exit(f"{variant.name}: the fast path was taken with {PLAIN[0][0]}=off")
        self.took[variant.name] = "fast path" if decision.staged else decision.reason
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


def summarize(runs: t.Mapping[str, t.Mapping[str, t.Any]], rows: int, took: t.Mapping[str, str]) -> t.Dict[str, t.Any]:
    medians = {name: statistics.median(run["times"]) for name, run in runs.items()}
    reference = medians["duckdb native UDF"]
    variants = [
        {
            "variant": v.name,
            "function": v.function or "duckdb_row",
            "policy": v.policy,
            "path": v.path,
            "timeout_s": TIMEOUT_S if v.timeout else None,
            "seconds_median": medians[v.name],
            "seconds_all": runs[v.name]["times"],
            "rows_per_second": rows / medians[v.name],
            "cores_busy": statistics.median(runs[v.name]["cores"]),
            "memory_added_mb": max(runs[v.name]["memory"]),
            "vs_duckdb_native_udf": medians[v.name] / reference,
            "result": runs[v.name]["sums"][0],
            "took": took.get(v.name, "duckdb's own UDF"),
        }
        for v in VARIANTS
    ]
    ratios = []
    for policy in POLICIES:
        for path in PATHS:
            pair = [v for v in VARIANTS if v.policy == policy and v.path == path]
            without, with_ = (next(v for v in pair if v.timeout is flag) for flag in (False, True))
            ratio = medians[with_.name] / medians[without.name]
            # The ratio of each round's pair (run back to back), for how much it moves.
            per_round = [a / b for a, b in zip(runs[with_.name]["times"], runs[without.name]["times"])]
            ratios.append(
                {
                    "policy": policy,
                    "path": path,
                    "without": without.name,
                    "with": with_.name,
                    "ratio": ratio,
                    "ratio_per_round": per_round,
                    "bar": f"at most {BAR:g}x",
                    "met": ratio <= BAR,
                }
            )
    return {"variants": variants, "ratios": ratios}


def machine_info(con: duckdb.DuckDBPyConnection) -> t.Dict[str, t.Any]:
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]  # the fast path's too
    return {**reporting.machine_info("duckdb", "pyarrow", "sqlmesh", "mixmesh"), "duckdb_threads": threads}


def print_table(summary: t.Mapping[str, t.Any], rows: int, repeat: int, rss_mb: float) -> None:
    print(f"\nsum(row_fn(x)) over {rows:,} DOUBLE rows, median of {repeat}; timeout_s={TIMEOUT_S:g}")
    header = f"{'variant':<36} {'seconds':>9} {'rows/s':>14} {'cores busy':>11} {'MB added':>9} {'vs duckdb UDF':>14}  took"
    print(header)
    print("-" * len(header))
    for v in summary["variants"]:
        print(
            f"{v['variant']:<36} {v['seconds_median']:>9.3f} {v['rows_per_second']:>14,.0f} "
            f"{v['cores_busy']:>11.2f} {v['memory_added_mb']:>9.0f} {v['vs_duckdb_native_udf']:>13.2f}x  "
            f"{'plain binding' if v['took'].startswith('plain') else v['took']}"
        )
    print(f"\nwith timeout / without (bar: at most {BAR:g}x)")
    for r in summary["ratios"]:
        verdict = "MET" if r["met"] else "NOT MET"
        spread = f"rounds {min(r['ratio_per_round']):.2f}-{max(r['ratio_per_round']):.2f}"
        print(f"  {r['policy']:<16} {r['path']:<10} {r['ratio']:6.2f}x  ({spread}) -> {verdict}")
    print(f"\npeak RSS: {rss_mb:,.0f} MB")


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the table (default 1,000,000)")
    reporting.add_measuring_arguments(parser, "timeout_overhead", repeat=5)
    return parser.parse_args(argv)


def main(argv: t.Optional[t.Sequence[str]] = None) -> None:
    args = parse_args(argv)
    print(f"building a table of {args.rows:,} rows and binding the functions ...", flush=True)
    bench = Bench(args.rows)
    runs = reporting.measure(bench.run, VARIANTS, args.repeat, args.warmup, width=36)
    reporting.check_agreement(runs, VARIANTS, REL_TOL)
    print("results agree: every variant with DuckDB's own UDF")
    summary = summarize(runs, args.rows, bench.took)
    rss_mb = reporting.peak_rss_mb()
    print_table(summary, args.rows, args.repeat, rss_mb)
    reporting.write_json(
        {
            "question": "what timeout_s costs a row function on DuckDB (bar: at most 1.5x the time without)",
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "rows": args.rows,
            "repeat": args.repeat,
            "warmup_rounds": args.warmup,
            "query": "SELECT sum(<expr>) FROM t",
            "timeout_s": TIMEOUT_S,
            "fast_path_batch_rows": fastpath.BATCH_ROWS,
            "machine": machine_info(bench.connection),
            "peak_rss_mb": round(rss_mb, 1),
            **summary,
        },
        "timeout_overhead",
        args.out,
    )


if __name__ == "__main__":
    main()
