"""The project gives the same rows whatever the machine's time zone.

DuckDB's TimeZone setting defaults to the machine's zone (TZ), and a TIMESTAMP compared with
a TIMESTAMPTZ is read in that zone: a model filtering its TIMESTAMP column with SQLMesh's
@start_dt/@end_dt (TIMESTAMPTZ) read the wrong hours outside UTC. Each build runs in a fresh
process with TZ set, since DuckDB takes the zone when it starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from mixmesh.cli.demo_data import generate
from mixmesh.testing import copy_project

PROJECT = Path(__file__).resolve().parents[2]
SQLMESH = str(Path(sys.executable).with_name("sqlmesh"))
# West and east of UTC, one with a half-hour offset.
ZONES = ("America/New_York", "Asia/Kolkata")
BUILD = (
    "import sys; from sqlmesh import Context; context = Context(paths=sys.argv[1]); "
    "context.plan(auto_apply=True, no_prompts=True, execution_time=sys.argv[2]); context.close()"
)
# Each model's rows, without the columns that hold when it ran rather than what it computed.
MODELS = {
    "customer_risk_scoring": "",
    "customer_ltv_prediction": "EXCLUDE (prediction_timestamp)",
    "real_time_personalization": "EXCLUDE (processed_at)",
}


def build(destination: Path, zone: str) -> dict:
    copy = destination / "customer_analytics"
    copy_project(PROJECT, copy, leave_out=("artifacts", "tests"))
    with duckdb.connect(str(copy / "demo.duckdb")) as connection:
        generate(connection, customers=100, transactions=3_000, events=1_500, days=3, end_date="2024-01-03")
    result = subprocess.run(
        [sys.executable, "-c", BUILD, str(copy), "2024-01-04"],
        cwd=copy, env={**os.environ, "TZ": zone}, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with duckdb.connect(str(copy / "demo.duckdb"), read_only=True) as connection:
        return {model: connection.sql(f"SELECT * {exclude} FROM analytics.{model} ORDER BY ALL").fetchall() for model, exclude in MODELS.items()}


@pytest.fixture(scope="module")
def in_utc(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build(tmp_path_factory.mktemp("UTC"), "UTC")


@pytest.mark.parametrize("zone", ZONES)
def test_every_model_gives_the_same_rows_as_in_utc(in_utc: dict, zone: str, tmp_path: Path) -> None:
    rows = build(tmp_path, zone)
    assert all(in_utc.values())
    for model, expected in in_utc.items():
        assert rows[model] == expected, f"analytics.{model} differs in {zone}: {len(rows[model])} rows, {len(expected)} in UTC"


@pytest.mark.parametrize("zone", ZONES)
def test_yaml_tests_pass_in_another_time_zone(zone: str) -> None:
    result = subprocess.run([SQLMESH, "test"], cwd=PROJECT, env={**os.environ, "TZ": zone}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
