"""The LTV model's declared resilience, driven through SQLMesh: a transient failure of its SQL
source is retried after the seed's first backoff (1 s); trained models that cannot be loaded
give the rule-based predictions for the whole interval. In a copy of the project, without
trained models; the transient failure is written into the copy's code: the first read of
the source raises ConnectionError while a marker file exists, and removes it."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

from mixmesh.cli.demo_data import generate
from mixmesh.testing import copy_project
from mixmesh.resilience import events, reset_events

PROJECT = Path(__file__).resolve().parents[2]
MODEL = "analytics.customer_ltv_prediction"
FLAKY_READ = '''
def extract_customer_features(context, start_date, end_date) -> pd.DataFrame:
    """Extract customer features using optimized SQL queries."""
    marker = __import__("pathlib").Path("source_down")
    if marker.exists():  # the source is down for one read
        marker.unlink()
        raise ConnectionError("warehouse connection reset")
'''


@pytest.fixture
def flaky_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "customer_analytics"
    copy_project(PROJECT, copy, leave_out=("artifacts", "tests"))
    features = copy / "python" / "models" / "ltv" / "features.py"
    source = features.read_text()
    head = 'def extract_customer_features(context, start_date, end_date) -> pd.DataFrame:\n    """Extract customer features using optimized SQL queries."""\n'
    assert head in source
    features.write_text(source.replace(head, FLAKY_READ.lstrip("\n")))
    monkeypatch.chdir(copy)
    with duckdb.connect(str(copy / "demo.duckdb")) as connection:
        generate(connection, customers=60, transactions=1_500, events=100, days=3)
    return copy


@pytest.mark.slow
def test_a_transient_failure_is_retried_and_missing_models_give_the_rules(flaky_copy: Path) -> None:
    from sqlmesh import Context

    (flaky_copy / "source_down").touch()
    reset_events()
    context = Context(paths=str(flaky_copy))
    started = time.perf_counter()
    try:
        context.plan(auto_apply=True, no_prompts=True, select_models=[MODEL])
    finally:
        context.close()
    assert not (flaky_copy / "source_down").exists()  # the failing read happened
    assert time.perf_counter() - started >= 1.0  # after the seed's first backoff
    counted = {event: n for (model, function, event), n in events().items() if model and model.endswith("customer_ltv_prediction") and function == "model"}
    assert counted == {"retries": 1, "fallbacks": 1}

    with duckdb.connect(str(flaky_copy / "demo.duckdb"), read_only=True) as connection:
        rows, confidences = connection.sql(
            f"SELECT count(*), list(DISTINCT prediction_confidence) FROM {MODEL}"
        ).fetchone()
    assert rows > 50  # the interval's customers, predicted by the rules
    assert set(confidences) <= {0.6, 0.42}  # the rules' confidence (x0.7 for a lapsed customer)


def test_a_failure_that_is_not_transient_fails_the_model_and_writes_nothing(flaky_copy: Path) -> None:
    from sqlmesh import Context

    features = flaky_copy / "python" / "models" / "ltv" / "features.py"
    features.write_text(features.read_text().replace('raise ConnectionError("warehouse connection reset")', 'raise ValueError("bad feature")'))
    reset_events()
    (flaky_copy / "source_down").touch()
    context = Context(paths=str(flaky_copy))
    try:
        with pytest.raises(Exception, match="Plan application failed"):
            context.plan(auto_apply=True, no_prompts=True, select_models=[MODEL])
    finally:
        context.close()
    assert not (flaky_copy / "source_down").exists()
    assert not any(key[2] in ("retries", "fallbacks") for key in events() if key[0] and key[0].endswith("customer_ltv_prediction"))
    with duckdb.connect(str(flaky_copy / "demo.duckdb"), read_only=True) as connection:
        tables = connection.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics'").fetchall()
    assert tables == []
