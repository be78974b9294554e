"""A Python model's SQL is one read-only query (issue 16, defect 1): stacked statements, writes,
ATTACH, COPY and file readers are refused naming the model; names from variables go in as
identifiers; a write is explicit (``context.write``)."""

from __future__ import annotations

import pytest
import sqlglot

from mixmesh.pymodels import model_sql
from tests.projects import Project

PEOPLE = "MODEL (name raw.people, kind FULL); SELECT * FROM (VALUES (1, 'ann'), (2, 'bob')) AS t(id, name)"
VICTIM = "MODEL (name raw.victim, kind FULL); SELECT 42 AS kept"

MODEL = '''
import pandas as pd

from mixmesh import ModelKind, python_model


@python_model(name="analytics.counted", kind=ModelKind.FULL, columns={{"n": "BIGINT"}})
def counted(context, **kwargs):
    t = {table!r}
    {body}
'''


def model(body: str, table: str = "raw.people; DROP TABLE raw.victim") -> str:
    return MODEL.format(table=table, body=body)


@pytest.fixture
def planned(project: Project) -> Project:
    project.write("models/people.sql", PEOPLE)
    project.write("models/victim.sql", VICTIM)
    project.write("models/counted.py", model('return context.sql("SELECT count(*) AS n FROM raw.people").to_pandas()'))
    project.plan()
    return project


def fails(project: Project, body: str, *fragments: str, table: str = "raw.people; DROP TABLE raw.victim") -> None:
    project.write("models/counted.py", model(body, table))
    result = project.cli("plan", "--auto-apply", "--no-prompts", check=False)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    assert "analytics.counted" in output
    for fragment in fragments:
        assert fragment in output, output
    # Nothing was dropped or changed: the victim keeps its row, the model its table.
    assert project.query("SELECT kept FROM raw.victim") == [(42,)]
    assert project.query("SELECT n FROM analytics.counted") == [(2,)]


INJECTIONS = {
    "stacked statements from an f-string": (
        'return context.sql(f"SELECT count(*) AS n FROM {t}").to_pandas()', "2 statements (SELECT; DROP)"),
    "stacked statements through the seed's context.engine.execute": (
        'return context.engine.execute("SELECT 1 AS n; CREATE TABLE raw.x AS SELECT 1").to_pandas()',
        "2 statements (SELECT; CREATE)"),
    "CREATE": ('context.sql("CREATE TABLE raw.made AS SELECT 1").to_pandas()', "a CREATE statement"),
    "DROP": ('context.sql("DROP TABLE raw.victim").to_pandas()', "a DROP statement"),
    "ATTACH": ("context.sql(\"ATTACH 'other.duckdb' AS other\").to_pandas()", "an ATTACH statement"),
    "COPY TO": ("context.sql(\"COPY (SELECT 1) TO 'out.csv'\").to_pandas()", "a COPY statement"),
    "read_text": ("return context.sql(\"SELECT count(*) AS n FROM read_text('/etc/hostname')\").to_pandas()",
                  "read_text(...) is refused"),
    "a file as a table": ("return context.sql(\"SELECT count(*) AS n FROM 'people.csv'\").to_pandas()",
                          "looks like a path"),
}


@pytest.mark.slow
@pytest.mark.parametrize("body, fragment", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_a_python_model_runs_one_read_only_query(planned: Project, body: str, fragment: str) -> None:
    fails(planned, body, fragment)


@pytest.mark.slow
def test_a_table_name_from_a_variable_goes_in_as_one_name(planned: Project) -> None:
    # As a parameter and in an f-string: the hostile string is one (missing) table's name.
    fails(planned, 'return context.sql("SELECT count(*) AS n FROM :t", t=context.identifier(t)).to_pandas()',
          "people; DROP TABLE raw")
    fails(planned, 'return context.sql(f"SELECT count(*) AS n FROM {context.identifier(t)}").to_pandas()',
          "people; DROP TABLE raw")
    planned.write("models/counted.py", model(
        'return context.sql("SELECT count(:c) AS n FROM :t AS p WHERE p.id >= :least", '
        't=context.identifier(t), c=context.identifier("name"), least=2).to_pandas()', table="raw.people"))
    planned.plan()
    assert planned.query("SELECT n FROM analytics.counted") == [(1,)]


@pytest.mark.slow
def test_a_write_is_explicit(planned: Project) -> None:
    fails(planned, 'context.write("SELECT 1; DROP TABLE raw.victim")\n    return None', "context.write runs one statement")
    planned.write("models/counted.py", model(
        'context.write("CREATE OR REPLACE TABLE raw.scratch AS SELECT id FROM raw.people WHERE id > :least", least=1)\n'
        '    return context.sql("SELECT count(*) AS n FROM raw.scratch").to_pandas()', table="raw.people"))
    planned.plan()
    assert planned.query("SELECT n FROM analytics.counted") == [(1,)]


@pytest.mark.slow
def test_parameter_mistakes_say_which(planned: Project) -> None:
    fails(planned, 'return context.sql("SELECT count(*) AS n FROM raw.people WHERE id > :least").to_pandas()',
          "uses parameter(s) ['least'] that context.sql was not given")
    fails(planned, 'return context.sql("SELECT count(*) AS n FROM :t", t="raw.people").to_pandas()',
          "stands where a table's name does", "context.identifier(")


@pytest.mark.parametrize("name", ["raw.people", "people", 'weird "name"', "a.b.c", "x; DROP TABLE y"])
def test_identifiers_round_trip_as_one_name(name: str) -> None:
    parsed = sqlglot.parse_one(f"SELECT * FROM {model_sql.table(name, 'duckdb')}", read="duckdb")
    (table,) = list(parsed.find_all(sqlglot.exp.Table))
    assert [part.name for part in table.parts] == name.split(".")


def test_identifiers_refuse_what_is_not_a_name() -> None:
    for bad in ("", "a.b.c.d"):
        with pytest.raises(model_sql.ModelSqlError):
            model_sql.table(bad)
