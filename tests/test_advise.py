"""`mixmesh advise`: the pattern each model follows, from its structure, beside the one the seed's
framework recommends, from declared requirements and measured figures."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import typing as t
from pathlib import Path

import pytest

from mixmesh import python_model
from mixmesh.advice import AdviceError, DataSpan, Measured, advise, measure
from mixmesh.advice.advisor import HYBRID, PYTHON_PRIMARY, SQL_PRIMARY
from mixmesh.core.models import ModelDefinitionError
from mixmesh.monitor.records import ModelRun, new_id
from mixmesh.monitor.store import DEFAULT_PATH, MetricsStore
from mixmesh.advice.structure import PLAIN_PYTHON, PLAIN_SQL
from tests import fresh_process
from tests.projects import Project

REPOSITORY = Path(__file__).resolve().parents[1]
EXAMPLE = REPOSITORY / "examples" / "customer_analytics"

FUNCTIONS = '''
from mixmesh import udf


@udf
def double_it(x: float) -> float:
    return x * 2.0


@udf
def score(x: float) -> float:
    return x / 10.0
'''

SQL_FUNCTIONS = "CREATE MACRO tier(x) AS CASE WHEN x > 1 THEN 'high' ELSE 'low' END;\n"

EVENTS = "MODEL (name raw.events, kind FULL); SELECT i AS id, i::DOUBLE AS x FROM range(10) AS t(i)"

# name -> (query, the pattern it follows)
SQL_MODELS = {
    "plain": ("SELECT id, x * 2 AS y FROM raw.events", PLAIN_SQL),
    "sql_function_only": ("SELECT id, tier(x) AS t FROM raw.events", PLAIN_SQL),
    "one_call": ("SELECT id, @score(x) AS s FROM raw.events", SQL_PRIMARY),
    "result_used_by_sql": (
        "WITH scored AS (SELECT id, @score(x) AS s FROM raw.events) "
        "SELECT id, s, tier(s) AS t, CASE WHEN s > 0.5 THEN 'hi' END AS flag FROM scored",
        SQL_PRIMARY,
    ),
    "two_calls_one_stage": ("SELECT id, @score(x) AS s, @double_it(x) AS d FROM raw.events", SQL_PRIMARY),
    "parallel_stages": (
        "WITH a AS (SELECT id, @double_it(x) AS d FROM raw.events), b AS (SELECT id, @score(x) AS s FROM raw.events) "
        "SELECT a.id, a.d, b.s FROM a JOIN b ON a.id = b.id",
        SQL_PRIMARY,
    ),
    "nested": ("SELECT id, @score(@double_it(x)) AS s FROM raw.events", HYBRID),
    "through_a_cte": (
        "WITH doubled AS (SELECT id, @double_it(x) AS d FROM raw.events) SELECT id, @score(d) AS s FROM doubled",
        HYBRID,
    ),
    "through_an_alias": ("SELECT id, @double_it(x) AS d, @score(d) AS s FROM raw.events", HYBRID),
    "through_sql_arithmetic": (
        "WITH doubled AS (SELECT id, @double_it(x) + 1 AS d FROM raw.events), "
        "renamed AS (SELECT id, d * 3 AS e FROM doubled) SELECT id, @score(e) AS s FROM renamed",
        HYBRID,
    ),
    "two_stages_reading_each_other": (
        "WITH doubled AS (SELECT id, x, @double_it(x) AS d FROM raw.events) SELECT id, d, @score(x) AS s FROM doubled",
        HYBRID,
    ),
    "in_a_derived_table": (
        "SELECT id, @score(d) AS s FROM (SELECT id, @double_it(x) AS d FROM raw.events) AS inner_rows",
        HYBRID,
    ),
    "union_branches": (
        "SELECT id, @score(x) AS s FROM raw.events UNION ALL SELECT id, @double_it(x) AS s FROM raw.events",
        SQL_PRIMARY,
    ),
    "through_a_union": (
        "WITH u AS (SELECT id, x AS d FROM raw.events UNION ALL SELECT id, @double_it(x) AS d FROM raw.events) "
        "SELECT id, @score(d) AS s FROM u",
        HYBRID,
    ),
    # A table SQLMesh knows no columns of: the query stays unqualified, stars unexpanded.
    "unknown_source_star": (
        "WITH doubled AS (SELECT *, @double_it(x) AS d FROM elsewhere.things) SELECT *, @score(d) AS s FROM doubled",
        HYBRID,
    ),
}

PYTHON_MODELS = {
    "models/reads_sql.py": (
        '''
import pandas as pd
from mixmesh import python_model


@python_model(name="analytics.reads_sql", columns={"id": "BIGINT", "x": "DOUBLE"})
def reads_sql(context, **kwargs) -> pd.DataFrame:
    return context.sql("SELECT id, x FROM raw.events").to_pandas()
''',
        PYTHON_PRIMARY,
    ),
    "models/reads_nothing.py": (
        '''
import pandas as pd
from mixmesh import python_model


@python_model(name="analytics.reads_nothing", columns={"id": "BIGINT"})
def reads_nothing(context, **kwargs) -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2]})
''',
        PLAIN_PYTHON,
    ),
    "models/sqlmesh_model.py": (
        '''
import pandas as pd
from sqlmesh import model


@model("analytics.sqlmesh_model", columns={"id": "BIGINT"}, kind="FULL")
def execute(context, **kwargs) -> pd.DataFrame:
    table = context.resolve_table("raw.events")
    return context.fetchdf(f"SELECT id FROM {table}")
''',
        PYTHON_PRIMARY,
    ),
}

DECLARED_SQL = """
MODEL (
    name analytics.declared,
    kind FULL,
    session_properties (
        mixmesh_requirements = (machine_learning = true, external_apis = true, latency_sla_ms = {latency}, dynamic_schemas = false)
    )
);
SELECT id, @score(x) AS s FROM raw.events
"""

DECLARED_PYTHON = '''
import pandas as pd
from mixmesh import python_model


@python_model(
    name="analytics.declared_py",
    columns={{"id": "BIGINT"}},
    requirements={requirements},
)
def declared_py(context, **kwargs) -> pd.DataFrame:
    return context.sql("SELECT id FROM raw.events").to_pandas()
'''

ML_STATS_APIS = {"machine_learning": True, "advanced_statistics": True, "external_apis": True}


@pytest.fixture
def functions(project: Project) -> Project:
    project.write("macros/functions.py", FUNCTIONS)
    project.write("sql/udfs/tiers.sql", SQL_FUNCTIONS)
    project.write("models/events.sql", EVENTS)
    return project


def advice_by_model(project: Project, **kwargs: t.Any) -> dict:
    project.close()
    return {item.model: item for item in advise(project.root, **kwargs)}


def test_structure_of_sql_and_python_models(functions: Project) -> None:
    for name, (query, _) in SQL_MODELS.items():
        functions.write(f"models/{name}.sql", f"MODEL (name analytics.{name}, kind FULL); {query}")
    for path, (source, _) in PYTHON_MODELS.items():
        functions.write(path, source)
    advice = advice_by_model(functions)
    expected = {f"analytics.{name}": pattern for name, (_, pattern) in SQL_MODELS.items()}
    expected.update({f"analytics.{Path(path).stem}": pattern for path, (_, pattern) in PYTHON_MODELS.items()})
    expected["raw.events"] = PLAIN_SQL
    assert {name: item.structure.pattern for name, item in advice.items()} == expected

    assert advice["analytics.nested"].structure.reason == (
        "Python output feeds more Python through SQL: score takes the result of double_it"
    )
    assert advice["analytics.through_a_cte"].structure.reason == (
        "Python output feeds more Python through SQL: score takes the result of double_it; "
        "Python at several stages: doubled, then the final SELECT, which reads it"
    )
    assert advice["analytics.two_stages_reading_each_other"].structure.reason == (
        "Python at several stages: doubled, then the final SELECT, which reads it"
    )
    assert advice["analytics.through_sql_arithmetic"].structure.reason.startswith(
        "Python output feeds more Python through SQL: score takes the result of double_it"
    )
    assert advice["analytics.parallel_stages"].structure.reason == (
        "SQL calls double_it, score at stages that do not read each other (a, b); "
        "no Python function takes a Python result"
    )
    assert advice["analytics.one_call"].structure.reason == (
        "SQL calls score at one stage (the final SELECT); no Python function takes a Python result"
    )
    assert advice["analytics.union_branches"].structure.reason.startswith(
        "SQL calls score, double_it at stages that do not read each other "
        "(UNION branch 1 of the final SELECT, UNION branch 2 of the final SELECT)"
    )
    assert advice["analytics.through_a_union"].structure.reason.startswith(
        "Python output feeds more Python through SQL: score takes the result of double_it; "
        "Python at several stages: UNION branch 2 of u, then the final SELECT"
    )
    assert advice["analytics.sql_function_only"].structure.reason == "a SQL model calling no Python function"
    assert advice["analytics.reads_sql"].structure.reason == "a Python model reading raw.events through SQL"
    assert advice["analytics.reads_nothing"].structure.reason == "a Python model reading no table"
    assert advice["analytics.two_calls_one_stage"].structure.functions == ("score", "double_it")
    # Plain models are compared with the pattern closest to them.
    assert advice["analytics.plain"].matches and advice["analytics.plain"].choice.pattern == SQL_PRIMARY
    assert not advice["analytics.reads_nothing"].matches


def test_requirements_declared_in_a_sql_model(functions: Project) -> None:
    functions.write("models/declared.sql", DECLARED_SQL.format(latency=5000))
    item = advice_by_model(functions, model="analytics.declared")["analytics.declared"]
    assert item.requirements == {
        "machine_learning": True, "external_apis": True, "latency_sla_ms": 5000, "dynamic_schemas": False
    }
    assert (item.structure.pattern, item.choice.pattern, item.matches) == (SQL_PRIMARY, HYBRID, False)
    assert item.choice.reason.startswith("2 complexity need(s) (machine_learning, external_apis)")
    assert "machine_learning = true: declared in MODEL (session_properties)" in item.reasons

    functions.write("models/declared.sql", DECLARED_SQL.format(latency=500))
    item = advice_by_model(functions, model="analytics.declared")["analytics.declared"]
    assert (item.choice.pattern, item.matches) == (SQL_PRIMARY, True)
    assert "latency SLA 500 ms is under 1,000 ms" in item.choice.reason


@pytest.mark.parametrize(
    ("requirements", "message"),
    [
        ("(latency_ms = 5)", r"analytics.declared \(.*declared.sql\): mixmesh_requirements: unknown requirement\(s\) latency_ms"),
        ("(daily_row_count = 'lots')", "daily_row_count must be a number, not 'lots'"),
        ("(machine_learning = yes)", "machine_learning = yes: a requirement's value is a number, true or false"),
        ("'machine_learning'", "write it as \\(name = value, ...\\)"),
    ],
)
def test_a_bad_declared_requirement_names_the_model(functions: Project, requirements: str, message: str) -> None:
    functions.write(
        "models/declared.sql",
        f"MODEL (name analytics.declared, kind FULL, session_properties (mixmesh_requirements = {requirements})); SELECT 1 AS x",
    )
    with pytest.raises(AdviceError, match=message):
        advice_by_model(functions)


def test_requirements_declared_in_a_python_model(functions: Project) -> None:
    functions.write("models/declared_py.py", DECLARED_PYTHON.format(requirements=ML_STATS_APIS))
    item = advice_by_model(functions, model="analytics.declared_py")["analytics.declared_py"]
    assert item.requirements == ML_STATS_APIS
    assert (item.structure.pattern, item.choice.pattern, item.matches) == (PYTHON_PRIMARY, PYTHON_PRIMARY, True)
    assert "advanced_statistics = true: declared in the model's decorator" in item.reasons


def test_requirements_are_metadata(functions: Project) -> None:
    """Editing requirements changes a model's metadata hash, not its data hash: nothing is rebuilt."""

    def hashes() -> dict:
        context = functions.context()
        models = {name: context.get_model(name) for name in ("analytics.declared", "analytics.declared_py")}
        return {name: (model.data_hash, model.metadata_hash) for name, model in models.items()}

    functions.write("models/declared.sql", DECLARED_SQL.format(latency=5000))
    functions.write("models/declared_py.py", DECLARED_PYTHON.format(requirements={"machine_learning": True}))
    before = hashes()
    stored = functions.context().get_model("analytics.declared_py").python_env["declared_py"].payload
    assert "requirements" not in stored and "@python_model(" in stored

    functions.write("models/declared.sql", DECLARED_SQL.format(latency=500))
    functions.write("models/declared_py.py", DECLARED_PYTHON.format(requirements=ML_STATS_APIS))
    after = hashes()
    for name in before:
        assert before[name][0] == after[name][0], f"{name}: data hash changed"
        assert before[name][1] != after[name][1], f"{name}: metadata hash unchanged"


@pytest.mark.slow
def test_a_project_with_declared_requirements_plans_and_runs(functions: Project) -> None:
    functions.write("models/declared.sql", DECLARED_SQL.format(latency=5000))
    functions.write("models/declared_py.py", DECLARED_PYTHON.format(requirements=ML_STATS_APIS))
    functions.plan()
    assert functions.query("SELECT count(*) FROM analytics.declared_py") == [(10,)]
    functions.cli("run")  # a fresh process re-creates the Python model from its stored source
    assert functions.query("SELECT round(sum(s), 3) FROM analytics.declared") == [(4.5,)]


@pytest.mark.parametrize(
    ("requirements", "message"),
    [
        ({"latency": 5}, r"model analytics.bad: requirements=: unknown requirement\(s\) latency; known: latency_sla_ms"),
        ({"daily_row_count": "many"}, "daily_row_count must be a number, not 'many'"),
        (["machine_learning"], "requirements must be a mapping"),
    ],
)
def test_bad_python_model_requirements_are_refused_where_declared(requirements: t.Any, message: str) -> None:
    with pytest.raises(ModelDefinitionError, match=message):

        @python_model(name="analytics.bad", columns={"id": "INT"}, requirements=requirements)
        def bad(context: t.Any) -> None: ...


def test_requirements_declared_twice_are_refused(functions: Project) -> None:
    functions.write(
        "models/twice.py",
        '''
import pandas as pd
from mixmesh import python_model


@python_model(name="analytics.twice", columns={"id": "BIGINT"}, requirements={"machine_learning": True},
              session_properties={"mixmesh_requirements": {"external_apis": True}})
def twice(context, **kwargs) -> pd.DataFrame:
    return pd.DataFrame({"id": [1]})
''',
    )
    with pytest.raises(Exception, match="requirements are declared twice"):
        functions.context()


# --- measured figures --------------------------------------------------------------------------


def run(model: str, day: int, rows: int, total_s: float = 1.0, *, hours: int = 24, command: str = "run",
        status: str = "ok", started: int = 0) -> ModelRun:
    start = dt.datetime(2024, 1, 1) + dt.timedelta(days=day)
    began = dt.datetime(2024, 3, 1) + dt.timedelta(minutes=started)
    return ModelRun(
        run_id=new_id(), model=model, command=command, environment="prod", engine="duckdb",
        interval_start=start, interval_end=start + dt.timedelta(hours=hours), started_at=began,
        ended_at=began + dt.timedelta(seconds=total_s), total_s=total_s, python_s=total_s / 2, sql_s=total_s / 2,
        rows_in=rows, rows_out=rows, rows_per_s=rows / total_s, peak_rss_mb=100.0, status=status,
    )


def test_measured_figures(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "metrics.duckdb")
    store.append([
        run("analytics.m", 0, 1_000, 1.0, started=0),
        run("analytics.m", 1, 2_000, 2.0, started=1),
        run("analytics.m", 2, 3_000, 3.0, started=2),
        run("analytics.m", 0, 1_500, 4.0, started=3),  # day 0 rebuilt: its latest rows count
        run("analytics.m", 3, 7, 100.0, command="test", started=4),  # a unit test: left out
        run("analytics.m", 4, 9_999_999, 100.0, status="failed", started=5),  # failed: left out
    ])
    measured = measure(store.model_runs(model="analytics.m"))
    assert measured == Measured(runs=4, p95_total_ms=pytest.approx(3850.0), daily_row_count=2_167, intervals=3, interval_days=3.0)

    hourly = MetricsStore(tmp_path / "hourly.duckdb")
    hourly.append([run("analytics.h", 0, 100, hours=1), run("analytics.h", 1, 300, hours=1)])
    assert measure(hourly.model_runs()).daily_row_count == 4_800  # 400 rows over 2 hours

    assert measure(MetricsStore(tmp_path / "none.duckdb").model_runs()) == Measured()


def test_measured_rows_feed_the_framework_and_declared_beat_them(functions: Project) -> None:
    functions.write("models/one_call.sql", "MODEL (name analytics.one_call, kind INCREMENTAL_BY_TIME_RANGE (time_column d)); "
                    "SELECT id, @score(x) AS s, @start_date AS d FROM raw.events")
    functions.write("models/declared_py.py", DECLARED_PYTHON.format(requirements={"machine_learning": True, "daily_row_count": 1_000}))
    store = MetricsStore(functions.root / DEFAULT_PATH)  # the project's own store, the default
    store.append([run("analytics.one_call", day, 300_000_000, 2.0, started=day) for day in range(3)])
    store.append([run("analytics.declared_py", day, 200_000_000, 8.0, started=day) for day in range(2)])
    advice = advice_by_model(functions)

    measured = advice["analytics.one_call"]
    assert measured.requirements == {"daily_row_count": 300_000_000}
    assert (measured.choice.pattern, measured.matches) == (SQL_PRIMARY, True)
    assert measured.choice.reason.startswith("300,000,000 rows a day is over 100,000,000")
    assert (
        "daily_row_count = 300,000,000: measured: 300,000,000 rows a day: rows written over 3 day(s) of 3 interval(s)"
        in measured.reasons
    )
    assert (
        "p95_run_ms = 2,000.0: measured over 3 run(s); shown beside, the framework takes a declared latency_sla_ms only"
        in measured.reasons
    )
    assert "latency_sla_ms" not in measured.requirements

    declared = advice["analytics.declared_py"]  # a FULL model: no rows a day measured, the declared one stands
    assert declared.requirements == {"machine_learning": True, "daily_row_count": 1_000}
    assert declared.choice.pattern == HYBRID
    assert "daily_row_count = 1,000: declared in the model's decorator" in declared.reasons
    assert advice["raw.events"].reasons[2:] == ["no requirements declared", "no runs of this model in the metrics store"]


def test_a_full_models_rows_a_day_come_from_its_data_not_from_its_start_date(functions: Project) -> None:
    """Regression: a FULL model is evaluated over an interval from its start (2024-01-01 here) to
    today, so its 50 rows read "0 rows a day over 1,000+ days"; they cover 10 days of d."""
    functions.write("models/daily.sql", """
        MODEL (name analytics.daily, kind FULL);
        SELECT i AS id, DATE '2026-03-01' + (i % 10)::INT AS d FROM range(50) AS t(i)
    """)
    functions.write("models/two_dates.sql", """
        MODEL (name analytics.two_dates, kind FULL);
        SELECT i AS id, DATE '2026-03-01' AS opened, DATE '2026-03-09' AS closed FROM range(40) AS t(i)
    """)
    functions.write("models/by_day.sql", """
        MODEL (name analytics.by_day, kind INCREMENTAL_BY_TIME_RANGE (time_column d), start '2026-03-01',
               end '2026-03-04', cron '@daily');
        SELECT i AS id, @start_date + (i % 4)::INT AS d FROM range(28) AS t(i)
    """)
    functions.plan()
    advice = advice_by_model(functions)

    daily = advice["analytics.daily"]
    assert daily.measured.span == DataSpan("d", 50, dt.date(2026, 3, 1), dt.date(2026, 3, 10))
    assert daily.requirements == {"daily_row_count": 5}
    assert (
        "daily_row_count = 5: measured: 5 rows a day: the 50 rows its table holds (one FULL build) over the 10 day(s) "
        "of d, 2026-03-01 to 2026-03-10" in daily.reasons
    )

    two = advice["analytics.two_dates"]  # which of its dates counts is not known: no rows a day
    assert "daily_row_count" not in two.requirements and two.measured.rows_per_build == 40
    assert two.figures[0].name == "rows_per_build" and not two.figures[0].used
    assert "several date or timestamp columns (opened, closed)" in two.figures[0].detail

    by_day = advice["analytics.by_day"]  # incremental: the intervals it built (28 rows over 4 days)
    assert (by_day.measured.daily_row_count, by_day.measured.interval_days) == (7, 4.0)


def test_measured_latency_above_a_declared_sla_is_pointed_out(functions: Project) -> None:
    functions.write("models/declared.sql", DECLARED_SQL.format(latency=1500))
    store = MetricsStore(functions.root / "elsewhere.duckdb")
    store.append([run('"db"."analytics"."declared"', day, 10, 3.0, started=day) for day in range(2)])
    item = advice_by_model(functions, store=store)["analytics.declared"]
    assert item.figures[-1].name == "p95_run_ms" and not item.figures[-1].used
    assert item.figures[-1].detail.endswith("above the declared SLA of 1,500 ms")
    assert item.choice.pattern == HYBRID  # the SLA is 1,500 ms as declared; the measured 3 s changes nothing


# --- the command -------------------------------------------------------------------------------


def mixmesh(*args: str, cwd: Path) -> fresh_process.Finished:
    environment = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return fresh_process.run_mixmesh(args, cwd=cwd, env=environment)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the seed's example project, without a database, artifacts or caches."""
    copy = tmp_path_factory.mktemp("advise") / "customer_analytics"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("*.duckdb*", "artifacts", ".cache", "logs", "__pycache__"))
    return copy


def test_the_seed_examples_follow_their_patterns(example: Path) -> None:
    result = mixmesh("advise", "--json", "--project", str(example), cwd=example.parent)
    assert result.returncode == 0, result.stderr
    follows = {item["model"]: item["follows"] for item in json.loads(result.stdout)["models"]}
    assert follows == {
        "analytics.customer_risk_scoring": SQL_PRIMARY,
        "analytics.customer_ltv_prediction": PYTHON_PRIMARY,
        "analytics.real_time_personalization": HYBRID,
    }


def test_the_command_prints_each_model_with_its_reasons(functions: Project) -> None:
    functions.write("models/declared.sql", DECLARED_SQL.format(latency=5000))
    MetricsStore(functions.root / DEFAULT_PATH).append([run("analytics.declared", 0, 1_000, 1.5)])
    functions.close()
    result = mixmesh("advise", cwd=functions.root / "models")  # the project around the current directory
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n\n")[0].splitlines() == [
        "analytics.declared (SQL model)",
        "  follows      sql_primary_python_enhancement: SQL calls score at one stage (the final SELECT); "
        "no Python function takes a Python result",
        "  recommended  hybrid_workflow: 2 complexity need(s) (machine_learning, external_apis): SQL and Python share the work",
        "  match        no",
        "  figures      machine_learning = true: declared in MODEL (session_properties)",
        "               external_apis = true: declared in MODEL (session_properties)",
        "               latency_sla_ms = 5,000: declared in MODEL (session_properties)",
        "               dynamic_schemas = false: declared in MODEL (session_properties)",
        "               rows_per_build = 1,000: measured: its latest build wrote 1,000 rows; a FULL model rebuilds all "
        "its rows each run, and it has no date or timestamp column to spread them over: no rows a day stated",
        "               p95_run_ms = 1,500.0: measured over 1 run(s); shown beside, the framework takes a declared "
        "latency_sla_ms only",
    ]

    result = mixmesh("advise", "--json", "--model", "analytics.declared", "--project", str(functions.root), cwd=functions.root.parent)
    assert result.returncode == 0, result.stderr
    [item] = json.loads(result.stdout)["models"]
    assert item["follows"] == SQL_PRIMARY and item["recommended"] == HYBRID and item["matches"] is False
    assert item["requirements"] == {
        "machine_learning": True, "external_apis": True, "latency_sla_ms": 5000, "dynamic_schemas": False,
    }
    assert {f["name"]: (f["source"], f["used"]) for f in item["figures"]}["rows_per_build"] == ("measured", False)
    assert item["measured"]["p95_total_ms"] == 1500.0


def test_the_command_names_what_is_wrong(functions: Project) -> None:
    functions.close()
    result = mixmesh("advise", "--model", "analytics.nope", "--project", str(functions.root), cwd=functions.root)
    assert result.returncode == 1
    assert "Error: no SQL or Python model analytics.nope in" in result.stderr
    assert "its models: raw.events" in result.stderr

    functions.write(
        "models/declared.sql",
        "MODEL (name analytics.declared, kind FULL, session_properties (mixmesh_requirements = (ml = true))); SELECT 1 AS x",
    )
    result = mixmesh("advise", "--project", str(functions.root), cwd=functions.root)
    assert result.returncode == 1
    assert "mixmesh_requirements: unknown requirement(s) ml" in result.stderr
