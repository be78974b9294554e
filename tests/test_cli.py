"""The mixmesh command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mixmesh

MIXMESH = str(Path(sys.executable).with_name("mixmesh"))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([MIXMESH, *args], capture_output=True, text=True, cwd=cwd, check=True)


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"mixmesh, version {mixmesh.__version__}"
    assert "demo" in run("--help").stdout


@pytest.mark.slow
def test_demo_builds_the_example_and_prints_a_summary(tmp_path: Path) -> None:
    output = run("demo", "--dir", "example", cwd=tmp_path).stdout
    assert "analytics.customer_risk_scoring: 200 customers scored by python_risk_score" in output
    assert "risk tier" in output and "Highest risk:" in output
    assert (tmp_path / "example" / "demo.duckdb").exists()
    config = (tmp_path / "example" / "config.yaml").read_text()
    assert "disable_anonymized_analytics: true" in config

    rerun = run("demo", "--dir", "example", cwd=tmp_path).stdout  # idempotent: nothing to backfill
    assert "200 customers" in rerun
