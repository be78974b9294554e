"""Capture: each model evaluation through SQLMesh recorded with its time split, rows, memory and events."""

from __future__ import annotations

import pandas as pd
import pytest

from mixmesh.monitor.store import DEFAULT_PATH, MetricsStore
from tests.projects import Project

FUNCTIONS = '''
import time

import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import udf


@udf(vectorized=True, on_error="null")
def doubled(x: float) -> float:
    if pc.any(pc.equal(x, 13.0)).as_py():
        raise ValueError("13 is unlucky")
    return pc.multiply(x, 2.0)


@udf
def slow_label(x: float) -> str:
    time.sleep(0.003)  # Python time the sampler must see
    return "big" if x > 50 else "small"
'''

SQL_MODEL = """
MODEL (name analytics.scored, kind FULL);
SELECT x, @doubled(x) AS twice FROM (SELECT range::DOUBLE AS x FROM range(5000))
"""

SLOW_MODEL = """
MODEL (name analytics.labelled, kind FULL);
SELECT x, @slow_label(x) AS label FROM (SELECT range::DOUBLE AS x FROM range(150))
"""

SQL_ONLY_MODEL = """
MODEL (name analytics.summed, kind FULL);
SELECT a % 7 AS k, count(*) AS n, sum(a * b) AS s
FROM (SELECT range AS a, range % 13 AS b FROM range(3000000))
GROUP BY 1
"""

PYTHON_MODEL = '''
import pandas as pd

from mixmesh import python_model


@python_model(name="analytics.copied", columns={"x": "DOUBLE"})
def copied(context, **kwargs) -> pd.DataFrame:
    return context.sql("SELECT x FROM analytics.scored WHERE x < 100").to_pandas()
'''


FLAKY_MODEL = '''
import time

import pandas as pd

from mixmesh import Retry, python_model

ATTEMPTS = []


def busy(seconds):  # Python at work, as the sampler sees it
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@python_model(name="analytics.flaky", columns={"x": "BIGINT"}, retry=Retry(attempts=3, backoff=[0.4]))
def flaky(context, **kwargs) -> pd.DataFrame:
    busy(0.2)
    ATTEMPTS.append(1)
    if len(ATTEMPTS) % 3:
        raise ConnectionError("the service is warming up")
    return pd.DataFrame({"x": [1, 2, 3]})
'''


@pytest.fixture
def monitored(project: Project) -> Project:
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/scored.sql", SQL_MODEL)
    project.write("models/labelled.sql", SLOW_MODEL)
    project.write("models/summed.sql", SQL_ONLY_MODEL)
    project.write("models/copied.py", PYTHON_MODEL)
    return project


def runs(project: Project) -> dict:
    frame = MetricsStore(project.root / DEFAULT_PATH).model_runs()
    return {row.model: row for row in frame.itertuples()}


def test_each_model_evaluation_is_recorded_in_the_project(monitored: Project) -> None:
    monitored.plan()
    recorded = runs(monitored)
    assert set(recorded) == {"analytics.scored", "analytics.labelled", "analytics.summed", "analytics.copied"}
    for model, run in recorded.items():
        assert run.command == "plan" and run.engine == "duckdb" and run.status == "ok", model
        assert run.python_s + run.sql_s == pytest.approx(run.total_s)
        assert run.peak_rss_mb > 50
    # Rows written, as the engine counted them.
    assert recorded["analytics.scored"].rows_out == 5000
    assert recorded["analytics.copied"].rows_out == 100
    assert recorded["analytics.copied"].rows_in == 100  # what the Python model read
    assert pd.isna(recorded["analytics.scored"].rows_in)  # the engine does not say
    assert recorded["analytics.summed"].rows_out == 7
    assert recorded["analytics.scored"].rows_per_s == pytest.approx(5000 / recorded["analytics.scored"].total_s)


def test_one_sampler_thread_serves_every_evaluation(monitored: Project) -> None:
    """A thread started and joined per evaluation cost a short model several percent of its time."""
    import threading

    monitored.plan()
    monitored.plan(restate_models=["analytics.labelled", "analytics.summed"])
    assert len(runs_all(monitored)) == 6
    assert [thread.name for thread in threading.enumerate()].count("mixmesh-monitor") == 1


def runs_all(project: Project) -> pd.DataFrame:
    return MetricsStore(project.root / DEFAULT_PATH).model_runs()


def test_python_time_and_engine_time_are_told_apart(monitored: Project) -> None:
    monitored.plan()
    recorded = runs(monitored)
    slow = recorded["analytics.labelled"]
    assert slow.python_s >= 0.3  # 150 rows x 3 ms inside the row-mode function
    assert slow.python_s / slow.total_s > 0.6
    summed = recorded["analytics.summed"]
    assert summed.python_s / summed.total_s < 0.2  # the engine's work


def test_a_retry_backoff_is_waiting_and_the_attempts_are_python(project: Project) -> None:
    """A Python model that fails twice, then succeeds: its two 0.4 s backoffs were counted as
    engine time; they are waiting now, and the three attempts' Python work is Python time."""
    project.write("models/flaky.py", FLAKY_MODEL)
    project.plan()
    flaky = runs(project)["analytics.flaky"]
    assert flaky.status == "ok" and flaky.retries == 2 and flaky.rows_out == 3
    # Sampled every 5 ms: a busy machine delays the sampler, hence the margins.
    assert flaky.wait_s == pytest.approx(0.8, abs=0.2)
    assert flaky.python_s >= 0.45  # 3 attempts x 0.2 s
    assert flaky.python_s + flaky.sql_s + flaky.wait_s == pytest.approx(flaky.total_s)


def test_a_functions_retry_backoff_is_waiting_not_python(project: Project) -> None:
    """The backoff runs inside the function's wrapper (project code to the sampler): it was Python time."""
    project.write("macros/functions.py", '''
        from mixmesh import Retry, udf

        CALLS = []


        @udf(retry=Retry(attempts=3, backoff=[0.5]))
        def flaky_double(x: float) -> float:
            CALLS.append(1)
            if len(CALLS) == 1:
                raise ConnectionError("cold start")
            return x * 2
    ''')
    project.write("models/doubled.sql", """
        MODEL (name analytics.doubled, kind FULL);
        SELECT x, @flaky_double(x) AS y FROM (SELECT range::DOUBLE AS x FROM range(1000))
    """)
    project.plan()
    doubled = runs(project)["analytics.doubled"]
    assert doubled.retries == 1 and doubled.rows_out == 1000
    assert doubled.wait_s == pytest.approx(0.5, abs=0.15)
    assert doubled.python_s < 0.25


def test_function_figures_and_resilience_counts(monitored: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # On its own, a row function over scalars gets the plain binding (mixmesh.fastpath.choice).
    monkeypatch.setenv("MIXMESH_FAST_PATH", "on")
    monitored.plan()
    functions = MetricsStore(monitored.root / DEFAULT_PATH).function_runs()
    doubled = functions[(functions.function == "doubled") & (functions.model == "analytics.scored")].iloc[0]
    assert doubled["mode"] == "vectorized"
    # The fast path hands the 5,000 rows over at once; the failing row is then isolated by
    # halving (one failed call) and given the fallback.
    assert doubled["rows"] >= 5000 and doubled["calls"] >= 1
    assert doubled["errors"] >= 1 and doubled["p50_batch_s"] <= doubled["p95_batch_s"] <= doubled["total_s"]
    label = functions[functions.function == "slow_label"].iloc[0]
    # A row function on the fast path runs over whole batches: timed and counted per batch.
    assert label["mode"] == "row" and label["total_s"] >= 0.3
    assert label["calls"] == 1 and label["rows"] == 150


def test_row_functions_off_the_fast_path_are_sampled(monitored: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXMESH_FAST_PATH", "off")
    monitored.plan()
    functions = MetricsStore(monitored.root / DEFAULT_PATH).function_runs()
    doubled = functions[(functions.function == "doubled") & (functions.model == "analytics.scored")].iloc[0]
    assert doubled["rows"] >= 5000 and doubled["calls"] >= 3  # DuckDB hands over 2,048-row vectors
    label = functions[functions.function == "slow_label"].iloc[0]
    assert label["mode"] == "row" and label["total_s"] >= 0.3
    assert label.isna()["calls"]  # called per row: sampled time; counting each call would cost more than it tells
    # The unlucky row went to the fallback (NULL): counted against the model.
    assert runs(monitored)["analytics.scored"].fallbacks == 1


def test_a_failed_evaluation_is_recorded_as_failed(monitored: Project) -> None:
    monitored.write("models/broken.sql", "MODEL (name analytics.broken, kind FULL);\nSELECT @doubled('not a number') AS y\n")
    with pytest.raises(Exception):
        monitored.plan()
    broken = runs(monitored).get("analytics.broken")
    assert broken is not None and broken.status == "failed" and "doubled" in broken.error


def test_sqlmesh_run_in_a_fresh_process_is_recorded(monitored: Project) -> None:
    monitored.write("models/daily.sql", """
        MODEL (name analytics.daily, kind INCREMENTAL_BY_TIME_RANGE (time_column d), start '2024-01-01', cron '@daily');
        SELECT @start_date AS d, @doubled(1.5) AS v
    """)
    monitored.plan(execution_time="2024-01-03")
    monitored.cli("run", "--end", "2024-01-04")
    daily = MetricsStore(monitored.root / DEFAULT_PATH).model_runs(model="analytics.daily")
    assert list(daily.command) == ["plan", "run"]
    assert str(daily.iloc[1].interval_start.date()) == "2024-01-03"
    # The fresh process knows the environment and the model version too: the same code, the same version.
    assert list(daily.environment) == ["prod", "prod"]
    assert daily.fingerprint.iloc[0] and daily.fingerprint.nunique() == 1


def test_sqlmesh_evaluate_is_recorded(monitored: Project) -> None:
    """`sqlmesh evaluate` goes through SnapshotEvaluator.evaluate_and_fetch, not evaluate: it was not recorded."""
    preview = monitored.context().evaluate("analytics.labelled", start="2024-01-01", end="2024-01-02",
                                           execution_time="2024-01-03")
    assert len(preview) == 150
    monitored.cli("evaluate", "analytics.labelled", "--start", "2024-01-05", "--end", "2024-01-06")
    evaluated = MetricsStore(monitored.root / DEFAULT_PATH).model_runs()
    assert list(zip(evaluated.model, evaluated.command)) == [("analytics.labelled", "evaluate")] * 2
    assert [str(start.date()) for start in evaluated.interval_start] == ["2024-01-01", "2024-01-05"]
    for run in evaluated.itertuples():
        assert run.status == "ok" and run.engine == "duckdb"
        assert run.python_s >= 0.3  # 150 rows x 3 ms in the row-mode function
        assert pd.isna(run.rows_out)  # a preview writes no table
    functions = MetricsStore(monitored.root / DEFAULT_PATH).function_runs()
    assert list(functions.function) == ["slow_label", "slow_label"]


def test_monitoring_can_be_switched_off(monitored: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXMESH_MONITOR", "off")
    monitored.plan()
    assert not (monitored.root / DEFAULT_PATH).exists()


def test_unit_tests_are_recorded_only_when_asked(monitored: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monitored.write("tests/test_scored.yaml", """
        test_scored:
          model: analytics.copied
          inputs:
            analytics.scored:
              rows:
                - {x: 1.0, twice: 2.0}
                - {x: 500.0, twice: 1000.0}
          outputs:
            query:
              rows:
                - {x: 1.0}
    """)
    assert monitored.context().test().wasSuccessful()
    assert MetricsStore(monitored.root / DEFAULT_PATH).model_runs().empty
    monkeypatch.setenv("MIXMESH_MONITOR_TESTS", "1")
    assert monitored.context().test().wasSuccessful()
    recorded = MetricsStore(monitored.root / DEFAULT_PATH).model_runs()
    assert list(recorded.command) == ["test"] and list(recorded.model) == ["analytics.copied"]
    assert recorded.iloc[0].rows_in == 1


def test_models_evaluated_at_once_keep_their_own_figures(project: Project) -> None:
    project.write("config.yaml", (project.root / "config.yaml").read_text().replace(
        "      type: duckdb\n", "      type: duckdb\n      concurrent_tasks: 2\n"))
    project.write("macros/functions.py", FUNCTIONS)
    for name, rows in (("small", 30_000), ("large", 70_000)):
        project.write(f"models/{name}.sql", f"""
            MODEL (name analytics.{name}, kind FULL);
            SELECT x, @doubled(x) AS twice FROM (SELECT (range % 1000)::DOUBLE + 0.5 AS x FROM range({rows}))
        """)
    project.plan()
    functions = MetricsStore(project.root / DEFAULT_PATH).function_runs()
    rows = dict(zip(functions.model, functions.rows))
    assert rows == {"analytics.small": 30_000, "analytics.large": 70_000}
