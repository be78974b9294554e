"""A SQLMesh project on a `spark` gateway: `sqlmesh plan`, then `sqlmesh run` in a fresh
process, each building a SQL model that calls a row function and a vectorized one."""

from __future__ import annotations

import datetime as dt
import typing as t
from pathlib import Path

import pytest

from mixmesh.monitor.store import DEFAULT_PATH, MetricsStore
from tests.spark import example
from tests.spark.example import TRANSACTIONS
from tests.spark.projects import SparkProject

pytestmark = pytest.mark.slow


def expected(days: t.Iterable[int]) -> t.List[t.List[t.Any]]:
    """What analytics.scored holds for these days, computed in plain Python."""
    groups: t.Dict[t.Tuple[int, int], t.List[t.Tuple[float, str]]] = {}
    for customer, day, amount, kind in TRANSACTIONS:
        if day in days:
            groups.setdefault((customer, day), []).append((amount, kind))
    return [
        [customer, str(dt.date(2024, 1, day)), example.risk(rows), example.band(sum(a for a, _ in rows))]
        for (customer, day), rows in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0]))
    ]


@pytest.fixture
def project(tmp_path: Path) -> SparkProject:
    project = SparkProject(tmp_path / "project")
    project.write("models/transactions.sql", example.transactions_model())
    project.write(
        "models/scored.sql",
        """
        MODEL (
          name analytics.scored,
          kind INCREMENTAL_BY_TIME_RANGE (time_column day),
          cron '@daily',
          grain (customer_id, day)
        );

        SELECT
          customer_id,
          day,
          @risk_score(LIST({'amount': amount, 'kind': kind}), SUM(amount)) AS risk,
          @amount_band(SUM(amount)) AS band
        FROM raw.transactions
        WHERE day BETWEEN @start_date AND @end_date
        GROUP BY customer_id, day
        """,
    )
    project.write("python/shared/weights.py", example.WEIGHTS_MODULE)
    project.write("macros/scoring.py", example.SCORING)
    return project


def test_plan_then_a_fresh_process_run_build_a_model_calling_python_functions(project: SparkProject) -> None:
    query = "SELECT customer_id, day, risk, band FROM analytics.scored ORDER BY day, customer_id"

    project.cli("plan", "--auto-apply", "--no-prompts", "--execution-time", "2024-01-03")
    # The functions ran in the executors' processes; their batches reached monitoring.
    functions = MetricsStore(project.root / DEFAULT_PATH).function_runs()
    scored = functions[functions.model == "analytics.scored"].set_index("function")
    assert sorted(scored.index) == ["amount_band", "risk_score"]
    assert set(scored["rows"]) == {len(expected({1, 2}))} and (scored["calls"] >= 1).all()
    assert scored.loc["risk_score", "mode"] == "row" and scored.loc["risk_score", "mean_list_length"] > 1

    # The run re-creates the functions from SQLMesh's state; the table is read after it, in its
    # process (each fresh process starts a Spark): days 1 and 2 are the plan's rows (the model
    # is incremental), days 3 and 4 the run's.
    (rows,) = project.cli_then_queries(["run", "--end", "2024-01-04"], query)
    assert rows == expected({1, 2, 3, 4})


def test_a_failing_function_names_the_model_the_function_and_the_row(tmp_path: Path) -> None:
    project = SparkProject(tmp_path / "fragile")
    project.write(
        "macros/fragile.py",
        """
        from mixmesh import udf


        @udf
        def fragile(x: float) -> float:
            if x > 2:
                raise ValueError("no values above two")
            return x * 2
        """,
    )
    project.write(
        "models/scores.sql",
        "MODEL (name analytics.scores, kind FULL); SELECT x, @fragile(x) AS y FROM (VALUES (1.0), (3.0)) t(x)",
    )
    result = project.cli("plan", "--auto-apply", "--no-prompts", check=False)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "function 'fragile' in model analytics.scores raised ValueError: no values above two" in output
    assert "the row's arguments were x=3.0" in output
