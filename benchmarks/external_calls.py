"""How fast does a function that calls an HTTP service run, one call at a time, with calls in
flight, with a cache, under a rate limit?

The example's exchange-rate service (``examples/use_cases/exchange_rates/service.py``) runs in
a child process on 127.0.0.1, answering each request after ``--latency-ms`` (20 ms). Every
variant looks up the rates of the same distinct (currency, day) keys, one table row each,
with ``SELECT sum(<rate>(currency, day)) FROM t``, calling the example's own client code
(``python.rates.fetch_rate``: urllib3, one PoolManager per process). mixmesh's functions run through
SQLMesh's DuckDB engine adapter, as in a model:

  duckdb python UDF        DuckDB's own Python UDF (``create_function``) on ``fetch_rate``: the peer
  mixmesh concurrency=1    ``@udf`` (one call at a time)
  mixmesh concurrency=64   ``@udf(concurrency=64)``
  mixmesh cache, first run   ``@udf(concurrency=64, cache=True)`` on an empty cache
  mixmesh cache, second run  the same query again: every answer comes from the warehouse
  mixmesh rate limit       ``@udf(concurrency=64, rate_limit=...)`` over the first
                           ``--limited-rows`` keys: the rate achieved against the limit

For each it records the seconds, rows/s, the requests the service received and the most
it ever had in flight (never above the variant's concurrency). It checks that all variants
agree (the same sum of rates), prints the table and the ratios the issue sets bars for
(concurrency=64 at least 30x faster than concurrency=1; the cache's second run at least 100x
faster than its first, with 0 requests; the rate limit honoured within 5%), and writes the
same to ``benchmarks/results/external_calls.json``. Timings are reported, never asserted.

Run from the repository root::

    .venv/bin/python benchmarks/external_calls.py               # 10,000 keys at 20 ms
    .venv/bin/python benchmarks/external_calls.py --rows 500    # a quick look
    .venv/bin/python benchmarks/external_calls.py --only one many   # two of the variants
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import statistics
import sys
import typing as t
from pathlib import Path

import duckdb

import mixmesh.sqlmesh as sqlmesh_integration
from mixmesh import engines, udf
from mixmesh.core.names import binding_name

import reporting

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "use_cases" / "exchange_rates"
sys.path.insert(0, str(EXAMPLE))

from python import rates  # noqa: E402  (the example's client, as its model calls it)
from service import BASE_RATES, ExchangeRateService  # noqa: E402

REL_TOL = 1e-9
CONCURRENCY = 64
# The bars.
CONCURRENCY_BAR = 30.0  # concurrency=64 vs concurrency=1: at least this many times faster
CACHE_BAR = 100.0  # the cache's second run vs its first: at least this many times faster
RATE_TOLERANCE = 0.05  # the achieved rate within 5% of the limit


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    group: str  # what --only picks it by
    function: t.Optional[str]  # the mixmesh function's SQL name; None: DuckDB's own UDF
    declared: t.Tuple[t.Tuple[str, t.Any], ...] = ()  # @udf arguments
    limited: bool = False  # over the first --limited-rows keys only
    in_flight_limit: int = 1


GROUPS = ("peer", "one", "many", "cache", "limit")


def variants(rate_limit: str, only: t.Sequence[str] = GROUPS) -> t.Tuple[Variant, ...]:
    many = (("concurrency", CONCURRENCY),)
    cached = (*many, ("cache", True))
    every = (
        Variant("duckdb python UDF", "peer", None),
        Variant("mixmesh concurrency=1", "one", "rate_one_at_a_time", (("concurrency", 1),)),
        Variant(f"mixmesh concurrency={CONCURRENCY}", "many", "rate_in_flight", many, in_flight_limit=CONCURRENCY),
        Variant("mixmesh cache, first run", "cache", "rate_cached", cached, in_flight_limit=CONCURRENCY),
        Variant("mixmesh cache, second run", "cache", "rate_cached", cached, in_flight_limit=CONCURRENCY),
        Variant(f"mixmesh rate limit {rate_limit}", "limit", "rate_limited", (*many, ("rate_limit", rate_limit)), True,
                CONCURRENCY),
    )
    return tuple(variant for variant in every if variant.group in only)


def keys(rows: int) -> t.List[t.Tuple[str, datetime.date]]:
    """``rows`` distinct (currency, day) keys: every currency on each day from 2015-01-01."""
    currencies = sorted(BASE_RATES)
    first = datetime.date(2015, 1, 1)
    return [
        (currencies[n % len(currencies)], first + datetime.timedelta(days=n // len(currencies)))
        for n in range(rows)
    ]


class Bench:
    """A DuckDB database holding ``t(currency, day)`` and ``limited`` (its first keys),
    DuckDB's own UDF on ``fetch_rate``, and a SQLMesh engine adapter on the same connection
    with the mixmesh functions bound."""

    def __init__(self, path: Path, rows: int, limited_rows: int, chosen: t.Sequence[Variant]) -> None:
        from sqlmesh.core.engine_adapter import DuckDBEngineAdapter

        sqlmesh_integration.install()
        self.connection = duckdb.connect(str(path))
        self.connection.execute("CREATE TABLE t (currency VARCHAR, day DATE)")
        self.connection.executemany("INSERT INTO t VALUES (?, ?)", keys(rows))
        self.connection.execute(f"CREATE TABLE limited AS SELECT * FROM t LIMIT {limited_rows}")
        self.connection.create_function("duckdb_rate", rates.fetch_rate, ["VARCHAR", "DATE"], "DOUBLE")
        rates.http_client()  # built once per process, before any variant is timed
        self.adapter = DuckDBEngineAdapter(lambda: self.connection)
        self.names: t.Dict[str, str] = {}
        for variant in chosen:
            if variant.function and variant.function not in self.names:
                function = udf(name=variant.function, **dict(variant.declared))(rates.fetch_rate)
                self.names[variant.function] = self._bind(function)

    def _bind(self, function: t.Any) -> str:
        name = binding_name(function.spec, "benchmark")
        engines.register_call(function.spec, "benchmark", name)
        return name

    def run(self, variant: Variant) -> float:
        table = "limited" if variant.limited else "t"
        if variant.function is None:
            return self.connection.execute(f"SELECT sum(duckdb_rate(currency, day)) FROM {table}").fetchone()[0]
        (total,) = self.adapter.fetchone(f"SELECT sum(CAST({self.names[variant.function]}(currency, day) AS DOUBLE)) FROM {table}")
        return total


def measure(
    bench: Bench, service: ExchangeRateService, chosen: t.Sequence[Variant], repeat: int, warmup: int
) -> t.Dict[str, t.Dict[str, t.List[t.Any]]]:
    """Every variant ``repeat`` times in order (a cache's first run before its second), with
    what the service counted during each run."""
    runs: t.Dict[str, t.Dict[str, t.List[t.Any]]] = {
        v.name: {key: [] for key in ("times", "cores", "memory", "sums", "requests", "max_in_flight", "arrivals")}
        for v in chosen
    }
    for round_ in range(-warmup + 1, repeat + 1):
        for variant in chosen:
            if variant.name == "mixmesh cache, first run":
                clear_cache(bench, variant)
            service.reset_counts()
            seconds, cores, memory, total = reporting.run_once(lambda: bench.run(variant))
            counted = service.stats(arrivals=variant.limited)
            if round_ < 1:
                continue  # a warmup round: not counted
            for key, value in (("times", seconds), ("cores", cores), ("memory", memory), ("sums", total),
                               ("requests", counted["requests"]), ("max_in_flight", counted["max_in_flight"]),
                               ("arrivals", counted.get("arrivals"))):
                runs[variant.name][key].append(value)
            print(f"  round {round_}/{repeat}  {variant.name:<30} {seconds:9.3f} s  {counted['requests']:>7,} requests  "
                  f"{counted['max_in_flight']:>4} in flight at most", flush=True)
    return runs


def clear_cache(bench: Bench, variant: Variant) -> None:
    """Empty the function's cache, so that its first run calls the service for every key."""
    from mixmesh.runtime.cache import use_warehouse

    use_warehouse(bench.connection).clear(variant.function)


def check_agreement(runs: t.Mapping[str, t.Mapping[str, t.Any]], chosen: t.Sequence[Variant]) -> None:
    """Variants over the same keys give the same sum of rates in every round, or exit."""
    for limited in (False, True):
        members = [v.name for v in chosen if v.limited is limited]
        if not members:
            continue
        reference = runs[members[0]]["sums"][0]
        for name in members:
            for total in runs[name]["sums"]:
                if total is None or not math.isclose(total, reference, rel_tol=REL_TOL):
                    sys.exit(f"RESULTS DISAGREE: {name} gave {total!r}, {members[0]} gave {reference!r}")


def per_second(rate_limit: str) -> float:
    """A limit such as "200/s", "600/min" or "2.5/s" as calls per second."""
    amount, _, unit = rate_limit.partition("/")
    return float(amount) / {"s": 1, "min": 60, "h": 3600}[unit]


def summarize(
    runs: t.Mapping[str, t.Mapping[str, t.Any]], chosen: t.Sequence[Variant], rows: int, limited_rows: int, rate_limit: str
) -> t.Dict[str, t.Any]:
    medians = {name: statistics.median(run["times"]) for name, run in runs.items()}
    table = [
        {
            "variant": v.name,
            "function": v.function or "duckdb_rate",
            "declared": {key: value for key, value in v.declared},
            "rows": limited_rows if v.limited else rows,
            "seconds_median": medians[v.name],
            "seconds_all": runs[v.name]["times"],
            "rows_per_second": (limited_rows if v.limited else rows) / medians[v.name],
            "cores_busy": statistics.median(runs[v.name]["cores"]),
            "memory_added_mb": max(runs[v.name]["memory"]),
            "requests": max(runs[v.name]["requests"]),
            "max_in_flight": max(runs[v.name]["max_in_flight"]),
            "in_flight_limit": v.in_flight_limit,
            "vs_duckdb_python_udf": _vs_peer(medians, v),
            "pace": pace(runs[v.name]["arrivals"][-1]) if v.limited else None,
            "result": runs[v.name]["sums"][0],
        }
        for v in chosen
    ]
    return {"variants": table, "bars": bars(table, rate_limit)}


def _vs_peer(medians: t.Mapping[str, float], variant: Variant) -> t.Optional[float]:
    """How many times as fast as DuckDB's own UDF (over the same keys; None otherwise)."""
    peer = "duckdb python UDF"
    if variant.limited or peer not in medians:
        return None
    return medians[peer] / medians[variant.name]


def bars(table: t.Sequence[t.Mapping[str, t.Any]], rate_limit: str) -> t.List[t.Dict[str, t.Any]]:
    by_name = {v["variant"]: v for v in table}
    found = []

    def ratio(faster: str, slower: str, goal: float) -> None:
        if faster in by_name and slower in by_name:
            value = by_name[slower]["seconds_median"] / by_name[faster]["seconds_median"]
            found.append({"variant": faster, "compared_with": slower, "times_faster": value,
                          "bar": f"at least {goal:g}x faster", "met": value >= goal})

    ratio(f"mixmesh concurrency={CONCURRENCY}", "mixmesh concurrency=1", CONCURRENCY_BAR)
    ratio("mixmesh cache, second run", "mixmesh cache, first run", CACHE_BAR)
    if "mixmesh cache, second run" in by_name:
        requests = by_name["mixmesh cache, second run"]["requests"]
        found.append({"variant": "mixmesh cache, second run", "requests": requests, "bar": "0 requests", "met": requests == 0})
    over = [v["variant"] for v in table if v["max_in_flight"] > v["in_flight_limit"]]
    found.append({"variant": "every variant", "most_in_flight": max((v["max_in_flight"] for v in table), default=0),
                  "bar": "never above the variant's concurrency", "over": over, "met": not over})
    limited = f"mixmesh rate limit {rate_limit}"
    if limited in by_name and by_name[limited]["pace"]:
        pace, limit = by_name[limited]["pace"], per_second(rate_limit)
        found.append({"variant": limited, **pace, "limit_per_second": limit,
                      "bar": f"within {RATE_TOLERANCE:.0%} of the limit: the busiest second at most "
                             f"{1 + RATE_TOLERANCE:g}x the limit, the whole run at least {1 - RATE_TOLERANCE:g}x",
                      "met": pace["busiest_second"] <= (1 + RATE_TOLERANCE) * limit
                      and pace["achieved_per_second"] >= (1 - RATE_TOLERANCE) * limit})
    return found


def pace(arrivals: t.Optional[t.Sequence[float]]) -> t.Optional[t.Dict[str, float]]:
    """How fast requests arrived: on average from the first to the last, and the most that
    arrived within any one second."""
    if not arrivals or len(arrivals) < 2:
        return None
    times = sorted(arrivals)
    busiest, first = 0, 0
    for last, arrived in enumerate(times):
        while arrived - times[first] >= 1.0:
            first += 1
        busiest = max(busiest, last - first + 1)
    return {"achieved_per_second": (len(times) - 1) / (times[-1] - times[0]), "busiest_second": busiest}


def print_table(summary: t.Mapping[str, t.Any], latency_ms: float) -> None:
    print(f"\nsum(rate(currency, day)) over distinct keys, the service answering after {latency_ms:g} ms")
    header = (f"{'variant':<30} {'rows':>7} {'seconds':>9} {'rows/s':>9} {'requests':>9} {'in flight':>10} "
              f"{'cores':>6} {'vs duckdb UDF':>14}")
    print(header)
    print("-" * len(header))
    for v in summary["variants"]:
        print(f"{v['variant']:<30} {v['rows']:>7,} {v['seconds_median']:>9.3f} {v['rows_per_second']:>9,.0f} "
              f"{v['requests']:>9,} {v['max_in_flight']:>10} {v['cores_busy']:>6.2f} "
              f"{'' if v['vs_duckdb_python_udf'] is None else format(v['vs_duckdb_python_udf'], '.1f') + 'x':>14}")
    print()
    for bar in summary["bars"]:
        verdict = "MET" if bar["met"] else "NOT MET"
        if "times_faster" in bar:
            print(f"  {bar['variant']} vs {bar['compared_with']}: {bar['times_faster']:.1f}x ({bar['bar']}) -> {verdict}")
        elif "achieved_per_second" in bar:
            print(f"  {bar['variant']}: {bar['achieved_per_second']:.1f} calls/s from the first to the last, "
                  f"{bar['busiest_second']} in the busiest second, for a limit of {bar['limit_per_second']:g}/s "
                  f"({bar['bar']}) -> {verdict}")
        elif "requests" in bar:
            print(f"  {bar['variant']}: {bar['requests']} requests ({bar['bar']}) -> {verdict}")
        else:
            print(f"  most calls in flight: {bar['most_in_flight']} ({bar['bar']}) -> {verdict}")


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="distinct keys looked up (default 10,000)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the service's latency (default 20 ms)")
    parser.add_argument("--rate-limit", default="200/s", help="the rate-limited variant's limit (default 200/s)")
    parser.add_argument("--limited-rows", type=int, default=1_000, help="keys the rate-limited variant looks up (default 1,000)")
    parser.add_argument("--only", nargs="+", choices=GROUPS, default=list(GROUPS),
                        help="the variants to run (default all): peer, one (concurrency=1), many "
                             f"(concurrency={CONCURRENCY}), cache (its two runs), limit")
    reporting.add_measuring_arguments(parser, "external_calls", repeat=1)
    parser.set_defaults(warmup=0)
    return parser.parse_args(argv)


def main(argv: t.Optional[t.Sequence[str]] = None) -> None:
    import tempfile

    args = parse_args(argv)
    chosen = variants(args.rate_limit, args.only)
    limited_rows = min(args.limited_rows, args.rows)
    with tempfile.TemporaryDirectory() as folder, ExchangeRateService(latency_ms=args.latency_ms) as service:
        os.environ[rates.URL_VARIABLE] = service.url
        print(f"{args.rows:,} keys; the service at {service.url} answers after {args.latency_ms:g} ms", flush=True)
        bench = Bench(Path(folder) / "warehouse.duckdb", args.rows, limited_rows, chosen)
        runs = measure(bench, service, chosen, args.repeat, args.warmup)
        bench.connection.close()
    check_agreement(runs, chosen)
    print("results agree: every variant gives DuckDB's own UDF's sum of rates")
    summary = summarize(runs, chosen, args.rows, limited_rows, args.rate_limit)
    print_table(summary, args.latency_ms)
    reporting.write_json(
        {
            "question": "a function calling an HTTP service: one call at a time, calls in flight, a cache, a rate limit",
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "rows": args.rows,
            "limited_rows": limited_rows,
            "latency_ms": args.latency_ms,
            "rate_limit": args.rate_limit,
            "repeat": args.repeat,
            "warmup_rounds": args.warmup,
            "query": "SELECT sum(<rate>(currency, day)) FROM t",
            "machine": reporting.machine_info("duckdb", "sqlmesh", "mixmesh", "urllib3", "aiohttp", "pyrate-limiter"),
            "peak_rss_mb": round(reporting.peak_rss_mb(), 1),
            **summary,
        },
        "external_calls",
        args.out,
    )


if __name__ == "__main__":
    main()
