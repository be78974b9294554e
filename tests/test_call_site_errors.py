"""Call sites that do not fit fail at plan time, clearly, and before any interval is written.

Each bad model is planned over a project whose ``analytics.scores`` (incremental by time
range: SQLMesh creates its table from the query before it inserts any interval) already holds
rows from a good plan. The plan must fail with a message naming the model, the function and
the argument (position and name), both types and a fix (a CAST or ``args=``); the table must
keep its rows, value for value and type for type; and no table of a new model version may
have received a row. Load-time errors (the call's arguments, a hint that cannot be bound)
fail before SQLMesh loads the model at all. The tests marked xfail pin bugs (see their
reasons).
"""

from __future__ import annotations

import typing as t

import pytest

from tests.call_site_projects import plan, snapshot_tables, table_bytes
from tests.projects import Project, forget_project_modules

pytestmark = pytest.mark.slow

FUNCTIONS = '''
import datetime
from typing import Annotated, TypedDict

import pyarrow as pa

from mixmesh import udf


class Item(TypedDict):
    name: str
    qty: int


@udf
def whole(n: int) -> int:
    return n


@udf
def day_of(d: datetime.date) -> str:
    return d.isoformat()


@udf
def moment(t: datetime.datetime) -> str:
    return t.isoformat()


@udf
def item_name(item: Item) -> str:
    return item["name"]


@udf
def scaled(value: float, factor: int, label: str) -> str:
    return f"{label}:{value * factor}"


@udf
def scaled_by(value: float, factor: float = 2.0) -> float:
    return value * factor


@udf
def truncating(x: float) -> int:
    return x


@udf(vectorized=True)
def widths(x: Annotated[pa.Array, int]) -> Annotated[pa.Array, int]:
    return x
'''

SOURCE = """
MODEL (name raw.src, kind FULL);
SELECT id::INTEGER AS id, day::DATE AS day, x::DOUBLE AS x, d::DECIMAL(38, 2) AS d, ts::TIMESTAMP AS ts,
       tstz::TIMESTAMPTZ AS tstz, tsns::TIMESTAMP_NS AS tsns, nums::INTEGER[] AS nums, s::VARCHAR AS s,
       ub::UBIGINT AS ub
FROM (VALUES
  (1, DATE '2024-01-01', 2.5, 12.25, TIMESTAMP '2024-01-01 03:04:05', TIMESTAMPTZ '2024-01-01 03:04:05+00',
   TIMESTAMP_NS '2024-01-01 03:04:05.123456789', [1, 2], 'a', 18446744073709551615),
  (2, DATE '2024-01-02', 3.5, -1.5, TIMESTAMP '2024-01-02 03:04:05', TIMESTAMPTZ '2024-01-02 03:04:05+00',
   TIMESTAMP_NS '2024-01-02 03:04:05.123456789', [3], 'b', 0)
) AS v(id, day, x, d, ts, tstz, tsns, nums, s, ub)
"""

SCORES = """
MODEL (name analytics.scores, kind INCREMENTAL_BY_TIME_RANGE (time_column day));
SELECT id, day, {y} AS y FROM raw.src WHERE day BETWEEN @start_ds AND @end_ds
"""
GOOD = "@whole(id)"
EXECUTION_TIME = "2024-01-03"  # the intervals of 2024-01-01 and 2024-01-02
GOOD_ROWS = [("INTEGER:1", "DATE:2024-01-01", "BIGINT:1"), ("INTEGER:2", "DATE:2024-01-02", "BIGINT:2")]


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Project]:
    """A project whose analytics.scores holds two rows from a good plan."""
    project = Project(tmp_path_factory.mktemp("call_site_errors") / "project")
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/src.sql", SOURCE)
    project.write("models/scores.sql", SCORES.format(y=GOOD))
    outcome = plan(project, execution_time=EXECUTION_TIME)
    assert not outcome.failed, outcome.output
    assert table_bytes(project, "analytics.scores") == GOOD_ROWS
    yield project
    project.close()
    forget_project_modules()


def fails_keeping_the_table(project: Project, y: str) -> str:
    """Plan analytics.scores with ``y`` as its last column; return the failure's text after
    checking that the table kept its rows and that no new model version received any."""
    rows, tables = table_bytes(project, "analytics.scores"), snapshot_tables(project)
    project.write("models/scores.sql", SCORES.format(y=y))
    try:
        outcome = plan(project, execution_time=EXECUTION_TIME)
    finally:
        project.write("models/scores.sql", SCORES.format(y=GOOD))
    assert outcome.failed, outcome.output
    assert table_bytes(project, "analytics.scores") == rows
    after = snapshot_tables(project)
    assert {name: count for name, count in after.items() if name in tables} == tables
    assert all(count == 0 for name, count in after.items() if name not in tables), after
    return outcome.output


def failed_at_table_creation(output: str) -> bool:
    """SQLMesh's node for creating a model version's table (before any interval)."""
    return "Execution failed for node CreateNode" in output and "EvaluateNode" not in output


# --- lossy narrowings ------------------------------------------------------------------------

NARROWINGS = {
    "decimal into int": (
        "@whole(d)", "function 'whole' in model analytics.scores: argument 1 (n) is DECIMAL(38, 2) at this call site",
        "declared int: a DECIMAL(38, 2) may hold fractions, which an int drops", 'AS HUGEINT)', "{'n': 'DECIMAL(38, 2)'}",
    ),
    "double into int, by keyword": (
        "@scaled(x, label := s, factor := x)",
        "function 'scaled' in model analytics.scores: argument 2 (factor) is DOUBLE at this call site",
        "declared int: a DOUBLE may hold fractions, which an int drops", "AS BIGINT)", "{'factor': 'DOUBLE'}",
    ),
    "timestamp into date": (
        "@day_of(ts)", "function 'day_of' in model analytics.scores: argument 1 (d) is TIMESTAMP at this call site",
        "declared date: a date drops its time of day", "AS DATE)", "{'d': 'TIMESTAMP'}",
    ),
    "timestamptz into a naive datetime": (
        "@moment(tstz)", "function 'moment' in model analytics.scores: argument 1 (t) is TIMESTAMPTZ at this call site",
        "declared datetime: it is a zoned instant and the hint a naive datetime, which is ambiguous: hint "
        "mixmesh.AwareDatetime to receive it in UTC", "AS TIMESTAMP)", "{'t': 'TIMESTAMPTZ'}",
    ),
    "timestamp_ns into datetime": (
        "@moment(tsns)", "function 'moment' in model analytics.scores: argument 1 (t) is TIMESTAMP_NS at this call site",
        "declared datetime: a datetime holds microseconds, not nanoseconds", "AS TIMESTAMP)", "{'t': 'TIMESTAMP_NS'}",
    ),
}


@pytest.mark.parametrize("call, names, reason, cast, declared", NARROWINGS.values(), ids=list(NARROWINGS))
def test_a_lossy_narrowing_fails_naming_the_argument_and_the_fix(
    planned: Project, call: str, names: str, reason: str, cast: str, declared: str
) -> None:
    output = fails_keeping_the_table(planned, call)
    assert names in output and reason in output
    assert "Fix: cast it in the call: CAST(" in output and cast in output
    assert f"or declare what the call site passes: @udf(args={declared})" in output
    assert failed_at_table_creation(output), output


def test_a_lossy_narrowing_reads_clearly_from_the_command_line(planned: Project) -> None:
    before = table_bytes(planned, "analytics.scores")
    planned.write("models/scores.sql", SCORES.format(y="@whole(d)"))
    try:
        result = planned.cli("plan", "--auto-apply", "--no-prompts", "--execution-time", EXECUTION_TIME, check=False)
    finally:
        planned.write("models/scores.sql", SCORES.format(y=GOOD))
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "Traceback" not in output
    assert "function 'whole' in model analytics.scores: argument 1 (n) is DECIMAL(38, 2) at this call site" in output
    assert "Fix: cast it in the call: CAST(" in output
    assert table_bytes(planned, "analytics.scores") == before


# --- structs against a declared TypedDict ------------------------------------------------------

STRUCTS = {
    "an extra field": (
        "@item_name({'name': s, 'qty': id, 'extra': TRUE})",
        "its fields ['name', 'qty', 'extra'] disagree with Item's ['name', 'qty']: the call site has ['extra'], "
        "which Item does not declare",
    ),
    "a missing field": (
        "@item_name({'name': s})",
        "its fields ['name'] disagree with Item's ['name', 'qty']: Item declares ['qty'], which the call site lacks",
    ),
    "a field of the wrong type": (
        "@item_name({'name': s, 'qty': x})",
        "its field 'qty': a DOUBLE may hold fractions, which an int drops",
    ),
}


@pytest.mark.parametrize("call, reason", STRUCTS.values(), ids=list(STRUCTS))
def test_a_struct_that_disagrees_with_its_typed_dict_fails(planned: Project, call: str, reason: str) -> None:
    output = fails_keeping_the_table(planned, call)
    assert "function 'item_name' in model analytics.scores: argument 1 (item) is STRUCT(" in output
    assert "at this call site" in output and "declared Item" in output and reason in output
    assert "AS STRUCT(name VARCHAR, qty BIGINT))" in output and "@udf(args={'item': 'STRUCT(" in output
    assert failed_at_table_creation(output), output


# --- types the engine cannot describe ----------------------------------------------------------


CORRELATED = "(SELECT max({argument}) FROM unnest(nums) AS z(u))"


def test_an_argument_whose_type_cannot_be_determined_asks_for_a_cast(planned: Project) -> None:
    # A correlated subquery over the outer row's list: neither probe binds (the subquery alone
    # lacks the outer table; with it joined after, UNNEST reads it before it is joined), and
    # the argument states no type of its own.
    output = fails_keeping_the_table(planned, CORRELATED.format(argument="@whole(z.u)"))
    assert "function 'whole' in model analytics.scores: the type of argument 1 (n), " in output
    assert "cannot be determined at this call site" in output
    assert 'State it with a CAST: CAST("z"."u" AS <type>)' in output
    assert failed_at_table_creation(output), output

    # The fix the message gives works.
    planned.write("models/scores.sql", SCORES.format(y=CORRELATED.format(argument="@whole(CAST(z.u AS BIGINT))")))
    try:
        outcome = plan(planned, execution_time=EXECUTION_TIME)
        assert not outcome.failed, outcome.output
        assert planned.query("SELECT id, y FROM analytics.scores ORDER BY id") == [(1, 2), (2, 3)]
    finally:
        planned.write("models/scores.sql", SCORES.format(y=GOOD))
        assert not plan(planned, execution_time=EXECUTION_TIME).failed
    assert table_bytes(planned, "analytics.scores") == GOOD_ROWS


# --- hints that cannot be bound ----------------------------------------------------------------


def test_any_inside_a_declared_struct_fails_at_load_time_naming_the_field(planned: Project) -> None:
    planned.write("macros/loose.py", '''
        from typing import Any, TypedDict

        from mixmesh import udf


        class Loose(TypedDict):
            name: str
            extra: Any


        @udf
        def loose_name(item: Loose) -> str:
            return item["name"]
    ''')
    try:
        output = fails_keeping_the_table(planned, "@loose_name({'name': s, 'extra': 1})")
    finally:
        (planned.root / "macros/loose.py").unlink()
    assert "@udf loose_name: argument 1 (item): Loose.extra is a declared struct" in output
    assert "Any leaves it open" in output and "hint the parameter Dict[str, Any]" in output
    assert "Differences from the `prod` environment" not in output  # at load time: nothing was planned


# --- the call's arguments ----------------------------------------------------------------------

SIGNATURE = "function 'scaled' in model analytics.scores takes 3 argument(s) (value, factor, label)"
CALLS = {
    "an unknown keyword": ("@scaled(x, 2, s, labl := 'a')", "unknown keyword argument(s) ['labl']"),
    "too many": ("@scaled(x, 2, s, 4)", "too many positional arguments"),
    "too few": ("@scaled(x, 2)", "missing a required argument: 'label'"),
    "a keyword for a positional one": ("@scaled(x, 2, s, value := 3.0)", "multiple values for argument 'value'"),
}


@pytest.mark.parametrize("call, reason", CALLS.values(), ids=list(CALLS))
def test_a_call_that_does_not_fit_the_signature_fails_at_load_time(planned: Project, call: str, reason: str) -> None:
    output = fails_keeping_the_table(planned, call)
    assert SIGNATURE in output and reason in output
    assert f"the call {call}" in output


def test_a_python_default_does_not_fill_a_sql_call(planned: Project) -> None:
    # SQL calls give every argument: a default in the def is for Python callers only.
    output = fails_keeping_the_table(planned, "@scaled_by(x)")
    assert ("function 'scaled_by' in model analytics.scores takes 2 argument(s) (value, factor); the call "
            "@scaled_by(x) does not fit: missing a required argument: 'factor'") in output


def test_a_misspelt_keyword_is_named_as_unknown(planned: Project) -> None:
    output = fails_keeping_the_table(planned, "@scaled(x, 2, labl := s)")
    assert SIGNATURE in output and "unknown keyword argument(s) ['labl']" in output


def test_a_lossy_return_value_fails(planned: Project) -> None:
    output = fails_keeping_the_table(planned, "@truncating(x + 0.2)")
    assert "function 'truncating' in model analytics.scores" in output and "2.7" in output


@pytest.mark.xfail(strict=True, reason=(
    "bug: a UBIGINT into Annotated[pa.Array, int] is bound as BIGINT (int64 arrays), so a value "
    "beyond 2**63 - 1 fails with DuckDB's bare ConversionException, which names neither the "
    "function nor the argument (nor, as a lossy narrowing would, fails before the data is read)"
))
def test_a_ubigint_beyond_int64_into_an_int_array_names_the_function(planned: Project) -> None:
    output = fails_keeping_the_table(planned, "@widths(ub)")
    assert "function 'widths' in model analytics.scores" in output and "argument 1 (x)" in output


@pytest.mark.xfail(strict=True, reason=(
    "known gap: a keyword given twice at a SQL model's call site is silently dropped (the last one "
    "wins: SQLMesh hands the macro a dict of keywords, so mixmesh never sees the repeat); Python "
    "refuses f(label='a', label='b')"
))
def test_a_keyword_given_twice_fails(planned: Project) -> None:
    output = fails_keeping_the_table(planned, "@scaled(x, 2, label := s, label := 'b')")
    assert SIGNATURE in output and "label" in output


def test_a_keyword_given_twice_in_context_sql_fails(planned: Project) -> None:
    forget_project_modules()  # another project's `python` package may be cached in this process
    planned.write("python/shared/scaling.py", FUNCTIONS)
    planned.write("models/twice.py", '''
        from mixmesh import python_model
        from python.shared.scaling import scaled  # noqa: F401


        @python_model(name="analytics.twice", columns={"y": "VARCHAR"})
        def twice(context, **kwargs):
            return context.sql("SELECT scaled(x, 2, label := s, label := 'b') AS y FROM raw.src").to_pandas()
    ''')
    try:
        outcome = plan(planned, execution_time=EXECUTION_TIME)
    finally:
        (planned.root / "models/twice.py").unlink()
        (planned.root / "python/shared/scaling.py").unlink()
        forget_project_modules()
    assert outcome.failed and SIGNATURE.replace("analytics.scores", "analytics.twice") in outcome.output
    assert "given more than once" in outcome.output
