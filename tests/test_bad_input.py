"""Bad input fails with a message naming the model, the function and the argument,
and leaves the target table as it was."""

from __future__ import annotations

import pytest

from tests.projects import Project

FUNCTIONS = '''
import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import udf


@udf
def double_it(x: float) -> float:
    return x * 2.0


@udf
def fragile(x: float) -> float:
    if x > 2:
        raise ValueError("no values above two")
    return x


@udf
def liar(x: float) -> float:
    return "not a number" if x > 2 else x


@udf
def promised(x: float) -> float:
    return None if x > 2 else x


@udf(vectorized=True)
def short_batch(x: pa.Array) -> pa.Array:
    return x.slice(1)
'''

GOOD_MODEL = "MODEL (name analytics.scores, kind FULL); SELECT x, @double_it(x) AS y FROM (VALUES (1.0), (3.0)) t(x)"


@pytest.fixture
def planned(project: Project) -> Project:
    """A project whose analytics.scores table holds two good rows."""
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/scores.sql", GOOD_MODEL)
    project.cli("plan", "--auto-apply", "--no-prompts")
    assert project.query("SELECT * FROM analytics.scores ORDER BY x") == [(1.0, 2.0), (3.0, 6.0)]
    return project


def fails_keeping_the_table(project: Project, select: str) -> str:
    """Plan a bad version of the model; return the failure text after checking nothing moved."""
    project.write("models/scores.sql", f"MODEL (name analytics.scores, kind FULL); {select}")
    result = project.cli("plan", "--auto-apply", "--no-prompts", check=False)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    assert "Traceback" not in output
    assert project.query("SELECT * FROM analytics.scores ORDER BY x") == [(1.0, 2.0), (3.0, 6.0)]
    return output


@pytest.mark.slow
def test_wrong_argument_count(planned: Project) -> None:
    output = fails_keeping_the_table(planned, "SELECT x, @double_it(x, 2) AS y FROM (VALUES (1.0)) t(x)")
    assert "function 'double_it' in model analytics.scores takes 1 argument(s) (x); the call @double_it(x, 2)" in output
    assert "too many positional arguments" in output


@pytest.mark.slow
def test_argument_of_a_type_that_does_not_convert(planned: Project) -> None:
    output = fails_keeping_the_table(planned, "SELECT 1.0 AS x, @double_it(s) AS y FROM (VALUES ('abc')) t(s)")
    assert "function 'double_it' in model analytics.scores: argument 1 (x) is VARCHAR at this call site" in output
    assert "declared float: it is not a number" in output and "CAST(" in output


@pytest.mark.slow
def test_function_raising_names_the_row(planned: Project) -> None:
    output = fails_keeping_the_table(planned, "SELECT x, @fragile(x) AS y FROM (VALUES (1.0), (3.0)) t(x)")
    assert "function 'fragile' in model analytics.scores raised ValueError: no values above two" in output
    assert "arguments were x=3.0" in output


@pytest.mark.slow
def test_function_returning_the_wrong_type(planned: Project) -> None:
    output = fails_keeping_the_table(planned, "SELECT x, @liar(x) AS y FROM (VALUES (1.0), (3.0)) t(x)")
    assert "function 'liar' in model analytics.scores (declared DOUBLE) returned a value that does not convert" in output
    assert "'not a number'" in output


@pytest.mark.slow
def test_function_returning_none_against_its_hint(planned: Project) -> None:
    output = fails_keeping_the_table(planned, "SELECT x, @promised(x) AS y FROM (VALUES (1.0), (3.0)) t(x)")
    assert "function 'promised' in model analytics.scores returned None for a row without NULL arguments" in output
    # (SQLMesh's console reads the "[float]" of "e.g. -> Optional[float]" as markup and drops it.)
    assert "but its return hint does not allow None; hint Optional[...] (e.g. -> Optional" in output


@pytest.mark.slow
def test_vectorized_function_returning_the_wrong_length(planned: Project) -> None:
    output = fails_keeping_the_table(planned, "SELECT x, @short_batch(x) AS y FROM (VALUES (1.0), (3.0)) t(x)")
    assert ("function 'short_batch' in model analytics.scores returned 1 values for a batch of 2 rows; "
            "a vectorized function returns one value per row") in output


@pytest.mark.slow
def test_unknown_function(planned: Project) -> None:
    output = fails_keeping_the_table(planned, "SELECT x, @dubble_it(x) AS y FROM (VALUES (1.0)) t(x)")
    assert "Macro 'dubble_it' does not exist" in output and "scores.sql" in output


@pytest.mark.slow
def test_name_clashing_with_a_sql_builtin(planned: Project) -> None:
    planned.write("macros/more.py", "from mixmesh import udf\n\n@udf\ndef upper(s: str) -> str:\n    return s\n")
    output = fails_keeping_the_table(planned, GOOD_MODEL.split(";", 1)[1])
    assert "@udf upper: the name 'upper' is a SQL built-in function; give another with @udf(name=...)" in output


@pytest.mark.slow
def test_hint_without_a_sql_type(planned: Project) -> None:
    planned.write(
        "macros/more.py",
        "from mixmesh import udf\n\n@udf\ndef risky(details: set[int]) -> float:\n    return 1.0\n",
    )
    output = fails_keeping_the_table(planned, GOOD_MODEL.split(";", 1)[1])
    assert "@udf risky: argument 1 (details)" in output and "has no SQL type" in output


# ---------------------------------------------------------------------------------------
# Many bad models, one plan: each fails on its own, naming itself, and keeps its table.
# Evaluation errors do not hide one another (SQLMesh evaluates every model and lists each
# failure), so one project and two plans try them all.

RETURNS = '''
import datetime as dt
import decimal
import typing as t

import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import AwareDatetime, udf


class Pair(t.TypedDict):
    a: int
    b: str


@udf
def ok(x: float) -> float:
    return x


@udf
def too_big(x: float) -> int:
    return 2**70


@udf(returns="INTEGER")
def nan_count(x: float):
    return float("nan")


@udf
def rounded(x: float) -> int:
    return x + 0.7


@udf
def flag(x: float) -> int:
    return x > 2


@udf(returns="DECIMAL(10, 2)")
def cents(x: float):
    return decimal.Decimal("1.255")


@udf
def label(x: float) -> str:
    return 3


@udf
def naive_moment(x: float) -> AwareDatetime:
    return dt.datetime(2024, 1, 2, 3, 4)


@udf
def aware_wall_time(x: float) -> dt.datetime:
    return dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.timezone.utc)


@udf
def day_of(x: float) -> dt.date:
    return dt.datetime(2024, 1, 2, 3, 4)


@udf
def half_pair(x: float) -> Pair:
    return {"a": 1}


@udf
def wider_pair(x: float) -> Pair:
    return {"a": 1, "b": "x", "c": 2}


@udf
def scores(x: float) -> t.List[float]:
    return x


@udf(vectorized=True)
def text_batch(x: pa.Array) -> pa.Array:
    return pc.cast(x, pa.string())
'''

# function (and model) -> what the failure says after "... returned a value that does not
# convert to its declared type: "
BAD_RETURNS = {
    "too_big": ("BIGINT", "1180591620717411303424 (int): out of BIGINT's range -9223372036854775808 .. 9223372036854775807"),
    "nan_count": ("INT", "nan (float): not a finite number, which INT cannot hold"),
    "rounded": ("BIGINT", "1.7 (float): has a fractional part, which BIGINT cannot hold (round it in the function, or declare DOUBLE)"),
    "flag": ("BIGINT", "False (bool): a bool is not a number; return int(value) for a BIGINT"),
    "cents": ("DECIMAL(10, 2)", "Decimal('1.255') (Decimal): has more than 2 decimal places; rounding it would change it"),
    "label": ("TEXT", "3 (int): an int is not text (VARCHAR); return str(value) to store its text"),
    "naive_moment": ("TIMESTAMPTZ", "datetime.datetime(2024, 1, 2, 3, 4) (datetime): a naive datetime for a TIMESTAMPTZ is ambiguous: give it its time zone (value.replace(tzinfo=...))"),
    "aware_wall_time": ("TIMESTAMP", "(datetime): an aware datetime for a TIMESTAMP (without time zone) is ambiguous: return it naive (value.replace(tzinfo=None) keeps its wall time), or declare TIMESTAMPTZ"),
    "day_of": ("DATE", "datetime.datetime(2024, 1, 2, 3, 4) (datetime): a datetime for a DATE would lose its time; return value.date()"),
    "half_pair": ("STRUCT(a BIGINT, b TEXT)", "{'a': 1} (dict): missing field(s) 'b' (a NULL field is returned as None); the STRUCT's fields are a, b"),
    "wider_pair": ("STRUCT(a BIGINT, b TEXT)", "{'a': 1, 'b': 'x', 'c': 2} (dict): unknown field(s) 'c'; the STRUCT's fields are a, b"),
    "scores": ("DOUBLE[]", "1.0 (float): a float is not a list"),
    "text_batch": ("DOUBLE", "'1.0' (str): a str is not a number (DOUBLE)"),
}

PYTHON_MODEL = '''
import datetime as dt

import pandas as pd

from mixmesh import python_model


@python_model(name="analytics.{name}", columns={{"id": "INT", "v": "DOUBLE"}}, grain=["id"])
def {name}(context, **kwargs):
{body}
'''

GOOD_ROWS = '    return pd.DataFrame({"id": [1], "v": [1.0]})'

# model -> (its body, the words its failure says after "model analytics.<model>")
BAD_PYTHON_MODELS = {
    "returns_none": ("    return None", " returned a NoneType; return a pandas DataFrame, an Arrow table or a polars DataFrame, or yield several of them"),
    "returns_a_dict": ('    return {"id": [1], "v": [1.0]}', " returned a dict; return a pandas DataFrame"),
    "returns_rows_as_dicts": ('    return [{"id": 1, "v": 1.0}]', " returned a dict; return a pandas DataFrame"),
    "returns_a_series": ("    return pd.Series([1.0])", " returned a Series; return a pandas DataFrame"),
    "yields_a_frame_then_text": ('    yield pd.DataFrame({"id": [1], "v": [1.0]})\n    yield "done"', " returned a str; return a pandas DataFrame"),
    "returns_no_columns": ("    return pd.DataFrame()", " returned missing column(s) ['id', 'v']; it declares ['id', 'v']"),
    "returns_a_fraction_for_an_int": ('    return pd.DataFrame({"id": [1.5], "v": [1.0]})',
                                      ": column 'id' holds double values that do not convert to the declared INT; for example 1.5"),
    "returns_an_int_too_big": ('    return pd.DataFrame({"id": [2**40], "v": [1.0]})',
                               ": column 'id' holds int64 values that do not convert to the declared INT; for example 1099511627776"),
    "returns_a_time_for_a_number": ('    return pd.DataFrame({"id": [1], "v": [dt.datetime(2024, 1, 1)]})',
                                    ": column 'v' holds timestamp values that do not convert to the declared DOUBLE"),
    "gives_an_unused_parameter": ('    return context.sql("SELECT 1 AS id, 1.0 AS v", p=1).to_pandas()',
                                  ": context.sql was given parameter(s) ['p'] the query does not use (:name)"),
    "uses_a_question_mark": ('    return context.sql("SELECT 1 AS id, ? AS v").to_pandas()',
                             ": context.sql takes named parameters (:name), not '?'"),
    "sends_sql_that_does_not_parse": ('    return context.sql("SELEC 1 AS id").to_pandas()',
                                      ": context.sql cannot parse the query: Invalid expression / Unexpected token"),
    "names_an_empty_table": ('    return context.sql("SELECT 1 AS id, 1.0 AS v FROM :t", t=context.identifier("")).to_pandas()',
                             ": context.identifier: a table name is a non-empty string, got ''"),
    "names_a_table_by_a_number": ('    return context.sql("SELECT 1 AS id, 1.0 AS v FROM :t", t=context.identifier(5)).to_pandas()',
                                  ": context.identifier: a table name is a non-empty string, got 5"),
    "names_a_four_part_table": ('    return context.sql("SELECT 1 AS id, 1.0 AS v FROM :t", t=context.identifier("a.b.c.d")).to_pandas()',
                                ": context.identifier: 'a.b.c.d' is not a table name: at most catalog.schema.table"),
    "names_a_three_part_column": ('    return context.sql("SELECT 1 AS id, :c AS v", c=context.identifier("a.b.c")).to_pandas()',
                                  ': "a"."b"."c" is not a column name: at most table.column'),
    "writes_a_file": ('    context.write("COPY (SELECT 1) TO \'out.csv\'")\n' + GOOD_ROWS,
                      ": context.write writes the warehouse's tables; a COPY statement is refused"),
}


def _sql_model(name: str, call: str) -> str:
    return f"MODEL (name analytics.{name}, kind FULL); SELECT x, {call}(x) AS y FROM (VALUES (1.0), (3.0)) t(x)"


@pytest.mark.slow
def test_each_bad_model_of_a_plan_fails_naming_itself_and_keeps_its_table(project: Project) -> None:
    from tests.call_site_projects import plan

    project.write("macros/returns.py", RETURNS)
    for name in BAD_RETURNS:
        project.write(f"models/{name}.sql", _sql_model(name, "@ok"))
    for name in BAD_PYTHON_MODELS:
        project.write(f"models/{name}.py", PYTHON_MODEL.format(name=name, body=GOOD_ROWS))
    assert not plan(project).failed
    models = [*BAD_RETURNS, *BAD_PYTHON_MODELS]
    before = {name: project.query(f"SELECT * FROM analytics.{name} ORDER BY ALL") for name in models}
    assert all(before.values())

    for name in BAD_RETURNS:
        project.write(f"models/{name}.sql", _sql_model(name, f"@{name}"))
    for name, (body, _) in BAD_PYTHON_MODELS.items():
        project.write(f"models/{name}.py", PYTHON_MODEL.format(name=name, body=body))
    failed = plan(project)
    assert failed.failed and failed.output.endswith("PlanError: Plan application failed."), failed.output[-500:]
    assert "Traceback" not in failed.output

    missing = []
    for name, (declared, says) in BAD_RETURNS.items():
        expected = (f"FunctionRuntimeError: function {name!r} in model analytics.{name} (declared {declared}) "
                    "returned a value that does not convert to its declared type: ")
        start = failed.output.find(expected)
        end = failed.output.find("; the row's arguments were x=", start)
        if start < 0 or end < 0 or says not in failed.output[start:end]:
            missing.append(name)
    for name, (_, says) in BAD_PYTHON_MODELS.items():
        if f"model analytics.{name}{says}" not in failed.output:
            missing.append(name)
    assert not missing, f"{missing} did not fail as expected:\n{failed.output}"
    after = {name: project.query(f"SELECT * FROM analytics.{name} ORDER BY ALL") for name in models}
    assert after == before
    assert project.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'mixmesh_staging'") == []
