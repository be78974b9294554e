"""Project SQL functions (sql/udfs/*.sql): real SQLMesh projects on DuckDB."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading

import duckdb
import pytest

from sqlmesh.utils.errors import ConfigError

from mixmesh.errors import FunctionDefinitionError
from tests.projects import Project

ENABLE = "import mixmesh.core.sql_functions  # noqa: F401  (a project without @udf turns them on)\n"

RISK = """
-- Activity level from a transaction count (the seed's thresholds).
CREATE OR REPLACE MACRO activity_level(transaction_count) AS
    CASE
        WHEN transaction_count > 50 THEN 'high_activity'
        WHEN transaction_count < 5 THEN 'low_activity'
        ELSE 'normal_activity'
    END;

CREATE MACRO safe_ratio(numerator, denominator) AS numerator / NULLIF(denominator, 0);

-- Calls another project function.
CREATE MACRO activity_label(n) AS upper(activity_level(n));
"""

FEATURES = """
CREATE FUNCTION is_night_hour(ts) AS hour(ts) < 6 OR hour(ts) > 22;

CREATE MACRO first_n(n) AS TABLE SELECT range AS i FROM range(n);
"""

SOURCE = """
MODEL (name raw.counts, kind FULL);
SELECT * FROM (VALUES (1, 0, 10.0, TIMESTAMP '2024-01-01 23:30:00'), (2, 3, 9.0, TIMESTAMP '2024-01-01 12:00:00'),
                      (3, 60, 120.0, TIMESTAMP '2024-01-02 05:59:00')) AS t(customer_id, n, amount, at)
"""

SCORED = """
MODEL (name analytics.scored, kind FULL);
SELECT customer_id, activity_level(n) AS level, safe_ratio(amount, n) AS per_txn,
       activity_label(n) AS label, is_night_hour(at) AS night
FROM raw.counts
"""

EXPECTED_SCORED = [
    (1, "low_activity", None, "LOW_ACTIVITY", True),
    (2, "low_activity", 3.0, "LOW_ACTIVITY", False),
    (3, "high_activity", 2.0, "HIGH_ACTIVITY", True),
]


@pytest.fixture
def functions_project(project: Project) -> Project:
    project.write("macros/enable.py", ENABLE)
    project.write("sql/udfs/risk_scoring_functions.sql", RISK)
    project.write("sql/udfs/feature_extraction.sql", FEATURES)
    project.write("models/counts.sql", SOURCE)
    return project


def test_plan_builds_tables_that_call_sql_functions(functions_project: Project) -> None:
    functions_project.write("models/scored.sql", SCORED)
    functions_project.write(
        "models/numbers.sql", "MODEL (name analytics.numbers, kind FULL); SELECT i FROM first_n(3) AS f"
    )
    functions_project.plan()
    assert functions_project.query("SELECT * FROM analytics.scored ORDER BY 1") == EXPECTED_SCORED
    assert functions_project.query("SELECT i FROM analytics.numbers ORDER BY 1") == [(0,), (1,), (2,)]


def test_functions_are_never_stored_in_the_database(functions_project: Project) -> None:
    """TEMP macros: the user's database holds the tables, not one macro per edited version."""
    functions_project.write("models/scored.sql", SCORED)
    functions_project.plan()
    macros = functions_project.query(
        "SELECT function_name FROM duckdb_functions() WHERE function_type IN ('macro', 'table_macro') AND NOT internal"
    )
    assert macros == []


def test_calls_in_a_bigquery_model_survive_its_translation_to_duckdb(functions_project: Project) -> None:
    """The seed's models are BigQuery SQL; sqlglot translates them, calls of project functions included."""
    functions_project.write(
        "models/bq.sql",
        """
        MODEL (name analytics.bq, kind FULL, dialect bigquery);
        SELECT customer_id, activity_level(COUNTIF(n >= 0) * 60) AS level,
               SAFE_DIVIDE(SUM(amount), SUM(n)) AS builtin, safe_ratio(SUM(amount), SUM(n)) AS ours
        FROM raw.counts
        GROUP BY customer_id
        """,
    )
    context = functions_project.context()
    rendered = context.render("analytics.bq").sql("duckdb")
    assert "ACTIVITY_LEVEL__" in rendered.upper() and "SAFE_RATIO__" in rendered.upper()
    functions_project.plan()
    assert functions_project.query("SELECT * FROM analytics.bq ORDER BY 1") == [
        (1, "high_activity", None, None),
        (2, "high_activity", 3.0, 3.0),
        (3, "high_activity", 2.0, 2.0),
    ]


def test_a_name_the_model_s_dialect_has_as_a_built_in_is_refused(functions_project: Project) -> None:
    """BigQuery reads CONTAINS_SUBSTR(...) as its own function (DuckDB has none): a project
    function of that name would silently never run in a BigQuery model."""
    functions_project.write("sql/udfs/more.sql", "CREATE MACRO contains_substr(a, b) AS position(b IN a) > 0;")
    functions_project.write(
        "models/duck.sql", "MODEL (name analytics.duck, kind FULL); SELECT contains_substr('abc', 'b') AS c"
    )
    functions_project.plan()
    assert functions_project.query("SELECT c FROM analytics.duck") == [(True,)]

    functions_project.write(
        "models/bq.sql", "MODEL (name analytics.bq, kind FULL, dialect bigquery); SELECT contains_substr('abc', 'b') AS c"
    )
    with pytest.raises(ConfigError, match=re.escape(
        "contains_substr(...) is a built-in function of bigquery SQL, the model's dialect, so the call would not reach "
        "the project's SQL function 'contains_substr' (sql/udfs/more.sql:1); give the project function another name"
    )):
        functions_project.context()


def test_python_models_call_sql_functions_through_context_sql(functions_project: Project) -> None:
    functions_project.write(
        "models/levels.py",
        '''
        import pandas as pd

        from mixmesh import python_model


        @python_model(name="analytics.levels", columns={"customer_id": "INT", "level": "TEXT"})
        def levels(context, **kwargs) -> pd.DataFrame:
            return context.sql("SELECT customer_id, activity_label(n) AS level FROM raw.counts").to_pandas()
        ''',
    )
    functions_project.plan()
    assert functions_project.query("SELECT * FROM analytics.levels ORDER BY 1") == [
        (1, "LOW_ACTIVITY"),
        (2, "LOW_ACTIVITY"),
        (3, "HIGH_ACTIVITY"),
    ]


def test_each_session_gets_the_functions_its_statement_calls(functions_project: Project) -> None:
    """A TEMP macro exists only in the session (cursor) that created it; SQLMesh runs each
    thread on its own cursor, and a rollback drops what the transaction created."""
    config = (functions_project.root / "config.yaml").read_text()
    functions_project.write("config.yaml", config.replace("      type: duckdb\n", "      type: duckdb\n      concurrent_tasks: 4\n"))
    functions_project.write("models/scored.sql", SCORED)
    functions_project.plan()
    context = functions_project.context()
    query = context.render("analytics.scored").sql("duckdb")
    adapter = context.engine_adapter
    assert type(adapter._connection_pool).__name__ == "ThreadLocalSharedConnectionPool"  # a cursor per thread
    results = []
    threads = [threading.Thread(target=lambda: results.append(len(adapter.fetchall(query)))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [3, 3, 3]

    with pytest.raises(ZeroDivisionError):
        with adapter.transaction():
            adapter.fetchall(query)
            raise ZeroDivisionError
    assert len(adapter.fetchall(query)) == 3


@pytest.mark.slow
def test_audits_call_sql_functions(functions_project: Project) -> None:
    functions_project.write(
        "audits/no_level.sql",
        "AUDIT (name no_level); SELECT * FROM @this_model WHERE activity_level(n) = @level",
    )
    model = "MODEL (name analytics.audited, kind FULL, audits (no_level(level := '{level}'))); SELECT n FROM raw.counts"
    functions_project.write("models/audited.sql", model.format(level="normal_activity"))
    functions_project.cli("plan", "--auto-apply", "--no-prompts")

    functions_project.write("models/audited.sql", model.format(level="high_activity"))
    failed = functions_project.cli("plan", "--auto-apply", "--no-prompts", check=False)
    assert failed.returncode != 0
    assert "no_level" in failed.stdout and "1 row" in " ".join(failed.stdout.split())


def test_model_test_runs_a_model_that_calls_sql_functions(functions_project: Project) -> None:
    """mixmesh.testing.ModelTest runs on SQLMesh's test connection (in-memory DuckDB)."""
    from mixmesh.testing import ModelTest

    functions_project.write("models/scored.sql", SCORED)
    assert ModelTest(
        model_name="analytics.scored",
        inputs={"raw.counts": [{"customer_id": 7, "n": 51, "amount": 102.0, "at": "2024-01-01 02:00:00"}]},
        expected_outputs=[
            {"customer_id": 7, "level": "high_activity", "per_txn": 2.0, "label": "HIGH_ACTIVITY", "night": True}
        ],
        context=functions_project.context(),
    ).run()


def test_register_sql_functions_on_a_plain_duckdb_connection(functions_project: Project) -> None:
    from mixmesh.engines.duckdb import register_sql_functions

    connection = duckdb.connect()
    names = register_sql_functions(connection, functions_project.root)
    assert names == ["activity_label", "activity_level", "first_n", "is_night_hour", "safe_ratio"]
    assert connection.sql("SELECT activity_label(51), safe_ratio(1, 0), count(*) FROM first_n(4)").fetchall() == [
        ("HIGH_ACTIVITY", None, 4)
    ]


# --- change detection -----------------------------------------------------------------------------

MODELS = {
    "models/levels.sql": "MODEL (name analytics.levels, kind FULL); SELECT activity_level(n) AS l FROM raw.counts",
    "models/labels.sql": "MODEL (name analytics.labels, kind FULL); SELECT activity_label(n) AS l FROM raw.counts",
    "models/ratios.sql": "MODEL (name analytics.ratios, kind FULL); SELECT safe_ratio(amount, n) AS r FROM raw.counts",
    "models/plain.sql": "MODEL (name analytics.plain, kind FULL); SELECT n FROM raw.counts",
}


@pytest.fixture
def planned(functions_project: Project) -> Project:
    for path, sql in MODELS.items():
        functions_project.write(path, sql)
    functions_project.plan()
    return functions_project


def changed_models(project: Project) -> set[str]:
    """The models a new plan lists as directly modified."""
    context = project.context()
    diff = context.plan(no_prompts=True, auto_apply=False).context_diff
    names = {context.get_model(n).fqn: n for n in ("analytics.levels", "analytics.labels", "analytics.ratios", "analytics.plain")}
    return {names[fqn] for fqn in diff.modified_snapshots if fqn in names and diff.directly_modified(fqn)}


@pytest.mark.slow
def test_editing_a_function_changes_its_callers_and_the_callers_of_functions_calling_it(planned: Project) -> None:
    planned.write("sql/udfs/risk_scoring_functions.sql", RISK.replace("> 50", "> 40"))
    assert changed_models(planned) == {"analytics.levels", "analytics.labels"}
    planned.plan()
    assert planned.query("SELECT l FROM analytics.labels ORDER BY 1") == [("HIGH_ACTIVITY",), ("LOW_ACTIVITY",), ("LOW_ACTIVITY",)]

    planned.write("sql/udfs/risk_scoring_functions.sql", RISK.replace("> 50", "> 40").replace("NULLIF(denominator, 0)", "NULLIF(denominator, -1)"))
    assert changed_models(planned) == {"analytics.ratios"}


@pytest.mark.slow
def test_unrelated_edits_change_nothing(planned: Project) -> None:
    """Comments, layout, OR REPLACE, moving a function to another file, new functions."""
    edited = (
        RISK.replace("-- Calls another project function.", "-- Calls activity_level; edited comment.")
        .replace("CREATE OR REPLACE MACRO activity_level", "create macro ACTIVITY_LEVEL")
        .replace("        WHEN transaction_count < 5", "  WHEN transaction_count < 5")
    )
    moved = "CREATE MACRO safe_ratio(numerator, denominator) AS numerator / NULLIF(denominator, 0);"
    planned.write("sql/udfs/risk_scoring_functions.sql", edited.replace(moved, ""))
    planned.write("sql/udfs/ratios.sql", f"/* moved here */\n{moved}\n\nCREATE MACRO unused_yet(x) AS x + 1;\n")
    assert changed_models(planned) == set()


@pytest.mark.slow
def test_a_function_called_only_by_an_audit_changes_only_the_metadata(functions_project: Project) -> None:
    functions_project.write(
        "audits/not_empty_level.sql",
        "AUDIT (name not_empty_level); SELECT * FROM @this_model WHERE activity_level(n) IS NULL",
    )
    functions_project.write(
        "models/audited.sql",
        "MODEL (name analytics.audited, kind FULL, audits (not_empty_level)); SELECT n FROM raw.counts",
    )
    before = functions_project.context().get_snapshot("analytics.audited").fingerprint
    functions_project.write("sql/udfs/risk_scoring_functions.sql", RISK.replace("> 50", "> 40"))
    after = functions_project.context().get_snapshot("analytics.audited").fingerprint
    assert after.data_hash == before.data_hash and after.metadata_hash != before.metadata_hash


FINGERPRINTS = """
import json, sys
if sys.argv[1] == "with-mixmesh":
    import mixmesh.core.sql_functions
from sqlmesh import Context
context = Context(paths=sys.argv[2])
print(json.dumps({
    name: [snapshot.fingerprint.to_identifier(),
           {k: v.payload for k, v in sorted(snapshot.model.python_env.items())}]
    for name, snapshot in sorted(context.snapshots.items())
}))
"""


@pytest.mark.slow
def test_models_that_call_no_sql_function_are_unaffected(functions_project: Project) -> None:
    """Fingerprints and stored code are byte for byte those of SQLMesh without mixmesh."""
    functions_project.write("models/plain.sql", MODELS["models/plain.sql"])
    (functions_project.root / "macros/enable.py").unlink()

    def fingerprints(mode: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-c", FINGERPRINTS, mode, str(functions_project.root)],
            capture_output=True, text=True, check=True,
        )
        return json.loads(result.stdout.strip().splitlines()[-1])

    without = fingerprints("without-mixmesh")
    assert len(without) == 2
    assert fingerprints("with-mixmesh") == without


# --- the commands, each in a fresh process ----------------------------------------------------------

DAILY = """
MODEL (
    name analytics.daily,
    kind INCREMENTAL_BY_TIME_RANGE (time_column day),
    cron '@daily',
    start '2024-01-01'
);
SELECT day, n, activity_level(n) AS level, activity_label(n) AS label
FROM (SELECT range::DATE AS day, (EXTRACT(day FROM range) * 10)::INT AS n
      FROM range(DATE '2024-01-01', DATE '2024-02-01', INTERVAL 1 DAY))
WHERE day BETWEEN @start_date AND @end_date
"""


def level(n: int) -> str:
    return "high_activity" if n > 50 else "low_activity" if n < 5 else "normal_activity"


@pytest.mark.slow
def test_sqlmesh_run_in_a_fresh_process_uses_the_planned_definitions(functions_project: Project) -> None:
    functions_project.write("models/daily.sql", DAILY)
    functions_project.plan(execution_time="2024-01-04")
    # Edited but not planned: `sqlmesh run` keeps computing with what the plan stored.
    functions_project.write("sql/udfs/risk_scoring_functions.sql", RISK.replace("> 50", "> 0"))

    functions_project.cli("run", "--end", "2024-01-07")

    rows = functions_project.query("SELECT day::VARCHAR, level, label FROM analytics.daily ORDER BY day")
    assert rows == [(f"2024-01-0{d}", level(10 * d), level(10 * d).upper()) for d in range(1, 8)]


YAML_TEST = """
test_daily_levels:
  model: analytics.daily
  vars:
    start: 2024-01-06
    end: 2024-01-06
  outputs:
    query:
      rows:
        - day: 2024-01-06
          n: 60
          level: {expected}
          label: HIGH_ACTIVITY
"""


@pytest.mark.slow
def test_yaml_unit_tests_call_the_functions(functions_project: Project) -> None:
    functions_project.write("models/daily.sql", DAILY)
    functions_project.write("tests/test_daily.yaml", YAML_TEST.format(expected="high_activity"))
    assert functions_project.cli("test").returncode == 0

    functions_project.write("tests/test_daily.yaml", YAML_TEST.format(expected="normal_activity"))
    failed = functions_project.cli("test", check=False)
    assert failed.returncode != 0 and "level" in failed.stdout + failed.stderr


@pytest.mark.slow
def test_render_and_evaluate_from_the_command_line(functions_project: Project) -> None:
    functions_project.write("models/daily.sql", DAILY)
    rendered = functions_project.cli("render", "analytics.daily").stdout
    assert "activity_level__" in rendered.lower() and "create macro" not in rendered.lower()

    evaluated = functions_project.cli("evaluate", "analytics.daily", "--start", "2024-01-05", "--end", "2024-01-06").stdout
    assert "normal_activity" in evaluated and "high_activity" in evaluated


# --- refusals and errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement, refused",
    [
        ("DROP MACRO activity_level;", "a DROP MACRO statement"),
        ("INSERT INTO raw.counts VALUES (9, 9, 9.0, NULL);", "an INSERT statement"),
        ("CREATE TABLE scratch (x INT);", "a CREATE TABLE statement"),
        ("CREATE VIEW v AS SELECT 1;", "a CREATE VIEW statement"),
        ("SELECT 1;", "a SELECT statement"),
        ("PRAGMA enable_profiling;", "a PRAGMA statement"),
        ("SET threads = 1;", "a SET statement"),
    ],
)
def test_only_function_definitions_are_accepted(functions_project: Project, statement: str, refused: str) -> None:
    functions_project.write("sql/udfs/risk_scoring_functions.sql", RISK + "\n\n" + statement + "\n")
    line = RISK.lstrip().count("\n") + 3
    with pytest.raises(FunctionDefinitionError) as failure:
        functions_project.context()
    assert f"sql/udfs/risk_scoring_functions.sql:{line}: sql/udfs/ holds function definitions only" in str(failure.value)
    assert f"refused {refused}" in str(failure.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("CREATE MACRO a(x) AS x;\n\nCREATE MACRO b(x) AS\n  x +\n  (;\n", "bad.sql:5: syntax error"),
        ("CREATE MACRO a(x) AS x;\n\n\nCREATE MACRO b(x) AS 'unterminated;\n", "bad.sql:4: syntax error"),
        ("CREATE MACRO b(x) AS 'a' || x;\n", "bad.sql:1: sqlglot cannot read this function definition"),
        ("CREATE MACRO b(x, y := 2) AS x + y;\n", "bad.sql:1: syntax error"),
    ],
)
def test_a_syntax_error_names_the_file_and_line(functions_project: Project, text: str, expected: str) -> None:
    functions_project.write("sql/udfs/bad.sql", text)
    with pytest.raises(FunctionDefinitionError, match=expected):
        functions_project.context()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("CREATE MACRO activity_level(n) AS n;", "risk_scoring_functions.sql:2: the SQL function 'activity_level' is "
         "already defined at sql/udfs/more.sql:1; give one of them another name"),
        ("CREATE MACRO main.helper(n) AS n;", "more.sql:1: main.helper: a project SQL function has a plain name, without a schema"),
        ("CREATE MACRO safe_divide(a, b) AS a / b;", "more.sql:1: 'safe_divide' is a SQL built-in function; models calling "
         "it would get the built-in one. Give the project function another name"),
        ("CREATE MACRO lookup(n) AS (SELECT max(n) FROM raw.counts);", "more.sql:1: SQL function 'lookup' reads the table "
         "raw.counts; SQLMesh cannot see a dependency hidden in a function. Pass the values as arguments, or join the table "
         "in the model"),
        ("CREATE MACRO ping(n) AS pong(n);\nCREATE MACRO pong(n) AS ping(n);", "more.sql:1: SQL function 'ping' calls itself "
         "(ping -> pong -> ping); SQL functions cannot be recursive"),
    ],
)
def test_definitions_that_cannot_work_are_refused(functions_project: Project, text: str, expected: str) -> None:
    functions_project.write("sql/udfs/more.sql", text)
    with pytest.raises(FunctionDefinitionError, match=re.escape(expected)):
        functions_project.context()


def test_a_definition_the_engine_refuses_names_the_function_and_its_file(functions_project: Project) -> None:
    functions_project.plan()
    functions_project.write("sql/udfs/more.sql", "-- hourr: a typo\nCREATE MACRO late(ts) AS hourr(ts) > 22;\n")
    functions_project.write("models/late.sql", "MODEL (name analytics.late, kind FULL); SELECT late(at) AS l FROM raw.counts")
    with pytest.raises(FunctionDefinitionError) as failure:
        functions_project.context().evaluate("analytics.late", start="2024-01-01", end="2024-01-01", execution_time="2024-01-02")
    message = str(failure.value)
    assert "SQL function 'late' (sql/udfs/more.sql:2): DuckDB cannot create it:" in message
    assert "hourr" in message and "late__" not in message.lower()


def test_a_name_taken_by_a_python_function_is_refused(functions_project: Project) -> None:
    functions_project.write(
        "macros/python.py", "from mixmesh import udf\n\n\n@udf\ndef safe_ratio(a: float, b: float) -> float:\n    return a / b\n"
    )
    with pytest.raises(FunctionDefinitionError, match=re.escape(
        "the name 'safe_ratio' is already taken by the mixmesh function safe_ratio (macros.python.safe_ratio); "
        "give one of them another name"
    )):
        functions_project.context()


def test_a_view_calling_a_sql_function_is_refused(functions_project: Project) -> None:
    functions_project.write(
        "models/levels.sql", "MODEL (name analytics.levels, kind VIEW); SELECT activity_level(n) AS l FROM raw.counts"
    )
    with pytest.raises(FunctionDefinitionError, match=re.escape(
        "model analytics.levels is a VIEW and calls the project SQL function(s) activity_level: the view would call "
        "them whenever it is read"
    )):
        functions_project.context()


@pytest.mark.slow
@pytest.mark.parametrize(
    "call, expected",
    [
        ("activty_level(n)", 'Did you mean the project SQL function "activity_level" (sql/udfs/risk_scoring_functions.sql:2)?'),
        ("activity_level(n, 2)", "activity_level(transaction_count)"),
    ],
)
def test_engine_errors_name_functions_as_models_call_them(functions_project: Project, call: str, expected: str) -> None:
    functions_project.write("models/scored.sql", SCORED)
    functions_project.cli("plan", "--auto-apply", "--no-prompts")
    functions_project.write("models/typo.sql", f"MODEL (name analytics.typo, kind FULL); SELECT {call} AS l FROM raw.counts")
    failed = functions_project.cli("plan", "--auto-apply", "--no-prompts", check=False)
    text = " ".join((failed.stdout + failed.stderr).split())
    assert failed.returncode != 0 and expected in text, text
    assert "activity_level__" not in text.lower() and "Traceback" not in text, text
    assert text.endswith("Error: Plan application failed."), text[-300:]
    assert functions_project.query(  # the model's table was never created
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'analytics' AND table_name = 'typo'"
    ) == [(0,)]


# --- what mixmesh relies on in SQLMesh ------------------------------------------------------------


def test_every_sqlmesh_module_that_imported_make_python_env_gets_the_hook() -> None:
    """SQLMesh modules import make_python_env by name; a new importer after an upgrade would
    build environments without the definitions of the SQL functions its expressions call."""
    import importlib
    import pkgutil

    import sqlmesh
    import mixmesh.sqlmesh as sqlmesh_integration
    from sqlmesh.core.model import common

    sqlmesh_integration.install()
    hooked = common.make_python_env
    assert hooked.__wrapped__.__module__ == "sqlmesh.core.model.common"
    importers = []
    for info in pkgutil.walk_packages(sqlmesh.__path__, "sqlmesh."):
        if not info.name.startswith(("sqlmesh.core", "sqlmesh.utils")):
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception:
            continue
        if "make_python_env" in vars(module):
            importers.append(info.name)
            assert vars(module)["make_python_env"] is hooked, info.name
    assert set(importers) == {
        "sqlmesh.core.model.common", "sqlmesh.core.model.definition", "sqlmesh.core.loader", "sqlmesh.core.audit.definition"
    }


def test_sqlmesh_internals_the_hooks_rely_on_are_there() -> None:
    """Renderers create the macro evaluator (which re-creates the stored environment, importing
    mixmesh) before transforming each expression with it; engine adapters run every statement
    through _execute(sql) on the session's cursor; loaders track files and key their model
    cache on _macros_max_mtime; `sqlmesh run` does not load the project."""
    import inspect

    import mixmesh.sqlmesh as sqlmesh_integration
    from sqlmesh.cli import main
    from sqlmesh.core import loader, macros, renderer
    from sqlmesh.core.engine_adapter.base import EngineAdapter

    sqlmesh_integration.install()

    render = inspect.getsource(renderer.BaseExpressionRenderer._render)
    assert render.index("MacroEvaluator(") < render.index("macro_evaluator.transform(expression)")
    assert "prepare_env(self.python_env" in inspect.getsource(macros.MacroEvaluator.__init__)
    assert "run" in main.SKIP_LOAD_COMMANDS  # why the stored value must import mixmesh
    assert list(inspect.signature(EngineAdapter._execute.__wrapped__.__wrapped__).parameters)[:2] == ["self", "sql"]
    assert "self.cursor.execute(sql" in inspect.getsource(EngineAdapter._execute.__wrapped__.__wrapped__)
    source = inspect.getsource(loader.SqlMeshLoader._Cache._model_cache_entry_id)
    assert "_macros_max_mtime" in source
    assert callable(loader.SqlMeshLoader._track_file) and callable(loader.SqlMeshLoader._glob_paths)
