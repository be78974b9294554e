"""The benchmarks still run (tiny sizes; the figures come from full runs, never from tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_udf_throughput_runs_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "udf_throughput.json"
    command = [sys.executable, str(BENCHMARKS / "udf_throughput.py"), "--rows", "20000", "--repeat", "1", "--warmup", "0", "--out", str(out)]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "results agree" in printed and "mixmesh row vs duckdb row UDF" in printed
    report = json.loads(out.read_text())
    assert {v["variant"] for v in report["variants"]} >= {
        "mixmesh row", "mixmesh row, processes", "mixmesh vectorized", "duckdb arrow UDF", "heavy, N threads"
    }
    assert all(v["rows_per_second"] > 0 and v["cores_busy"] > 0 and v["memory_added_mb"] >= 0 for v in report["variants"])
    assert {bar["compared_with"] for bar in report["bars"]} >= {"duckdb arrow UDF", "duckdb native UDF", "native SQL"}



def test_timeout_overhead_runs_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "timeout_overhead.json"
    command = [
        sys.executable, str(BENCHMARKS / "timeout_overhead.py"), "--rows", "5000", "--repeat", "1", "--warmup", "0",
        "--out", str(out),
    ]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
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
    out = tmp_path / "python_model_io.json"
    command = [
        sys.executable, str(BENCHMARKS / "python_model_io.py"),
        "--rows", "20000", "--repeat", "1", "--batch-rows", "5000", "--out", str(out),
    ]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "mixmesh streaming" in printed
    report = json.loads(out.read_text())
    assert {v["variant"] for v in report["variants"]} == {"plain SQLMesh", "mixmesh pandas", "mixmesh streaming"}


def test_risk_scoring_runs_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "risk_scoring.json"
    command = [
        sys.executable, str(BENCHMARKS / "risk_scoring.py"),
        "--customers", "200", "--transactions", "2000", "--days", "3", "--out", str(out),
    ]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "results agree" in printed and "seed seconds / mixmesh seconds" in printed
    report = json.loads(out.read_text())
    assert {v["variant"] for v in report["variants"]} == {"mixmesh", "mixmesh-plain", "seed"}
    assert [v["fast_path"] for v in report["variants"]] == [True, False, False]
    assert report["equal_results"]["customer_days"] > 0 and report["equal_results"]["max_difference"] <= 1e-12
    assert all(v["rows_per_second"] > 0 and v["peak_rss_mb"] > 0 for v in report["variants"])


@pytest.mark.slow
def test_spark_udf_runs_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "spark_udf.json"
    command = [
        sys.executable, str(BENCHMARKS / "spark_udf.py"), "--rows", "20000", "--repeat", "1", "--warmup", "0",
        "--out", str(out),
    ]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "results agree" in printed and "mixmesh vectorized throughput / spark pandas_udf" in printed
    report = json.loads(out.read_text())
    assert {v["variant"] for v in report["variants"]} >= {"mixmesh vectorized", "spark pandas_udf", "native SQL"}
    assert report["bar"]["mixmesh"] == "mixmesh vectorized" and report["bar"]["spark"] == "spark pandas_udf"


def test_ltv_features_runs_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "ltv_features.json"
    command = [sys.executable, str(BENCHMARKS / "ltv_features.py"), "--quick", "--out", str(out)]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
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


def test_nested_conversion_runs_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "nested_conversion.json"
    command = [
        sys.executable, str(BENCHMARKS / "nested_conversion.py"), "--customers", "2000", "--repeat", "1", "--warmup", "0",
        "--out", str(out),
    ]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
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
