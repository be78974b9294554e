"""Python functions called from SQL models: real SQLMesh projects on DuckDB."""

from __future__ import annotations

import pytest

from mixmesh.errors import FunctionDefinitionError
from tests.projects import Project

FUNCTIONS = '''
from typing import TypedDict

import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import udf


class Txn(TypedDict):
    amount: float
    category: str


def _scale(x):
    return x * 2.0


@udf
def double_it(x: float) -> float:
    return _scale(x)


@udf(vectorized=True)
def plus_one(x: pa.Array) -> pa.Array:
    return pc.add(x, 1.0)


@udf
def spend(txns: list[Txn]) -> float:
    return sum(t["amount"] for t in txns)


@udf(name="label")
def label_for(x: float) -> str:
    return "high" if x > 10 else "low"
'''


@pytest.fixture
def functions_project(project: Project) -> Project:
    project.write("macros/functions.py", FUNCTIONS)
    project.write(
        "models/source.sql",
        """
        MODEL (name raw.source, kind FULL);
        SELECT * FROM (VALUES
            (1, 'a', 5.0, [{'amount': 1.5, 'category': 'x'}, {'amount': 3.5, 'category': 'y'}]),
            (1, 'b', 20.0, []),
            (2, 'a', NULL, [{'amount': 10.0, 'category': 'z'}]),
            (3, 'c', -4.0, NULL)
        ) AS t(customer_id, kind, amount, txns)
        """,
    )
    return project


def test_plan_builds_the_table_with_the_functions_results(functions_project: Project) -> None:
    functions_project.write(
        "models/scored.sql",
        """
        MODEL (name analytics.scored, kind FULL);
        SELECT customer_id, kind, @double_it(amount) AS doubled, @plus_one(amount) AS plus,
               @spend(txns) AS spent, @label(amount) AS label
        FROM raw.source
        """,
    )
    functions_project.plan()
    rows = functions_project.query("SELECT * FROM analytics.scored ORDER BY customer_id, kind")
    assert rows == [
        (1, "a", 10.0, 6.0, 5.0, "low"),
        (1, "b", 40.0, 21.0, 0.0, "high"),
        (2, "a", None, None, 10.0, None),
        (3, "c", -8.0, -3.0, None, "low"),
    ]
    column_types = dict(functions_project.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'scored'"))
    assert column_types["doubled"] == "DOUBLE" and column_types["label"] == "VARCHAR"


def test_functions_work_wherever_an_expression_may_stand(functions_project: Project) -> None:
    """Projection, WHERE, CASE, aggregates, windows, CTEs, twice in one query, UNION."""
    functions_project.write(
        "models/everywhere.sql",
        """
        MODEL (name analytics.everywhere, kind FULL);
        WITH doubled AS (
            SELECT customer_id, kind, @double_it(amount) AS d, amount FROM raw.source
        ), windowed AS (
            SELECT customer_id, d, SUM(amount) OVER (PARTITION BY customer_id) AS per_customer FROM doubled
        )
        SELECT 'where' AS part, COUNT(*)::DOUBLE AS value FROM raw.source WHERE @double_it(amount) > 9
        UNION ALL
        SELECT 'case', SUM(CASE WHEN @label(amount) = 'high' THEN 1 ELSE 0 END)::DOUBLE FROM raw.source
        UNION ALL
        SELECT 'aggregate', SUM(@double_it(amount)) + SUM(@plus_one(amount)) FROM raw.source
        UNION ALL
        SELECT 'window', MAX(@double_it(per_customer)) FROM windowed
        UNION ALL
        SELECT 'twice', SUM(@double_it(amount) + @double_it(@double_it(amount))) FROM raw.source
        UNION ALL
        SELECT 'cte', SUM(d) FROM doubled
        UNION ALL
        SELECT 'union', SUM(@plus_one(amount)) FROM raw.source
        """,
    )
    functions_project.plan()
    values = dict(functions_project.query("SELECT part, value FROM analytics.everywhere"))
    assert values == {
        "where": 2.0,
        "case": 1.0,
        "aggregate": (10.0 + 40.0 - 8.0) + (6.0 + 21.0 - 3.0),
        "window": 50.0,
        "twice": 3 * (10.0 + 40.0 - 8.0),
        "cte": 42.0,
        "union": 24.0,
    }


DAILY = """
MODEL (
    name analytics.daily,
    kind INCREMENTAL_BY_TIME_RANGE (time_column day),
    cron '@daily',
    start '2024-01-01'
);
SELECT day, @double_it(x) AS doubled, @label(x) AS label
FROM (SELECT range::DATE AS day, EXTRACT(day FROM range)::DOUBLE AS x
      FROM range(DATE '2024-01-01', DATE '2024-02-01', INTERVAL 1 DAY))
WHERE day BETWEEN @start_date AND @end_date
"""


@pytest.mark.slow
def test_sqlmesh_run_in_a_fresh_process_computes_the_new_intervals(functions_project: Project) -> None:
    functions_project.write("models/daily.sql", DAILY)
    functions_project.plan(execution_time="2024-01-04")
    assert functions_project.query("SELECT max(day)::VARCHAR, count(*) FROM analytics.daily") == [("2024-01-03", 3)]

    functions_project.cli("run", "--end", "2024-01-06")

    rows = functions_project.query("SELECT day::VARCHAR, doubled, label FROM analytics.daily ORDER BY day")
    assert rows == [(f"2024-01-0{d}", 2.0 * d, "low") for d in range(1, 7)]


@pytest.mark.slow
def test_render_and_evaluate_from_the_command_line(functions_project: Project) -> None:
    functions_project.write("models/daily.sql", DAILY)
    rendered = functions_project.cli("render", "analytics.daily").stdout
    assert "DOUBLE_IT__" in rendered.upper() and "AS DOUBLE)" in rendered.upper()

    evaluated = functions_project.cli(
        "evaluate", "analytics.daily", "--start", "2024-01-05", "--end", "2024-01-06"
    ).stdout
    assert "10.0" in evaluated and "12.0" in evaluated


YAML_TEST = """
test_daily_doubles:
  model: analytics.daily
  vars:
    start: 2024-01-02
    end: 2024-01-02
  outputs:
    query:
      rows:
        - day: 2024-01-02
          doubled: {expected}
          label: low
"""


@pytest.mark.slow
def test_yaml_unit_tests_call_the_functions(functions_project: Project) -> None:
    functions_project.write("models/daily.sql", DAILY)
    functions_project.write("tests/test_daily.yaml", YAML_TEST.format(expected=4.0))
    assert functions_project.cli("test").returncode == 0

    functions_project.write("tests/test_daily.yaml", YAML_TEST.format(expected=5.0))
    failed = functions_project.cli("test", check=False)
    assert failed.returncode != 0
    assert "doubled" in failed.stdout + failed.stderr


def test_python_context_api_evaluates_a_model(functions_project: Project) -> None:
    functions_project.write("models/daily.sql", DAILY)
    frame = functions_project.context().evaluate(
        "analytics.daily", start="2024-01-10", end="2024-01-11", execution_time="2024-01-12"
    )
    assert sorted(frame["doubled"]) == [20.0, 22.0]
    assert list(frame.sort_values("doubled")["label"]) == ["low", "high"]


@pytest.mark.slow
def test_audits_call_the_functions(functions_project: Project) -> None:
    functions_project.write(
        "audits/doubled_not_above.sql",
        """
        AUDIT (name doubled_not_above);
        SELECT * FROM @this_model WHERE @double_it(amount) > @limit
        """,
    )
    model = "MODEL (name analytics.audited, kind FULL, audits (doubled_not_above(limit := {limit})));\n" \
            "SELECT amount FROM raw.source WHERE amount IS NOT NULL"
    functions_project.write("models/audited.sql", model.format(limit=100))
    functions_project.cli("plan", "--auto-apply", "--no-prompts")

    functions_project.write("models/audited.sql", model.format(limit=30))
    failed = functions_project.cli("plan", "--auto-apply", "--no-prompts", check=False)
    assert failed.returncode != 0
    assert "doubled_not_above" in failed.stdout and "1 row" in " ".join(failed.stdout.split())


def test_one_function_reached_through_two_macros_modules_is_fine(functions_project: Project) -> None:
    functions_project.write("macros/again.py", "from macros.functions import double_it  # noqa: F401\n")
    functions_project.write("models/m.sql", "MODEL (name analytics.m, kind FULL); SELECT @double_it(2.0) AS d")
    functions_project.plan()
    assert functions_project.query("SELECT d FROM analytics.m") == [(4.0,)]


@pytest.mark.parametrize(
    "source, taken_by",
    [
        ("@udf\ndef double_it(x: float) -> float:\n    return x * 3\n", "another mixmesh function"),
        ("@udf(name='each')\ndef each_one(x: float) -> float:\n    return x\n", "a SQLMesh macro"),
    ],
)
def test_two_functions_with_one_name_are_refused(functions_project: Project, source: str, taken_by: str) -> None:
    functions_project.write("macros/other.py", "from mixmesh import udf\n\n" + source)
    taken = rf"the name '(double_it|each)' is already taken by {taken_by}; give one of them another name with @udf\(name=\.\.\.\)"
    with pytest.raises(FunctionDefinitionError, match=taken):
        functions_project.context()


def test_functions_recreated_from_sqlmesh_state_run_as_inlined_copies(functions_project: Project) -> None:
    """No wrapper frame per row: SQLMesh's stored source is compiled with the row work inside."""
    from mixmesh.engines.duckdb import functions as duckdb_engine

    functions_project.write("models/daily.sql", DAILY)
    context = functions_project.context()
    context.evaluate("analytics.daily", start="2024-01-10", end="2024-01-10", execution_time="2024-01-11")
    bound = duckdb_engine._bindings[context.engine_adapter.connection]
    callables = {name.split("__")[0]: function for name, (_, function) in bound.items()}
    assert callables["double_it"].__name__ == "double_it"
    assert callables["double_it"].__code__.co_filename == "<string>"  # from the stored source


def test_models_in_another_dialect_call_functions(functions_project: Project) -> None:
    """The seed's models are BigQuery SQL; SQLMesh transpiles them, calls included."""
    functions_project.write(
        "macros/typed.py",
        '''
        from datetime import datetime
        from typing import TypedDict

        from mixmesh import udf


        class Stamp(TypedDict):
            at: datetime
            label: str


        @udf
        def stamp(x: float, at: datetime) -> Stamp:
            return {"at": at, "label": f"{x:g}"}
        ''',
    )
    functions_project.write(
        "models/bq.sql",
        """
        MODEL (name analytics.bq, kind FULL, dialect bigquery);
        SELECT customer_id,
               COUNTIF(amount > 0) AS positives,
               SUM(@double_it(amount)) AS doubled,
               ANY_VALUE(@stamp(amount, DATETIME '2024-01-02 03:04:05')) AS stamped
        FROM raw.source
        WHERE amount IS NOT NULL
        GROUP BY customer_id
        """,
    )
    functions_project.plan()
    rows = functions_project.query("SELECT customer_id, positives, doubled, stamped.label, stamped.at::VARCHAR FROM analytics.bq ORDER BY 1")
    assert [row[:3] for row in rows] == [(1, 2, 50.0), (3, 0, -8.0)]
    assert rows[1][3:] == ("-4", "2024-01-02 03:04:05")
