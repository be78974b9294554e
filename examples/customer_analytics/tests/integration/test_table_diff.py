"""SQLMesh's table_diff on every model of the example, matching rows on the models' grains
(no --on): each grain is read as its columns, not as one ARRAY grain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from mixmesh.cli.demo_data import generate
from mixmesh.testing import copy_project

PROJECT = Path(__file__).resolve().parents[2]
MODELS = {
    "analytics.customer_risk_scoring": ["customer_id", "score_date"],
    "analytics.customer_ltv_prediction": ["customer_id", "prediction_date"],
    "analytics.real_time_personalization": ["user_id", "session_id"],
}


@pytest.fixture(scope="module")
def prod_and_dev(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built in prod; in dev, each model changed: the risk model drops single-transaction
    days, the LTV model's version, the personalization's "browsing" threshold."""
    copy = tmp_path_factory.mktemp("diff") / "customer_analytics"
    copy_project(PROJECT, copy, leave_out=("tests",))
    with duckdb.connect(str(copy / "demo.duckdb")) as connection:
        generate(connection, customers=80, transactions=2_000, events=300, days=3)
    _sqlmesh(copy, "plan", "--auto-apply", "--no-prompts")
    for path, old, new in (
        ("models/analytics/customer_risk_scoring.sql", "WHERE ml_risk.value IS NOT NULL", "WHERE ml_risk.value IS NOT NULL AND transaction_count > 1"),
        ("python/models/ltv/predictor.py", 'MODEL_VERSION = "2.1.0"', 'MODEL_VERSION = "2.2.0"'),
        ("models/analytics/real_time_personalization.sql", "WHEN pages_visited >= 5", "WHEN pages_visited >= 4"),
    ):
        changed = (copy / path).read_text().replace(old, new)
        assert new in changed, path
        (copy / path).write_text(changed)
    _sqlmesh(copy, "plan", "dev", "--auto-apply", "--no-prompts", "--include-unmodified")
    return copy


def _sqlmesh(project: Path, *arguments: str) -> str:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("sqlmesh")), "--paths", str(project), *arguments],
        cwd=project, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Error" not in done.stdout, done.stdout + done.stderr
    return done.stdout


def test_every_model_s_grain_is_its_columns(prod_and_dev: Path) -> None:
    from sqlmesh import Context

    context = Context(paths=str(prod_and_dev))
    try:
        for name, columns in MODELS.items():
            assert context.get_model(name).on == columns, name
    finally:
        context.close()


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODELS))
def test_table_diff_matches_rows_on_the_grain_without_on(prod_and_dev: Path, model: str) -> None:
    report = _sqlmesh(prod_and_dev, "table_diff", "prod:dev", model)
    assert "Join On" in report, report
    for column in MODELS[model]:
        assert column in report
    assert "Schema Diff" in report or "Row Counts" in report
