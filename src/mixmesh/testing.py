"""Testing models with fixtures from Python, as the seed document writes it.

``ModelTest`` runs one model, SQL or Python (functions it calls included), on SQLMesh's
test engine with the given input rows, and compares its output with the expected rows::

    ModelTest(
        model_name="analytics.customer_ltv_prediction",
        inputs={"raw.transactions": [{"customer_id": 1, "amount": 100.0, ...}]},
        expected_outputs=[{"customer_id": 1, "predicted_ltv": pytest.approx(500.0, rel=0.1)}],
    ).run()

Expected rows name only the columns that matter; values may be ``pytest.approx(...)`` or
anything else that compares with ``==``; row order does not matter. ``run()`` returns True
or raises an AssertionError showing the rows that differ.

The ``mixmesh_project`` pytest fixture (registered by installing mixmesh) gives a loaded
SQLMesh Context for the project around the test file, and makes it the project
``ModelTest`` uses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import re
import typing as t
from pathlib import Path

if t.TYPE_CHECKING:
    import pandas as pd

_CONFIG_FILES = ("config.yaml", "config.yml", "config.py")
_current_context: t.Any = None


class ModelTest:
    """One model run on fixture rows, compared with the expected rows."""

    def __init__(
        self,
        model_name: str,
        inputs: t.Mapping[str, t.Sequence[t.Mapping[str, t.Any]]],
        expected_outputs: t.Sequence[t.Mapping[str, t.Any]],
        *,
        vars: t.Optional[t.Mapping[str, t.Any]] = None,
        start: t.Any = None,
        end: t.Any = None,
        execution_time: t.Any = None,
        context: t.Any = None,
        path: t.Union[str, Path, None] = None,
    ) -> None:
        self.model_name = model_name
        if not isinstance(inputs, t.Mapping):
            raise TypeError(
                f"ModelTest {model_name}: inputs= maps each table to its rows, e.g. "
                f"{{'raw.transactions': [{{'customer_id': 1, ...}}]}}; got a {type(inputs).__name__}"
            )
        self.inputs = {table: _rows_given(model_name, f"inputs[{table!r}]", rows) for table, rows in inputs.items()}
        self.expected_outputs = _rows_given(model_name, "expected_outputs", expected_outputs)
        self.vars = dict(vars or {})
        for key, value in (("start", start), ("end", end), ("execution_time", execution_time)):
            if value is not None:
                self.vars[key] = value
        self._context = context
        self._path = path

    def run(self) -> bool:
        """Run the model on the inputs; True, or an AssertionError with the rows that differ."""
        actual = self.actual_rows()
        problems = _differences(self.expected_outputs, actual)
        if problems:
            raise AssertionError(f"ModelTest {self.model_name}: {problems}")
        return True

    def actual_rows(self) -> t.List[t.Dict[str, t.Any]]:
        """What the model returns for the inputs, as rows."""
        from sqlmesh.core.test.definition import ModelTest as SqlmeshModelTest
        from sqlmesh.core.test.definition import PythonModelTest

        context = self._context or project_context(self._path)
        adapter = context.test_connection_config.create_engine_adapter(register_comments_override=False)
        try:
            test = SqlmeshModelTest.create_test(
                self._body(context),
                f"ModelTest {self.model_name}",
                context._models,
                adapter,
                context.config.model_defaults.dialect,
                None,
                default_catalog=context.default_catalog,
            )
            if test is None:
                raise AssertionError(f"ModelTest: no model named {self.model_name!r} in the project at {context.path}")
            test.setUp()
            try:
                frame = test._execute_model() if isinstance(test, PythonModelTest) else _run_sql_model(test)
            finally:
                test.tearDown()
        finally:
            adapter.close()
        return _rows(frame)

    def _body(self, context: t.Any) -> t.Dict[str, t.Any]:
        tables = _input_tables(context, self.model_name, self.inputs)
        variables = dict(self.vars)
        if "start" not in variables and "end" not in variables:
            variables.update(_interval_of_the_inputs(self.inputs))
        if "end" in variables:
            # Without it SQLMesh's test clock is the epoch: the end of the interval is what a run would have.
            variables.setdefault("execution_time", variables["end"])
        return {
            "model": self.model_name,
            "inputs": {tables[name]: {"rows": rows} for name, rows in self.inputs.items()},
            "outputs": {"query": {"rows": []}},  # SQLMesh requires one; mixmesh compares itself
            "vars": variables,
        }


_ISO_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T][\d:.]+)?$")


def _interval_of_the_inputs(inputs: t.Mapping[str, t.Sequence[t.Mapping[str, t.Any]]]) -> t.Dict[str, str]:
    """Without ``start``/``end``: the days from the earliest date in the fixture rows to the
    latest (dates, timestamps, and strings written as ISO dates), as a run over the days the
    data covers would have; nothing when the rows hold no date (SQLMesh's own default then)."""
    days = set()
    for rows in inputs.values():
        for row in rows:
            for value in row.values():
                if isinstance(value, (dt.date, dt.datetime)):
                    days.add(value.isoformat()[:10])
                elif isinstance(value, str) and _ISO_DATE.match(value):
                    days.add(value[:10])
    return {"start": min(days), "end": max(days)} if days else {}


def _rows_given(model_name: str, what: str, rows: t.Any) -> t.List[t.Mapping[str, t.Any]]:
    """Rows as a list of dicts (column: value), or a TypeError naming the argument."""
    if isinstance(rows, (str, bytes, t.Mapping)) or not isinstance(rows, t.Iterable):
        raise TypeError(
            f"ModelTest {model_name}: {what} is a list of rows, each a dict of column: value; "
            f"got a {type(rows).__name__}"
        )
    rows = list(rows)
    for position, row in enumerate(rows):
        if not isinstance(row, t.Mapping):
            raise TypeError(
                f"ModelTest {model_name}: {what}[{position}] is a row, a dict of column: value; got {row!r}"
            )
    return rows


def _input_tables(context: t.Any, model_name: str, inputs: t.Mapping[str, t.Any]) -> t.Dict[str, str]:
    """Each input's table: as given, or the one table the model reads with that name.

    The seed names inputs without their schema (``"raw_transactions"``); a name that is not
    a table the model reads is refused, naming the tables it does read.
    """
    from sqlglot import exp

    model = context.get_model(model_name)
    if model is None:
        raise AssertionError(f"ModelTest: no model named {model_name!r} in the project at {context.path}")
    dialect = model.dialect
    reads = {}
    for parent in model.depends_on:
        table = exp.to_table(parent, dialect=dialect)
        reads[f"{table.db}.{table.name}" if table.db else table.name] = table.name
    resolved = {}
    for name in inputs:
        table = exp.to_table(name, dialect=dialect)
        given = f"{table.db}.{table.name}" if table.db else table.name
        if given in reads:
            resolved[name] = given
            continue
        matches = [full for full, short in reads.items() if not table.db and short == table.name]
        if len(matches) == 1:
            resolved[name] = matches[0]
            continue
        listed = ", ".join(sorted(reads)) or "no tables"
        why = f"it matches {', '.join(sorted(matches))}: name the schema" if matches else f"it reads {listed}"
        raise AssertionError(f"ModelTest {model_name}: input {name!r} is not a table the model reads ({why})")
    return resolved


def _run_sql_model(test: t.Any) -> "pd.DataFrame":
    # SQLMesh's own test renders and runs the query the same way before comparing.
    return test._execute(test._generate_sql(test._render_model_query()))


def _rows(frame: "pd.DataFrame") -> t.List[t.Dict[str, t.Any]]:
    return [{k: _python(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _python(value: t.Any) -> t.Any:
    if getattr(value, "ndim", 0) > 0:  # a LIST column's value arrives as a numpy array
        return [_python(element) for element in value]
    item = getattr(value, "item", None)  # numpy scalars -> Python values
    return item() if callable(item) and not isinstance(value, (str, bytes)) else value


def _differences(expected: t.List[t.Mapping[str, t.Any]], actual: t.List[t.Dict[str, t.Any]]) -> str:
    """What keeps the rows from matching (order aside), or '' when they match."""
    unmatched = list(actual)
    missing = []
    for row in expected:
        match = next((candidate for candidate in unmatched if _matches(row, candidate)), None)
        if match is None:
            missing.append(row)
        else:
            unmatched.remove(match)
    if not missing and not unmatched:
        return ""
    columns = list(dict.fromkeys(key for row in expected for key in row)) or list(actual[0] if actual else [])
    lines = [f"{len(expected)} row(s) expected, {len(actual)} returned"]
    lines += [f"  expected, not returned: {_show(row, columns)}" for row in missing]
    lines += [f"  returned, not expected: {_show(row, columns)}" for row in unmatched]
    return "\n".join(lines)


def _matches(expected: t.Mapping[str, t.Any], actual: t.Mapping[str, t.Any]) -> bool:
    return all(key in actual and _equal(value, actual[key]) for key, value in expected.items())


def _equal(expected: t.Any, actual: t.Any) -> bool:
    if expected is None:
        return _is_null(actual)
    if isinstance(expected, float) and isinstance(actual, float) and math.isnan(expected) and math.isnan(actual):
        return True
    if expected == actual:
        return True
    if not isinstance(expected, str) or isinstance(actual, str) or actual is None:
        return False
    # Fixture-style strings for dates and times ('2024-01-01') compare with the values.
    if hasattr(actual, "isoformat"):
        import pandas as pd

        try:
            return pd.Timestamp(expected) == pd.Timestamp(actual)
        except (ValueError, TypeError):
            return False
    return expected == str(actual)


def _is_null(actual: t.Any) -> bool:
    """A SQL NULL as the model's rows arrive through pandas: None, or NaN/NaT/NA in a column
    of numbers or times (where pandas has no None; a NaN value reads the same)."""
    if actual is None:
        return True
    import pandas as pd

    try:
        return bool(pd.isna(actual))
    except (TypeError, ValueError):  # a list's truth is ambiguous: a list is not NULL
        return False


def _show(row: t.Mapping[str, t.Any], columns: t.Sequence[str]) -> str:
    return "{" + ", ".join(f"{c}: {row.get(c, '-')!r}" for c in columns) + "}"


def project_context(path: t.Union[str, Path, None] = None) -> t.Any:
    """The loaded project: ``mixmesh_project``'s, or the one around ``path`` (or the current directory)."""
    if path is None and _current_context is not None:
        return _current_context
    from sqlmesh import Context

    return Context(paths=str(find_project(Path(path or Path.cwd()))))


# What runs leave in a project (databases, caches, logs, figures), which a copy starts without.
RUN_LEFTOVERS = ("*.duckdb", "*.duckdb.wal", ".cache", "logs", ".mixmesh", "__pycache__", ".pytest_cache")


def copy_project(source: t.Union[str, Path], target: t.Union[str, Path], *, leave_out: t.Sequence[str] = ()) -> Path:
    """Copy the project at ``source`` to ``target`` (which must not exist), without what runs
    leave in it (``RUN_LEFTOVERS``) and the ``leave_out`` patterns (e.g. ``"artifacts"``, for
    a copy without trained models), so a test builds it without writing to the project."""
    import shutil

    target = Path(target)
    shutil.copytree(find_project(Path(source)), target, ignore=shutil.ignore_patterns(*RUN_LEFTOVERS, *leave_out))
    return target


@contextlib.contextmanager
def working_in(directory: t.Union[str, Path]) -> t.Iterator[Path]:
    """The working directory is ``directory`` inside the block (a project's relative DuckDB
    path and artifacts resolve against it, as where SQLMesh runs), and what it was after."""
    before = Path.cwd()
    os.chdir(directory)
    try:
        yield Path(directory)
    finally:
        os.chdir(before)


@contextlib.contextmanager
def planned_copy(
    source: t.Union[str, Path],
    target: t.Union[str, Path],
    *,
    leave_out: t.Sequence[str] = (),
    prepare: t.Optional[t.Callable[[Path], t.Any]] = None,
    **plan: t.Any,
) -> t.Iterator[t.Any]:
    """A copy of the project (``copy_project``), worked in (``working_in``), prepared
    (``prepare(copy)``, e.g. writing its source data), planned and applied with SQLMesh
    (``plan`` passed on: ``execution_time=``, ``select_models=``...): the loaded ``Context``,
    closed after the block."""
    from sqlmesh import Context

    copy = copy_project(source, target, leave_out=leave_out)
    with working_in(copy):
        if prepare is not None:
            prepare(copy)
        context = Context(paths=str(copy))
        try:
            context.plan(auto_apply=True, no_prompts=True, **plan)
            yield context
        finally:
            context.close()


@contextlib.contextmanager
def sqlmesh_output(width: int = 200) -> t.Iterator[t.Any]:
    """What SQLMesh prints inside the block (its console, as `sqlmesh plan` shows it), kept
    in the yielded buffer (``.getvalue()``) instead of the terminal; an audit's failure, say."""
    import io

    from rich.console import Console
    from sqlmesh.core.console import TerminalConsole, get_console, set_console

    output, previous = io.StringIO(), get_console()
    set_console(TerminalConsole(console=Console(file=output, width=width)))
    try:
        yield output
    finally:
        set_console(previous)


def find_project(start: Path) -> Path:
    """The nearest folder, from ``start`` up, holding a SQLMesh config."""
    start = start.absolute()
    for folder in (start, *start.parents) if start.is_dir() else start.parents:
        if any((folder / name).exists() for name in _CONFIG_FILES):
            return folder
    raise FileNotFoundError(f"no SQLMesh project (config.yaml or config.py) at {start} or above it")


try:
    import pytest
except ImportError:  # the fixture exists where pytest does
    pass
else:

    @pytest.fixture
    def mixmesh_project(request: t.Any) -> t.Iterator[t.Any]:
        """The SQLMesh project around the test file, loaded; ModelTest uses it."""
        global _current_context
        from sqlmesh import Context

        context = Context(paths=str(find_project(Path(str(request.path)))))
        previous, _current_context = _current_context, context
        try:
            yield context
        finally:
            _current_context = previous
            context.close()

    @pytest.fixture(autouse=True)
    def _mixmesh_no_project_root_from_an_earlier_test() -> t.Iterator[None]:
        """Relative artifact paths resolve against the SQLMesh project loaded last in the
        process; each test starts with none (the working directory), as a fresh process does,
        so a test that loads a project does not move the artifacts of the next one."""
        from mixmesh.runtime.resources import set_project_root

        set_project_root(None)
        yield
        set_project_root(None)
