"""@python_model: real SQLMesh projects on DuckDB."""

from __future__ import annotations

import pytest

from tests.projects import Project

EVENTS = """
MODEL (name raw.events, kind FULL);
SELECT (i % 3) + 1 AS customer_id, (DATE '2024-01-01' + (i % 10)::INT) AS day, (i % 7)::DOUBLE AS amount
FROM range(300) AS t(i)
"""

# What raw.events holds: per day, 30 rows over 3 customers.
EXPECTED_DAILY = """
SELECT customer_id, day, SUM(amount) AS total FROM (
    SELECT (i % 3) + 1 AS customer_id, (DATE '2024-01-01' + (i % 10)::INT) AS day, (i % 7)::DOUBLE AS amount
    FROM range(300) AS t(i)
) GROUP BY ALL ORDER BY day, customer_id
"""

DAILY_TOTALS = '''
import pandas as pd

from mixmesh import ModelKind, python_model


@python_model(
    name="analytics.daily_totals",
    kind={"name": ModelKind.INCREMENTAL, "batch_size": 1},
    cron="@daily",
    start="2024-01-01",
    grain=["customer_id", "day"],
    columns={"customer_id": "INT", "day": "DATE", "total": "DOUBLE"},
)
def daily_totals(context, **kwargs) -> pd.DataFrame:
    start_date = kwargs.get("start_date", context.start_date)
    end_date = kwargs.get("end_date", context.end_date)
    return context.sql(
        "SELECT customer_id, day, SUM(amount) AS total FROM raw.events "
        "WHERE day BETWEEN :start AND :end GROUP BY ALL",
        start=start_date,
        end=end_date,
    ).to_pandas()
'''


@pytest.fixture
def events(project: Project) -> Project:
    project.write("models/events.sql", EVENTS)
    return project


def expected_daily(project: Project, last_day: str) -> list:
    rows = project.query(EXPECTED_DAILY)
    return [row for row in rows if str(row[1]) <= last_day]


@pytest.mark.slow
def test_incremental_backfill_then_a_later_run_adds_only_the_new_days(events: Project) -> None:
    events.write("models/daily_totals.py", DAILY_TOTALS)
    events.plan(execution_time="2024-01-05")  # backfills 2024-01-01 .. 2024-01-04, a day at a time
    rows = events.query("SELECT customer_id, day, total FROM analytics.daily_totals ORDER BY day, customer_id")
    assert rows == expected_daily(events, "2024-01-04")

    events.cli("run", "--end", "2024-01-07")  # a later run, in a fresh process
    rows = events.query("SELECT customer_id, day, total FROM analytics.daily_totals ORDER BY day, customer_id")
    assert rows == expected_daily(events, "2024-01-07")
    intervals = events.query("SELECT count(DISTINCT day), count(*) FROM analytics.daily_totals")
    assert intervals == [(7, 21)]


def copy_model(body: str, *, columns: str = '{"customer_id": "INT", "day": "DATE", "amount": "DOUBLE"}', extra: str = "") -> str:
    """A FULL model over raw.events whose function body is ``body``."""
    return f'''
import pandas as pd
import pyarrow as pa

from mixmesh import python_model


@python_model(name="analytics.copy", columns={columns}{extra})
def copy(context, **kwargs):
{body}
'''


READ = '    result = context.sql("SELECT customer_id, day, amount FROM raw.events ORDER BY customer_id, day, amount")\n'


@pytest.mark.parametrize(
    "body",
    [
        READ + "    return result.to_pandas()",
        READ + "    return result.to_arrow()",
        READ + "    return result.to_polars()",
        READ + "    yield from result.batches(rows=7)",
        READ + "    for batch in result.batches(rows=50):\n        yield batch.to_pandas()",
    ],
    ids=["pandas", "arrow", "polars", "arrow-batches", "pandas-batches"],
)
def test_a_full_model_may_return_any_frame_or_yield_batches(events: Project, body: str) -> None:
    events.write("models/copy.py", copy_model(body))
    events.plan()
    assert events.query("SELECT count(*), sum(amount) FROM analytics.copy") == events.query(
        "SELECT count(*), sum(amount) FROM raw.events"
    )


def test_an_empty_result_writes_an_empty_table(events: Project) -> None:
    events.write("models/copy.py", copy_model("    yield from ()"))
    events.plan()
    assert events.query("SELECT count(*) FROM analytics.copy") == [(0,)]


def test_columns_may_come_from_a_typed_dict_return_annotation(events: Project) -> None:
    events.write(
        "models/copy.py",
        '''
        import datetime
        from typing import TypedDict

        from mixmesh import python_model


        class Row(TypedDict):
            customer_id: int
            day: datetime.date
            amount: float


        @python_model(name="analytics.copy", grain=["customer_id", "day"])
        def copy(context, **kwargs) -> Row:
            return context.sql("SELECT customer_id, day, SUM(amount) AS amount FROM raw.events GROUP BY ALL").to_arrow()
        ''',
    )
    context = events.context()
    model = context.get_model("analytics.copy")
    assert {k: v.sql("duckdb") for k, v in model.columns_to_types.items()} == {
        "customer_id": "BIGINT", "day": "DATE", "amount": "DOUBLE"
    }
    assert "columns={'customer_id': 'BIGINT', 'day': 'DATE', 'amount': 'DOUBLE'}" in model.python_env["copy"].payload
    events.cli("plan", "--auto-apply", "--no-prompts")  # a fresh process runs the stored code
    assert events.query("SELECT count(*) FROM analytics.copy") == [(30,)]


@pytest.mark.slow
def test_unique_key_models_upsert(events: Project) -> None:
    events.write(
        "models/latest.py",
        '''
        from mixmesh import ModelKind, python_model


        @python_model(
            name="analytics.latest",
            kind=ModelKind.INCREMENTAL_BY_UNIQUE_KEY,
            cron="@daily",
            start="2024-01-01",
            grain=["customer_id"],
            columns={"customer_id": "INT", "last_day": "DATE", "total": "DOUBLE"},
        )
        def latest(context, **kwargs):
            return context.sql(
                "SELECT customer_id, max(day) AS last_day, sum(amount) AS total FROM raw.events "
                "WHERE day BETWEEN :start AND :end GROUP BY customer_id",
                start=context.start_date,
                end=context.end_date,
            ).to_pandas()
        ''',
    )
    events.plan(execution_time="2024-01-03")
    assert events.query("SELECT count(*), max(last_day)::VARCHAR FROM analytics.latest") == [(3, "2024-01-02")]
    events.cli("run", "--end", "2024-01-05")
    assert events.query("SELECT count(*), max(last_day)::VARCHAR FROM analytics.latest") == [(3, "2024-01-05")]


INJECTIONS = ["'; DROP TABLE raw.events; --", 'quote " and \' both', "1 OR 1=1", "$start", ":end", "café ☕"]


def test_parameters_are_data_never_sql(events: Project) -> None:
    events.write(
        "models/texts.py",
        f'''
        import pandas as pd

        from mixmesh import python_model

        TEXTS = {INJECTIONS!r}


        @python_model(name="analytics.texts", columns={{"position": "INT", "text": "VARCHAR"}})
        def texts(context, **kwargs):
            frames = [
                context.sql("SELECT :position AS position, :text AS text", position=i, text=text).to_pandas()
                for i, text in enumerate(TEXTS)
            ]
            return pd.concat(frames)
        ''',
    )
    events.plan()
    assert [text for _, text in events.query("SELECT * FROM analytics.texts ORDER BY position")] == INJECTIONS
    assert events.query("SELECT count(*) FROM raw.events") == [(300,)]


def test_the_context_passes_sqlmesh_through_and_reads_models_physically(events: Project) -> None:
    events.write(
        "models/seen.py",
        '''
        import pandas as pd

        from mixmesh import python_model


        @python_model(
            name="analytics.seen",
            columns={"physical": "VARCHAR", "resolved": "VARCHAR", "var": "VARCHAR", "runs_at": "DATE", "rows": "INT"},
        )
        def seen(context, **kwargs):
            return pd.DataFrame({
                "rows": [len(context.sql("SELECT * FROM raw.events WHERE amount > :floor", floor=3).fetchall())],
                "physical": [context.sql("SELECT * FROM raw.events").sql()],
                "resolved": [context.resolve_table("raw.events")],
                "var": [context.var("greeting", "hello")],
                "runs_at": [context.execution_time.date()],
            })
        ''',
    )
    events.plan(execution_time="2024-02-01")
    (physical, resolved, var, runs_at, rows), = events.query(
        "SELECT physical, resolved, var, runs_at::VARCHAR, rows FROM analytics.seen"
    )
    assert "sqlmesh__raw" in physical and "sqlmesh__raw" in resolved and var == "hello"
    assert runs_at == "2024-02-01"
    assert rows == events.query("SELECT count(*) FROM raw.events WHERE amount > 3")[0][0]


def test_functions_are_callable_in_context_sql(events: Project) -> None:
    events.write(
        "python/shared/scoring.py",
        '''
        from mixmesh import udf


        @udf
        def doubled(x: float) -> float:
            return x * 2
        ''',
    )
    events.write(
        "models/copy.py",
        copy_model(
            '    return context.sql("SELECT customer_id, day, doubled(amount) AS amount FROM raw.events").to_arrow()'
        ).replace("from mixmesh import python_model", "from mixmesh import python_model\nfrom python.shared.scoring import doubled  # noqa: F401"),
    )
    events.plan()
    assert events.query("SELECT sum(amount) FROM analytics.copy") == [(2 * events.query("SELECT sum(amount) FROM raw.events")[0][0],)]
    assert "doubled" in events.context().get_model("analytics.copy").python_env


@pytest.mark.parametrize(
    "kind, grain, message",
    [
        ("ModelKind.VIEW", '["customer_id"]', "kind VIEW is not for Python models"),
        ("ModelKind.SEED", '["customer_id"]', "kind SEED is not for Python models"),
        ("ModelKind.INCREMENTAL", '["customer_id"]', "its grain has no date or timestamp column. Add time_column="),
    ],
)
def test_kinds_that_cannot_run_are_refused_clearly(events: Project, kind: str, grain: str, message: str) -> None:
    events.write(
        "models/copy.py",
        copy_model("    return None", extra=f", kind={kind}, grain={grain}").replace(
            "from mixmesh import python_model", "from mixmesh import ModelKind, python_model"
        ),
    )
    with pytest.raises(Exception, match=message):
        events.context()


GOOD_COPY = '    return context.sql("SELECT DISTINCT customer_id, day, amount FROM raw.events").to_pandas()'


@pytest.fixture
def copied(events: Project) -> Project:
    """analytics.copy planned once with good data: 300 rows."""
    events.write("models/copy.py", copy_model(GOOD_COPY, extra=', grain=["customer_id", "day", "amount"]'))
    events.cli("plan", "--auto-apply", "--no-prompts")
    return events


def fails_keeping_the_copy(project: Project, body: str, extra: str = ', grain=["customer_id", "day", "amount"]') -> str:
    before = project.query("SELECT count(*), sum(amount) FROM analytics.copy")
    project.write("models/copy.py", copy_model(body, extra=extra))
    result = project.cli("plan", "--auto-apply", "--no-prompts", check=False)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    assert "Traceback" not in output and output.endswith("Error: Plan application failed."), output[-500:]
    assert project.query("SELECT count(*), sum(amount) FROM analytics.copy") == before
    assert staging_tables(project) == []
    return output


def staging_tables(project: Project) -> list:
    return project.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'mixmesh_staging'")


@pytest.mark.slow
def test_staging_tables_a_dead_process_left_are_dropped(copied: Project) -> None:
    import duckdb

    copied.close()
    with duckdb.connect(str(copied.root / "db.duckdb")) as connection:
        connection.execute("CREATE TABLE mixmesh_staging.s_1_leftover (x INT)")
    copied.write("models/copy.py", copy_model(GOOD_COPY.replace("DISTINCT", "DISTINCT ON (customer_id, day, amount)"), extra=', grain=["customer_id", "day", "amount"]'))
    copied.cli("plan", "--auto-apply", "--no-prompts")
    assert staging_tables(copied) == []


@pytest.mark.slow
def test_missing_and_undeclared_columns(copied: Project) -> None:
    output = fails_keeping_the_copy(
        copied, '    return context.sql("SELECT customer_id, amount, 1 AS bonus FROM raw.events").to_pandas()'
    )
    assert "model analytics.copy returned missing column(s) ['day'] and undeclared column(s) ['bonus']" in output


@pytest.mark.slow
def test_a_value_that_does_not_convert_to_the_declared_type(copied: Project) -> None:
    output = fails_keeping_the_copy(
        copied,
        "    frame = context.sql(\"SELECT customer_id, day, amount::VARCHAR AS amount FROM raw.events\").to_pandas()\n"
        "    frame.loc[5, 'amount'] = 'twelve'\n"
        "    return frame",
    )
    assert "model analytics.copy: column 'amount' holds string values that do not convert to the declared DOUBLE" in output
    assert "for example 'twelve'" in output


@pytest.mark.slow
def test_null_in_a_grain_column(copied: Project) -> None:
    output = fails_keeping_the_copy(
        copied,
        '    return context.sql("SELECT DISTINCT customer_id, CASE WHEN amount = 3 THEN NULL ELSE day END AS day, amount FROM raw.events").to_arrow()',
    )
    assert "model analytics.copy: grain column 'day' is NULL in" in output and "'amount': 3.0" in output
    assert "every row needs its whole grain" in output


@pytest.mark.slow
def test_duplicate_grain_across_batches(copied: Project) -> None:
    output = fails_keeping_the_copy(
        copied,
        '    yield from context.sql("SELECT DISTINCT customer_id, day, amount FROM raw.events").batches(rows=100)\n'
        '    yield context.sql("SELECT customer_id, day, amount FROM raw.events LIMIT 1").to_pandas()',
    )
    assert "model analytics.copy returned 2 rows with the same grain {'customer_id':" in output
    assert "each value of the grain ['customer_id', 'day', 'amount'] may appear once" in output


@pytest.mark.slow
def test_a_failure_in_the_middle_of_a_stream_writes_nothing(copied: Project) -> None:
    output = fails_keeping_the_copy(
        copied,
        '    for i, batch in enumerate(context.sql("SELECT customer_id, day, amount FROM raw.events").batches(rows=50)):\n'
        "        if i == 3:\n"
        '            raise ConnectionError("the source went away")\n'
        "        yield batch",
    )
    assert "analytics.copy" in output and "ConnectionError: the source went away" in output


@pytest.mark.slow
def test_rows_outside_the_interval_are_counted_in_a_warning(events: Project) -> None:
    events.write(
        "models/everything.py",
        '''
        from mixmesh import ModelKind, python_model


        @python_model(
            name="analytics.everything",
            kind=ModelKind.INCREMENTAL,
            cron="@daily",
            start="2024-01-01",
            grain=["customer_id", "day"],
            columns={"customer_id": "INT", "day": "DATE", "total": "DOUBLE"},
        )
        def everything(context, **kwargs):
            # Forgets to filter on the interval: reads every day each time.
            return context.sql("SELECT customer_id, day, SUM(amount) AS total FROM raw.events GROUP BY ALL").to_pandas()
        ''',
    )
    events.write("models/events.sql", EVENTS.replace("kind FULL", "kind FULL, start '2024-01-01', cron '@daily'"))
    events.plan(execution_time="2024-01-03")
    output = events.cli("run", "--end", "2024-01-03").stdout
    assert "returned 27 row(s) with day outside the interval 2024-01-03 .. 2024-01-03; they are not written" in " ".join(output.split())
    assert events.query("SELECT count(DISTINCT day), count(*) FROM analytics.everything") == [(3, 9)]


SEED_STYLE = '''
import logging
from datetime import datetime

import pandas as pd

from mixmesh import ModelKind, python_model

logger = logging.getLogger(__name__)


@python_model(
    name="analytics.customer_ltv_prediction",
    kind=ModelKind.INCREMENTAL,
    owner="data-science@company.com",
    cron="@daily",
    start="2024-01-01",
    grain=["customer_id", "prediction_date"],
    description="""
    Python-driven customer lifetime value prediction combining multiple
    data sources with advanced ML techniques for accurate LTV forecasting.
    """,
    columns={
        "customer_id": "INT",
        "predicted_ltv": "DOUBLE",
        "total_spend": "DOUBLE",
        "prediction_date": "DATE",
        "model_version": "VARCHAR",
        "prediction_timestamp": "TIMESTAMP",
    },
)
def customer_ltv_prediction(context, **kwargs) -> pd.DataFrame:
    start_date = kwargs.get("start_date", context.start_date)
    end_date = kwargs.get("end_date", context.end_date)
    logger.info(f"Processing LTV predictions for {start_date} to {end_date}")
    customer_features = extract_customer_features(context, start_date, end_date)
    output_df = customer_features[["customer_id", "total_spend"]].copy()
    output_df["predicted_ltv"] = (output_df["total_spend"] * 3.5).round(2)
    output_df["prediction_date"] = pd.to_datetime(end_date)
    output_df["model_version"] = "2.1.0"
    output_df["prediction_timestamp"] = pd.Timestamp(datetime(2024, 6, 1, 12, 0))
    return output_df


def extract_customer_features(context, start_date, end_date) -> pd.DataFrame:
    transaction_query = f"""
    WITH transaction_metrics AS (
        SELECT customer_id, COUNT(*) AS total_transactions, SUM(amount) AS total_spend
        FROM raw.events
        WHERE day BETWEEN '{start_date}' AND '{end_date}'
        GROUP BY customer_id
    )
    SELECT c.customer_id, COALESCE(t.total_spend, 0) AS total_spend
    FROM raw.customers c
    LEFT JOIN transaction_metrics t ON c.customer_id = t.customer_id
    """
    return context.engine.execute(transaction_query).to_pandas()
'''


@pytest.mark.slow
def test_the_seed_document_s_model_runs_as_written(events: Project) -> None:
    events.write("models/customers.sql", "MODEL (name raw.customers, kind FULL); SELECT * FROM range(1, 5) AS t(customer_id)")
    events.write("models/customer_ltv_prediction.py", SEED_STYLE)
    model = events.context().get_model("analytics.customer_ltv_prediction")
    assert {name.split(".")[-1].strip('"') for name in model.depends_on} == {"events", "customers"}
    assert model.kind.time_column.column.name == "prediction_date"
    events.plan(execution_time="2024-01-03")
    rows = events.query(
        "SELECT prediction_date::VARCHAR, count(*), sum(predicted_ltv) FROM analytics.customer_ltv_prediction GROUP BY 1 ORDER BY 1"
    )
    # One interval, 2024-01-01 .. 2024-01-02; the seed predicts as of the interval's end.
    (spend,) = events.query("SELECT sum(amount) FROM raw.events WHERE day <= '2024-01-02'")[0]
    assert rows == [("2024-01-02", 4, round(spend * 3.5, 2))]


YAML_TEST = """
test_daily_totals:
  model: analytics.daily_totals
  inputs:
    raw.events:
      rows:
        - {{customer_id: 1, day: 2024-01-02, amount: 2.5}}
        - {{customer_id: 1, day: 2024-01-02, amount: 1.5}}
        - {{customer_id: 2, day: 2024-01-02, amount: 7.0}}
        - {{customer_id: 2, day: 2024-01-03, amount: 100.0}}
  vars:
    start: 2024-01-02
    end: 2024-01-02
  outputs:
    query:
      rows:
        - {{customer_id: 1, day: 2024-01-02, total: {first}}}
        - {{customer_id: 2, day: 2024-01-02, total: 7.0}}
"""


@pytest.mark.slow
def test_sqlmesh_yaml_unit_tests_run_python_models(events: Project) -> None:
    events.write("models/daily_totals.py", DAILY_TOTALS)
    events.write("tests/test_daily_totals.yaml", YAML_TEST.format(first=4.0))
    passed = events.cli("test", check=False)
    assert passed.returncode == 0, passed.stdout + passed.stderr

    events.write("tests/test_daily_totals.yaml", YAML_TEST.format(first=5.0))
    failed = events.cli("test", check=False)
    assert failed.returncode != 0 and "total" in failed.stdout + failed.stderr
