"""`mixmesh demo DIR --dirty 0.05`: the whole example built from flawed data, from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

MIXMESH = str(Path(sys.executable).with_name("mixmesh"))
SMALL = ["--customers", "100", "--transactions", "3000", "--events", "1000", "--days", "3"]

pytestmark = pytest.mark.slow


def test_the_demo_builds_every_model_from_dirty_data(tmp_path: Path) -> None:
    project = tmp_path / "dirty"
    result = subprocess.run(
        [MIXMESH, "demo", str(project), *SMALL, "--dirty", "0.05"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    assert "100 customers, 3,000 transactions, 1,000 web events over 3 days (2024-01-01 to 2024-01-03), seed 42, dirty 0.05" in output
    assert output.count("1 batch(es)") == 3
    assert "Risk tiers" in output and "Session types" in output and "ML models:" in output
    with duckdb.connect(str(project / "demo.duckdb"), read_only=True) as connection:

        def scalar(sql: str) -> object:
            return connection.execute(sql).fetchone()[0]

        # The flaws are in the sources: duplicates, NULL keys, late rows, Unicode merchants.
        assert scalar("SELECT count(*) FROM raw.raw_transactions") == 3_150
        assert scalar("SELECT count(*) FROM raw.raw_events") == 1_050
        assert scalar("SELECT count(*) FROM raw.raw_transactions WHERE customer_id IS NULL") > 0
        assert scalar("SELECT count(*) FROM raw.raw_transactions WHERE CAST(transaction_time AS DATE) < transaction_date") > 0
        assert scalar("SELECT count(*) FROM raw.raw_transactions WHERE NOT merchant_category ~ '^[a-z_]+$'") > 0
        # ... and every model was built from them, up to the period's last day.
        for model, time_column in (
            ("customer_risk_scoring", "score_date"),
            ("customer_ltv_prediction", "prediction_date"),
            ("real_time_personalization", "CAST(session_start AS DATE)"),
        ):
            assert str(scalar(f"SELECT max({time_column}) FROM analytics.{model}")) == "2024-01-03", model
