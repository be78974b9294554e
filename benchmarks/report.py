"""One report of the ratios the benchmarks exist for, read from the JSON they wrote.

Every ratio compares two variants measured side by side in one run of one benchmark, read
from ``benchmarks/results/<benchmark>.json``:

  vectorized_vs_arrow_udf   udf_throughput: "duckdb arrow UDF" seconds / "mixmesh vectorized"
                            seconds (higher is better; goal: hold at least 25x)
  row_vs_native_udf         udf_throughput: "duckdb row UDF" (DuckDB's native UDF on the same
                            function) / "mixmesh row" (parallel="auto", the default); goal at least 1.6x
  document_shape            risk_scoring: the document's ARRAY_AGG(STRUCT ...) shape, then a
                            vectorized function: "mixmesh-plain" (fast path off) seconds /
                            "mixmesh" seconds; goal at least 1.3x
  fast_path_never_slower    the worst "plain seconds / fast path seconds" of every pair in
                            udf_throughput ("mixmesh vectorized" vs "mixmesh vectorized,
                            plain"), timeout_overhead ("<policy>, fast path[ + timeout]" vs
                            "<policy>, plain[ + timeout]") and risk_scoring where the default
                            took the fast path; goal at least 1.0x. Pairs where the cost rule
                            chose the plain binding (the same code on both sides) are listed
                            with their ratio, the run's noise
  nested_row_vs_native_udf  nested_conversion: a row function over LIST<STRUCT> arguments,
                            "duckdb native UDF" seconds_median / "mixmesh row" seconds_median;
                            goal at least 1.5x. Expected file: benchmarks/results/
                            nested_conversion.json with ``variants`` (a list of objects with
                            ``variant`` and ``seconds_median``, the two names above),
                            ``machine`` (``reporting.machine_info``) and ``timestamp_utc``
  streaming_rss             python_model_io: "mixmesh streaming" peak_rss_mb / "plain SQLMesh"
                            peak_rss_mb (lower is better); goal at most 0.45x
  monitoring_overhead       monitor_overhead: the worst model's "ratio", the median of its
                            rounds' on/off ratios (lower is better); goal at most 1.02x (2%)
  calls_in_flight           external_calls: a function calling an HTTP service (20 ms),
                            "mixmesh concurrency=1" seconds_median / "mixmesh
                            concurrency=64" seconds_median; goal at least 30x
  cached_second_run         external_calls: "mixmesh cache, first run" seconds_median /
                            "mixmesh cache, second run" seconds_median; goal at least 100x

A ratio whose file is missing, or whose file lacks a variant or figure it needs, is
reported as "not measured" with the reason; nothing is filled in. Each row names the
benchmark and the variants it comes from, when that benchmark ran and the machine and
versions it recorded.

It writes ``benchmarks/results/report.json`` and ``benchmarks/results/report.md`` and
prints the Markdown. ``benchmarks/compare.py`` compares report.json with an earlier one.

Run from the repository root, after the benchmarks (``make benchmark`` does both)::

    .venv/bin/python benchmarks/report.py
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import typing as t
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

HIGHER = "higher"
LOWER = "lower"

Report = t.Mapping[str, t.Any]


class NotMeasured(Exception):
    """A ratio's benchmark has not run, or its JSON lacks a figure the ratio needs."""


@dataclasses.dataclass(frozen=True)
class Measured:
    value: float
    benchmark: str
    variants: str


@dataclasses.dataclass(frozen=True)
class Ratio:
    key: str
    name: str
    goal: float
    better: str
    benchmarks: t.Tuple[str, ...]
    measure: t.Callable[[t.Mapping[str, Report]], Measured]

    def goal_text(self) -> str:
        return f"{'≥' if self.better == HIGHER else '≤'} {self.goal:g}x"

    def met(self, value: float) -> bool:
        return value >= self.goal if self.better == HIGHER else value <= self.goal


# Reading the benchmarks' JSON -------------------------------------------------------------


def result(results: t.Mapping[str, Report], benchmark: str) -> Report:
    if benchmark not in results:
        raise NotMeasured(f"benchmarks/results/{benchmark}.json not found: run benchmarks/{benchmark}.py")
    return results[benchmark]


def variant(results: t.Mapping[str, Report], benchmark: str, name: str) -> Report:
    for found in result(results, benchmark).get("variants", []):
        if found.get("variant") == name:
            return found
    raise NotMeasured(f"{benchmark}.json has no variant {name!r}")


def figure(row: Report, key: str, benchmark: str) -> float:
    value = row.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        label = row.get("variant") or row.get("model") or "its table"
        raise NotMeasured(f"{benchmark}.json lacks a positive {key!r} for {label!r}")
    return float(value)


def seconds_ratio(results: t.Mapping[str, Report], benchmark: str, slower: str, faster: str, key: str) -> Measured:
    """``slower`` variant's time over ``faster``'s: how many times as fast ``faster`` is."""
    numerator = figure(variant(results, benchmark, slower), key, benchmark)
    denominator = figure(variant(results, benchmark, faster), key, benchmark)
    return Measured(numerator / denominator, benchmark, f"{faster} vs {slower}")


# The ratios -------------------------------------------------------------------------------


def vectorized_vs_arrow_udf(results: t.Mapping[str, Report]) -> Measured:
    return seconds_ratio(results, "udf_throughput", "duckdb arrow UDF", "mixmesh vectorized", "seconds_median")


def row_vs_native_udf(results: t.Mapping[str, Report]) -> Measured:
    return seconds_ratio(results, "udf_throughput", "duckdb row UDF", "mixmesh row", "seconds_median")


def document_shape(results: t.Mapping[str, Report]) -> Measured:
    measured = seconds_ratio(results, "risk_scoring", "mixmesh-plain", "mixmesh", "seconds")
    default = variant(results, "risk_scoring", "mixmesh")
    if took_the_plain_binding(default):
        return dataclasses.replace(measured, variants=f"{measured.variants} (the cost rule chose the plain binding)")
    if default.get("rewritten") and not default.get("fast_path"):
        return dataclasses.replace(
            measured, variants=f"{measured.variants} (the plain binding, on the statement with its lists sorted)"
        )
    return measured


def nested_row_vs_native_udf(results: t.Mapping[str, Report]) -> Measured:
    return seconds_ratio(results, "nested_conversion", "duckdb native UDF", "mixmesh row", "seconds_median")


def streaming_rss(results: t.Mapping[str, Report]) -> Measured:
    streaming = figure(variant(results, "python_model_io", "mixmesh streaming"), "peak_rss_mb", "python_model_io")
    plain = figure(variant(results, "python_model_io", "plain SQLMesh"), "peak_rss_mb", "python_model_io")
    return Measured(streaming / plain, "python_model_io", "mixmesh streaming vs plain SQLMesh")


def monitoring_overhead(results: t.Mapping[str, Report]) -> Measured:
    models = result(results, "monitor_overhead").get("results") or []
    if not models:
        raise NotMeasured("monitor_overhead.json has no per-model results")
    ratios = {model.get("model", "?"): figure(model, "ratio", "monitor_overhead") for model in models}
    worst = max(ratios, key=ratios.__getitem__)
    return Measured(ratios[worst], "monitor_overhead", f"{worst}: monitoring on vs off (worst model)")


def calls_in_flight(results: t.Mapping[str, Report]) -> Measured:
    return seconds_ratio(results, "external_calls", "mixmesh concurrency=1", "mixmesh concurrency=64", "seconds_median")


def cached_second_run(results: t.Mapping[str, Report]) -> Measured:
    return seconds_ratio(results, "external_calls", "mixmesh cache, first run", "mixmesh cache, second run", "seconds_median")


FAST_PATH_PAIRS: t.Tuple[t.Tuple[str, str, str, str], ...] = (
    ("udf_throughput", "mixmesh vectorized, plain", "mixmesh vectorized", "seconds_median"),
    ("risk_scoring", "mixmesh-plain", "mixmesh", "seconds"),
    *(
        ("timeout_overhead", f"{policy}, plain{timeout}", f"{policy}, fast path{timeout}", "seconds_median")
        for policy in ("no policy", "on_error=null", "retry+on_error")
        for timeout in ("", " + timeout")
    ),
)


def fast_path_never_slower(results: t.Mapping[str, Report]) -> Measured:
    """The worst fast path vs plain binding pair among those where the default (the cost rule)
    took the fast path; not measured only when no pair is. A pair whose default recorded that
    the rule chose the plain binding runs the same code on both sides: its ratio is the noise of
    the run, named in the row but not taken as the fast path's."""
    measured, same_code, reasons = [], [], []
    for benchmark, plain, fast, key in FAST_PATH_PAIRS:
        try:
            pair = seconds_ratio(results, benchmark, plain, fast, key)
        except NotMeasured as missing:
            reasons.append(str(missing))
            continue
        (same_code if took_the_plain_binding(variant(results, benchmark, fast)) else measured).append(pair)
    if not measured:
        raise NotMeasured("; ".join(dict.fromkeys(reasons)) or "the cost rule chose the plain binding in every pair")
    worst = min(measured, key=lambda pair: pair.value)
    if not same_code:
        return worst
    noise = ", ".join(f"{pair.variants} {pair.value:.3f}x" for pair in same_code)
    return dataclasses.replace(worst, variants=f"{worst.variants}; the same code on both sides, as the cost rule "
                                                 f"chose the plain binding: {noise}")


def took_the_plain_binding(row: Report) -> bool:
    """Whether a default run recorded that the cost rule chose the plain binding on the statement
    as written (the same code as with the fast path off): ``took`` (why it went which way) and
    ``rewritten`` (what the engine ran faster than written), or risk_scoring's older
    ``fast_path``. A run that recorded neither counts as the fast path."""
    if row.get("rewritten"):
        return False
    took = row.get("took")
    if isinstance(took, str) and took:
        return took.startswith("plain binding")
    return row.get("fast_path") is False


RATIOS: t.Tuple[Ratio, ...] = (
    Ratio("vectorized_vs_arrow_udf", "vectorized function vs DuckDB's arrow UDF", 25.0, HIGHER,
          ("udf_throughput",), vectorized_vs_arrow_udf),
    Ratio("row_vs_native_udf", "row function (the default, parallel='auto') vs DuckDB's native UDF", 1.6, HIGHER,
          ("udf_throughput",), row_vs_native_udf),
    Ratio("document_shape", "the document's shape (ARRAY_AGG(STRUCT ...), vectorized): fast path vs plain binding",
          1.3, HIGHER, ("risk_scoring",), document_shape),
    Ratio("fast_path_never_slower", "fast path vs plain binding, worst pair", 1.0, HIGHER,
          ("udf_throughput", "risk_scoring", "timeout_overhead"), fast_path_never_slower),
    Ratio("nested_row_vs_native_udf", "row function over LIST<STRUCT> vs DuckDB's native UDF", 1.5, HIGHER,
          ("nested_conversion",), nested_row_vs_native_udf),
    Ratio("streaming_rss", "streaming Python model, peak RSS vs plain SQLMesh", 0.45, LOWER,
          ("python_model_io",), streaming_rss),
    Ratio("monitoring_overhead", "monitoring on vs off", 1.02, LOWER, ("monitor_overhead",), monitoring_overhead),
    Ratio("calls_in_flight", "HTTP calls (20 ms): 64 in flight vs one at a time", 30.0, HIGHER,
          ("external_calls",), calls_in_flight),
    Ratio("cached_second_run", "HTTP calls: the cache's second run vs its first", 100.0, HIGHER,
          ("external_calls",), cached_second_run),
)


# The report -------------------------------------------------------------------------------


def load_results(folder: Path) -> t.Dict[str, Report]:
    """Every benchmark's JSON in ``folder`` by benchmark name (the report's own left out)."""
    return {
        path.stem: json.loads(path.read_text())
        for path in sorted(folder.glob("*.json"))
        if path.stem != "report"
    }


def measured_at(report: Report) -> t.Optional[str]:
    return report.get("timestamp_utc") or report.get("measured_at")


SIZE_KEYS = ("rows", "sizes", "customers", "transactions", "days", "batch_rows", "repeat")


def run_size(report: Report) -> t.Dict[str, t.Any]:
    """How big the run was (rows, repeats...): a quick run's ratios differ from a full one's."""
    return {key: report[key] for key in SIZE_KEYS if key in report}


def row(ratio: Ratio, results: t.Mapping[str, Report]) -> t.Dict[str, t.Any]:
    common = {"key": ratio.key, "name": ratio.name, "goal": ratio.goal, "goal_text": ratio.goal_text(),
              "better": ratio.better}
    try:
        found = ratio.measure(results)
    except NotMeasured as missing:
        return {**common, "value": None, "met": None, "status": "not measured", "reason": str(missing),
                "benchmark": None, "variants": None, "measured_at": None, "machine": None}
    source = results[found.benchmark]
    met = ratio.met(found.value)
    return {**common, "value": found.value, "met": met, "status": "met" if met else "not met", "reason": None,
            "benchmark": found.benchmark, "variants": found.variants, "measured_at": measured_at(source),
            "machine": source.get("machine")}


def build_report(results: t.Mapping[str, Report]) -> t.Dict[str, t.Any]:
    return {
        "generated_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "ratios": [row(ratio, results) for ratio in RATIOS],
        "benchmarks": {
            name: {"measured_at": measured_at(found), "size": run_size(found), "machine": found.get("machine")}
            for name, found in sorted(results.items())
        },
    }


def versions(machine: t.Optional[Report]) -> str:
    if not machine:
        return "not recorded"
    skip = {"platform", "machine", "cpu_count"}
    packages = ", ".join(f"{name} {version}" for name, version in machine.items() if name not in skip)
    return f"{machine.get('platform', '?')}, {machine.get('cpu_count', '?')} cores; {packages}"


def times(value: float) -> str:
    # Three decimals near 1x, where a 2% overhead would otherwise round away.
    return f"{value:.3f}x" if value < 10 else f"{value:.1f}x"


def markdown(report: Report) -> str:
    lines = [
        "| ratio | measured | goal | status | from |",
        "|---|---|---|---|---|",
    ]
    for found in report["ratios"]:
        if found["value"] is None:
            lines.append(f"| {found['name']} | not measured | {found['goal_text']} | not measured: {found['reason']} | |")
        else:
            source = f"{found['benchmark']}: {found['variants']}"
            lines.append(f"| {found['name']} | {times(found['value'])} | {found['goal_text']} | {found['status']} | {source} |")
    lines += ["", "| benchmark | measured at | size | machine and versions |", "|---|---|---|---|"]
    for name, found in report["benchmarks"].items():
        size = ", ".join(f"{key} {value:,}" if isinstance(value, int) else f"{key} {value}" for key, value in found["size"].items())
        lines.append(f"| {name} | {found['measured_at'] or 'not recorded'} | {size} | {versions(found['machine'])} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="the benchmarks' JSON (default benchmarks/results)")
    parser.add_argument("--out", type=Path, help="the folder for report.json and report.md (default: --results)")
    return parser.parse_args(argv)


def main(argv: t.Optional[t.Sequence[str]] = None) -> None:
    args = parse_args(argv)
    report = build_report(load_results(args.results))
    out = args.out or args.results
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    table = markdown(report)
    (out / "report.md").write_text(table)
    print(table)
    print(f"wrote {out / 'report.json'} and {out / 'report.md'}")


if __name__ == "__main__":
    main()
