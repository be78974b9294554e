"""The benchmarks still run (tiny sizes; the figures come from full runs, never from tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_udf_throughput_runs_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "udf_throughput.json"
    command = [sys.executable, str(BENCHMARKS / "udf_throughput.py"), "--rows", "20000", "--repeat", "1", "--warmup", "0", "--out", str(out)]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "results agree" in printed and "mixmesh row / duckdb row UDF" in printed
    report = json.loads(out.read_text())
    assert {v["variant"] for v in report["variants"]} >= {"mixmesh row", "mixmesh vectorized", "duckdb row UDF"}
    assert all(v["rows_per_second"] > 0 for v in report["variants"])


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
