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


        @python_model(name="analytics.seen", columns={"physical": "VARCHAR", "resolved": "VARCHAR", "var": "VARCHAR", "runs_at": "DATE"})
        def seen(context, **kwargs):
            return pd.DataFrame({
                "physical": [context.sql("SELECT * FROM raw.events").sql()],
                "resolved": [context.resolve_table("raw.events")],
                "var": [context.var("greeting", "hello")],
                "runs_at": [context.execution_time.date()],
            })
        ''',
    )
    events.plan(execution_time="2024-02-01")
    (physical, resolved, var, runs_at), = events.query("SELECT physical, resolved, var, runs_at::VARCHAR FROM analytics.seen")
    assert "sqlmesh__raw" in physical and "sqlmesh__raw" in resolved and var == "hello"
    assert runs_at == "2024-02-01"


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
