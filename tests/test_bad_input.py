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
    assert "Optional[...]" in output


@pytest.mark.slow
def test_vectorized_function_returning_the_wrong_length(planned: Project) -> None:
    output = fails_keeping_the_table(planned, "SELECT x, @short_batch(x) AS y FROM (VALUES (1.0), (3.0)) t(x)")
    assert "function 'short_batch' in model analytics.scores returned 1 values for a batch of 2 rows" in output


@pytest.mark.slow
def test_unknown_function(planned: Project) -> None:
    output = fails_keeping_the_table(planned, "SELECT x, @dubble_it(x) AS y FROM (VALUES (1.0)) t(x)")
    assert "dubble_it" in output and "scores.sql" in output


@pytest.mark.slow
def test_name_clashing_with_a_sql_builtin(planned: Project) -> None:
    planned.write("macros/more.py", "from mixmesh import udf\n\n@udf\ndef upper(s: str) -> str:\n    return s\n")
    output = fails_keeping_the_table(planned, GOOD_MODEL.split(";", 1)[1])
    assert "the name 'upper' is a SQL built-in function" in output


@pytest.mark.slow
def test_hint_without_a_sql_type(planned: Project) -> None:
    planned.write(
        "macros/more.py",
        "from mixmesh import udf\n\n@udf\ndef risky(details: set[int]) -> float:\n    return 1.0\n",
    )
    output = fails_keeping_the_table(planned, GOOD_MODEL.split(";", 1)[1])
    assert "@udf risky: argument 1 (details)" in output and "has no SQL type" in output
