"""The benchmarks still run (tiny sizes; the figures come from full runs, never from tests)."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(tmp_path: Path, name: str, *arguments: str) -> t.Tuple[str, Path]:
    """``benchmarks/<name>.py`` run at a small size: what it printed, and its JSON file."""
    out = tmp_path / f"{name}.json"
    command = [sys.executable, str(BENCHMARKS / f"{name}.py"), *arguments, "--out", str(out)]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout, out


def test_udf_throughput_runs_and_writes_its_table(tmp_path: Path) -> None:
    printed, out = run_benchmark(tmp_path, "udf_throughput", "--rows", "20000", "--repeat", "1", "--warmup", "0")
    assert "results agree" in printed and "mixmesh row vs duckdb row UDF" in printed
    report = json.loads(out.read_text())
    assert {v["variant"] for v in report["variants"]} >= {
        "mixmesh row", "mixmesh row, processes", "mixmesh vectorized", "duckdb arrow UDF", "heavy, N threads"
    }
    assert all(v["rows_per_second"] > 0 and v["cores_busy"] > 0 and v["memory_added_mb"] >= 0 for v in report["variants"])
    assert {bar["compared_with"] for bar in report["bars"]} >= {"duckdb arrow UDF", "duckdb native UDF", "native SQL"}



def test_timeout_overhead_runs_and_writes_its_table(tmp_path: Path) -> None:
    printed, out = run_benchmark(tmp_path, "timeout_overhead", "--rows", "5000", "--repeat", "1", "--warmup", "0")
    assert "results agree" in printed and "with timeout / without" in printed
    report = json.loads(out.read_text())
    assert {v["variant"] for v in report["variants"]} == {"duckdb native UDF"} | {
        f"{policy}, {path}{timeout}"
        for policy in ("no policy", "on_error=null", "retry+on_error")
        for path in ("fast path", "plain")
        for timeout in ("", " + timeout")
    }
    assert all(v["rows_per_second"] > 0 and v["memory_added_mb"] >= 0 for v in report["variants"])
    assert {(r["policy"], r["path"]) for r in report["ratios"]} == {
        (policy, path) for policy in ("no policy", "on_error=null", "retry+on_error") for path in ("fast path", "plain")
    }
    assert all(r["ratio"] > 0 and r["bar"] == "at most 1.5x" for r in report["ratios"])

def test_python_model_io_runs_and_writes_its_table(tmp_path: Path) -> None:
    printed, out = run_benchmark(tmp_path, "python_model_io", "--rows", "20000", "--repeat", "1", "--batch-rows", "5000")
    assert "mixmesh streaming" in printed
    report = json.loads(out.read_text())
    assert {v["variant"] for v in report["variants"]} == {"plain SQLMesh", "mixmesh pandas", "mixmesh streaming"}


def test_risk_scoring_runs_and_writes_its_table(tmp_path: Path) -> None:
    printed, out = run_benchmark(tmp_path, "risk_scoring", "--customers", "200", "--transactions", "2000", "--days", "3")
    assert "results agree" in printed and "seed seconds / mixmesh seconds" in printed
    report = json.loads(out.read_text())
    assert {v["variant"] for v in report["variants"]} == {"mixmesh", "mixmesh-plain", "seed"}
    # The default cost rule (MIXMESH_FAST_PATH=auto) sends the document's shape, nested lists to
    # a vectorized function, to the plain binding (tests/test_fast_path_choice.py), on the
    # statement with its ARRAY_AGG(... ORDER BY ...) built by sorting each list (test_ordered_lists.py).
    assert [(v["fast_path"], v["rewritten"]) for v in report["variants"]] == [
        (False, "1 ordered list aggregate built by sorting each list"), (False, ""), (False, "")]
    assert report["variants"][1]["took"] == "MIXMESH_FAST_PATH is off" and report["variants"][2]["took"] == ""
    assert "plain binding, lists sorted" in printed
    assert report["equal_results"]["customer_days"] > 0 and report["equal_results"]["max_difference"] <= 1e-12
    assert all(v["rows_per_second"] > 0 and v["peak_rss_mb"] > 0 for v in report["variants"])


def test_ordered_lists_runs_and_writes_its_table(tmp_path: Path) -> None:
    printed, out = run_benchmark(tmp_path, "ordered_lists", "--rows", "20000", "--repeat", "1", "--warmup", "0")
    assert "results agree" in printed
    report = json.loads(out.read_text())
    by_size = {row["rows_per_group"]: row for row in report["results"]}
    # The rule sorts the smallest groups and keeps one group as written.
    assert by_size[2]["rule_sorts"] and not by_size[20000]["rule_sorts"]
    assert all(row["written_s"] > 0 and row["sorted_s"] > 0 for row in report["results"])


@pytest.mark.slow
def test_spark_udf_runs_and_writes_its_table(tmp_path: Path) -> None:
    printed, out = run_benchmark(  # --setups local: the cluster column starts a cluster of its own
        tmp_path, "spark_udf", "--rows", "20000", "--repeat", "1", "--warmup", "0", "--setups", "local"
    )
    assert "results agree" in printed and "mixmesh vectorized throughput / spark pandas_udf" in printed
    report = json.loads(out.read_text())
    assert {v["variant"] for v in report["variants"]} >= {"mixmesh vectorized", "spark pandas_udf", "native SQL"}
    assert report["bar"]["mixmesh"] == "mixmesh vectorized" and report["bar"]["spark"] == "spark pandas_udf"


def test_ltv_features_runs_and_writes_its_table(tmp_path: Path) -> None:
    printed, out = run_benchmark(tmp_path, "ltv_features", "--quick")
    assert "results agree" in printed and "requirement: under 10 s" in printed
    report = json.loads(out.read_text())
    assert report["sizes"] == [3000, 30000] and report["repeat"] == 1
    assert {v["variant"] for v in report["variants"]} == {
        f"{step} {rows}" for step in ("features", "pipeline") for rows in ("3,000", "30,000")
    }
    assert all(v["seconds_median"] > 0 and v["rows_per_second"] > 0 and v["memory_added_mb"] >= 0 for v in report["variants"])
    assert [(g["step"], g["from_rows"], g["to_rows"], g["rows_ratio"]) for g in report["growth"]] == [
        ("features", 3000, 30000, 10.0), ("pipeline", 3000, 30000, 10.0)
    ]
    assert all(g["time_ratio"] > 0 for g in report["growth"])
    assert report["requirement"]["limit_seconds"] == 10.0 and report["requirement"]["seconds"] > 0
    assert set(report["machine"]) >= {"cpu_count", "python", "pandas", "numpy"}


# The report and the comparison: on fixture JSON written here, the shapes the benchmarks write.

MACHINE = {"platform": "Linux-test", "machine": "x86_64", "cpu_count": 2, "python": "3.11.7", "duckdb": "1.5.6"}


def fixture_results() -> t.Dict[str, t.Dict[str, t.Any]]:
    """Every benchmark's JSON, reduced to what the report reads, with round figures."""
    stamp = {"timestamp_utc": "2026-01-02T03:04:05+00:00", "machine": MACHINE}
    return {
        "udf_throughput": {**stamp, "variants": [
            {"variant": "duckdb arrow UDF", "seconds_median": 3.0},
            {"variant": "mixmesh vectorized", "seconds_median": 0.1},
            {"variant": "mixmesh vectorized, plain", "seconds_median": 0.2},
            {"variant": "duckdb row UDF", "seconds_median": 2.0},
            {"variant": "mixmesh row", "seconds_median": 1.0},
        ]},
        "risk_scoring": {**stamp, "variants": [
            {"variant": "mixmesh", "seconds": 1.0}, {"variant": "mixmesh-plain", "seconds": 0.8},
        ]},
        "timeout_overhead": {**stamp, "variants": [
            {"variant": f"{policy}, {path}{timeout}", "seconds_median": 1.0 if path == "plain" else 0.5}
            for policy in ("no policy", "on_error=null", "retry+on_error")
            for path in ("fast path", "plain")
            for timeout in ("", " + timeout")
        ]},
        "nested_conversion": {**stamp, "variants": [
            {"variant": "duckdb native UDF", "seconds_median": 3.0}, {"variant": "mixmesh row", "seconds_median": 1.5},
        ]},
        "python_model_io": {**stamp, "variants": [
            {"variant": "plain SQLMesh", "peak_rss_mb": 1000.0}, {"variant": "mixmesh streaming", "peak_rss_mb": 400.0},
        ]},
        "external_calls": {**stamp, "variants": [
            {"variant": "mixmesh concurrency=1", "seconds_median": 200.0},
            {"variant": "mixmesh concurrency=64", "seconds_median": 5.0},
            {"variant": "mixmesh cache, first run", "seconds_median": 5.0},
            {"variant": "mixmesh cache, second run", "seconds_median": 0.025},
        ]},
        "monitor_overhead": {"measured_at": "2026-01-02", "machine": MACHINE, "results": [
            # The ratio is the median of the rounds' ratios, not the ratio of the medians.
            {"model": "analytics.vectorized", "monitoring off s": 1.0, "monitoring on s": 1.03, "ratio": 1.01},
            {"model": "analytics.row", "monitoring off s": 1.0, "monitoring on s": 1.02, "ratio": 1.05},
        ]},
    }


def run_report(results: t.Mapping[str, t.Any], folder: Path) -> t.Tuple[str, t.Dict[str, t.Any]]:
    folder.mkdir()
    for name, report in results.items():
        (folder / f"{name}.json").write_text(json.dumps(report))
    command = [sys.executable, str(BENCHMARKS / "report.py"), "--results", str(folder)]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert (folder / "report.md").read_text() in printed
    return printed, json.loads((folder / "report.json").read_text())


def test_report_reads_every_ratio_from_a_full_set_of_results(tmp_path: Path) -> None:
    printed, report = run_report(fixture_results(), tmp_path / "results")
    rows = {row["key"]: row for row in report["ratios"]}
    assert {key: (round(row["value"], 6), row["met"]) for key, row in rows.items()} == {
        "vectorized_vs_arrow_udf": (30.0, True),
        "row_vs_native_udf": (2.0, True),
        "document_shape": (0.8, False),
        "fast_path_never_slower": (0.8, False),
        "nested_row_vs_native_udf": (2.0, True),
        "streaming_rss": (0.4, True),
        "monitoring_overhead": (1.05, False),
        "calls_in_flight": (40.0, True),
        "cached_second_run": (200.0, True),
    }
    assert rows["fast_path_never_slower"]["benchmark"] == "risk_scoring"
    assert rows["monitoring_overhead"]["variants"].startswith("analytics.row")
    assert rows["streaming_rss"]["better"] == "lower" and rows["streaming_rss"]["goal_text"] == "≤ 0.45x"
    assert all(row["machine"] == MACHINE and row["measured_at"].startswith("2026-01-02") for row in rows.values())
    assert set(report["benchmarks"]) == set(fixture_results())
    assert all(found["size"] == {} for found in report["benchmarks"].values())
    assert "| vectorized function vs DuckDB's arrow UDF | 30.0x | ≥ 25x | met | udf_throughput:" in printed
    assert "not measured" not in printed


def test_pairs_where_the_cost_rule_chose_the_plain_binding_are_named_not_taken_as_the_fast_paths(tmp_path: Path) -> None:
    results = fixture_results()
    results["risk_scoring"]["variants"][0]["fast_path"] = False  # 0.8x, but the plain binding on both sides
    for row in results["timeout_overhead"]["variants"]:
        if row["variant"].startswith("no policy, fast path"):
            row["took"], row["seconds_median"] = "plain binding: no call gains from large batches", 1.05
        elif ", fast path" in row["variant"]:
            row["took"] = "fast path"
    printed, report = run_report(results, tmp_path / "results")
    rows = {row["key"]: row for row in report["ratios"]}
    never_slower = rows["fast_path_never_slower"]
    assert (round(never_slower["value"], 6), never_slower["met"]) == (2.0, True)
    assert "the cost rule chose the plain binding: mixmesh vs mixmesh-plain 0.800x" in never_slower["variants"]
    assert "no policy, fast path vs no policy, plain 0.952x" in never_slower["variants"]
    assert "no policy, fast path + timeout vs no policy, plain + timeout 0.952x" in never_slower["variants"]
    assert rows["document_shape"]["value"] == 0.8 and rows["document_shape"]["variants"].endswith(
        "(the cost rule chose the plain binding)")


def test_a_default_whose_statement_ran_rewritten_is_measured_not_taken_for_noise(tmp_path: Path) -> None:
    # The plain binding on both sides, but the default's statement had its lists sorted: not the
    # same code, so its ratio counts, and the document's row says which way it ran.
    results = fixture_results()
    results["risk_scoring"]["variants"][0].update(
        fast_path=False, took="plain binding: no call gains from large batches: python_risk_score (...); "
        "1 ordered list aggregate built by sorting each list", rewritten="1 ordered list aggregate built by sorting each list")
    _, report = run_report(results, tmp_path / "results")
    rows = {row["key"]: row for row in report["ratios"]}
    assert rows["fast_path_never_slower"]["value"] == 0.8 and rows["fast_path_never_slower"]["benchmark"] == "risk_scoring"
    assert rows["document_shape"]["variants"].endswith("(the plain binding, on the statement with its lists sorted)")


def test_report_says_not_measured_and_why_when_results_are_missing(tmp_path: Path) -> None:
    results = fixture_results()
    del results["nested_conversion"], results["risk_scoring"]
    results["python_model_io"]["variants"].pop()  # no "mixmesh streaming"
    del results["monitor_overhead"]["results"][1]["ratio"]
    printed, report = run_report(results, tmp_path / "results")
    rows = {row["key"]: row for row in report["ratios"]}
    missing = {key: row["reason"] for key, row in rows.items() if row["status"] == "not measured"}
    assert missing == {
        "document_shape": "benchmarks/results/risk_scoring.json not found: run benchmarks/risk_scoring.py",
        "nested_row_vs_native_udf": "benchmarks/results/nested_conversion.json not found: run benchmarks/nested_conversion.py",
        "streaming_rss": "python_model_io.json has no variant 'mixmesh streaming'",
        "monitoring_overhead": "monitor_overhead.json lacks a positive 'ratio' for 'analytics.row'",
    }
    assert all(rows[key]["value"] is None and rows[key]["met"] is None for key in missing)
    # The other pairs still measure the fast path: the worst of them is 2x.
    assert rows["fast_path_never_slower"]["value"] == 2.0 and rows["fast_path_never_slower"]["benchmark"] == "udf_throughput"
    assert printed.count("| not measured |") == 4


def report_with(key: str, better: str, value: float) -> t.Dict[str, t.Any]:
    return {"ratios": [{"key": key, "name": key, "better": better, "value": value}]}


@pytest.mark.parametrize(
    ("better", "before", "now", "flagged"),
    [
        ("higher", 10.0, 6.9, True),  # fell 31%
        ("higher", 10.0, 7.1, False),  # fell 29%
        ("higher", 10.0, 20.0, False),
        ("lower", 0.5, 0.655, True),  # rose 31%
        ("lower", 0.5, 0.645, False),  # rose 29%
        ("lower", 0.5, 0.1, False),
    ],
)
def test_compare_flags_a_ratio_worse_by_more_than_30_percent(
    tmp_path: Path, better: str, before: float, now: float, flagged: bool
) -> None:
    earlier, current = tmp_path / "earlier.json", tmp_path / "current.json"
    earlier.write_text(json.dumps(report_with("ratio_x", better, before)))
    current.write_text(json.dumps(report_with("ratio_x", better, now)))
    command = [sys.executable, str(BENCHMARKS / "compare.py"), "--current", str(current), "--against", str(earlier)]
    lenient = subprocess.run(command, capture_output=True, text=True)
    strict = subprocess.run([*command, "--strict"], capture_output=True, text=True)
    assert lenient.returncode == 0
    assert ("WORSE by" in lenient.stdout) is flagged
    assert strict.returncode == (1 if flagged else 0)


def test_compare_shows_but_never_flags_a_ratio_not_measured(tmp_path: Path) -> None:
    earlier, current = tmp_path / "earlier.json", tmp_path / "current.json"
    earlier.write_text(json.dumps(report_with("ratio_x", "higher", 10.0)))
    current.write_text(json.dumps(report_with("ratio_x", "higher", None)))  # type: ignore[arg-type]
    command = [sys.executable, str(BENCHMARKS / "compare.py"), "--current", str(current), "--against", str(earlier), "--strict"]
    shown = subprocess.run(command, capture_output=True, text=True)
    assert shown.returncode == 0 and "not measured now" in shown.stdout


def test_nested_conversion_runs_and_writes_its_table(tmp_path: Path) -> None:
    printed, out = run_benchmark(tmp_path, "nested_conversion", "--customers", "2000", "--repeat", "1", "--warmup", "0")
    assert "results agree" in printed and "mixmesh row vs duckdb native UDF" in printed
    report = json.loads(out.read_text())
    assert [v["variant"] for v in report["variants"]] == [
        "to_pylist", "to_python", "duckdb native UDF", "mixmesh row, plain", "mixmesh row"
    ]
    assert report["customers"] == 2000 and report["orders"] > 2000
    assert all(v["seconds_median"] > 0 and v["structs_per_second"] > 0 for v in report["variants"])
    assert {(bar["variant"], bar["compared_with"]) for bar in report["bars"]} == {
        ("to_python", "to_pylist"), ("mixmesh row", "duckdb native UDF"), ("mixmesh row, plain", "duckdb native UDF")
    }


def test_external_calls_runs_and_writes_its_table(tmp_path: Path) -> None:
    printed, out = run_benchmark(tmp_path, "external_calls", "--rows", "300", "--latency-ms", "2", "--limited-rows", "60", "--rate-limit", "100/s")
    assert "results agree" in printed and "most calls in flight" in printed
    report = json.loads(out.read_text())
    by_name = {v["variant"]: v for v in report["variants"]}
    assert list(by_name) == [
        "duckdb python UDF", "mixmesh concurrency=1", "mixmesh concurrency=64", "mixmesh cache, first run",
        "mixmesh cache, second run", "mixmesh rate limit 100/s",
    ]
    assert report["rows"] == 300 and report["limited_rows"] == 60 and report["latency_ms"] == 2.0
    assert all(v["seconds_median"] > 0 and v["rows_per_second"] > 0 for v in report["variants"])
    # What the service counted: every key asked once, but none by the cache's second run.
    assert [v["requests"] for v in report["variants"]] == [300, 300, 300, 300, 0, 60]
    assert all(1 <= v["max_in_flight"] <= v["in_flight_limit"] for v in report["variants"] if v["requests"])
    assert by_name["mixmesh concurrency=1"]["max_in_flight"] == 1
    assert {bar["variant"] for bar in report["bars"]} >= {
        "mixmesh concurrency=64", "mixmesh cache, second run", "mixmesh rate limit 100/s", "every variant"
    }


def test_a_quick_variant_runs_again_within_its_round_when_asked(monkeypatch: t.Any) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import reporting

    variants = [type("Variant", (), {"name": name})() for name in ("quick", "also quick")]
    paired = reporting.measure(lambda variant: 1, variants, repeat=2, warmup=0, width=10)
    filled = reporting.measure(lambda variant: 1, variants, repeat=2, warmup=0, width=10, round_at_least_s=60.0)
    assert [len(paired[v.name]["times"]) for v in variants] == [2, 2]  # one run a round: paired by round
    assert [len(filled[v.name]["times"]) for v in variants] == [2 * reporting.QUICK_RUNS_MAX] * 2


def test_monitor_overhead_runs_and_gives_each_ratio_an_interval(tmp_path: Path) -> None:
    printed, out = run_benchmark(tmp_path, "monitor_overhead", "--rows", "2000", "--repeat", "3")
    assert "95% interval" in printed
    report = json.loads(out.read_text())
    assert [row["model"] for row in report["results"]] == ["analytics.vectorized", "analytics.row"]
    for row in report["results"]:
        low, high = row["ratio_95_interval"]
        assert 0 < low <= row["ratio"] <= high and len(row["ratio_per_round"]) == 3
        assert row["ratio"] == pytest.approx(sorted(row["ratio_per_round"])[1], abs=1e-4)  # the median round
        assert row["spool write per command s"] > 0  # the figures were written after each "on"


def test_the_monitoring_ratio_s_interval_comes_from_the_rounds(monkeypatch: t.Any) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import monitor_overhead

    off = [0.040, 0.050, 0.045, 0.041, 0.060]
    assert monitor_overhead.ratio_interval(off, off) == (1.0, 1.0)
    assert monitor_overhead.ratio_interval([2 * s for s in off], off) == pytest.approx((2.0, 2.0))
    low, high = monitor_overhead.ratio_interval([0.040, 0.052, 0.044, 0.043, 0.061], off)
    assert low < 1.0 < high  # rounds that disagree: an interval either side of no change
