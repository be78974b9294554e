"""Helpers for the call-site type tests: plans whose output is kept, the fast path switched,
and what a plan left in the project's database."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import typing as t

import duckdb

from mixmesh import fastpath
from tests.projects import Project


@contextlib.contextmanager
def fast_path(mode: str) -> t.Iterator[None]:
    """``MIXMESH_FAST_PATH`` set for the block (read per statement, so this is enough)."""
    before = os.environ.get(fastpath.VARIABLE)
    os.environ[fastpath.VARIABLE] = mode
    try:
        yield
    finally:
        if before is None:
            del os.environ[fastpath.VARIABLE]
        else:
            os.environ[fastpath.VARIABLE] = before


class Outcome(t.NamedTuple):
    """What an in-process ``plan`` did: whether it failed, and everything it printed or raised."""

    failed: bool
    output: str


def plan(project: Project, **kwargs: t.Any) -> Outcome:
    """``sqlmesh plan --auto-apply`` in this process, its console captured.

    SQLMesh prints a failed model's error to its console and raises only "Plan application
    failed."; the text holds both, whitespace collapsed (the console wraps long lines).
    """
    from sqlmesh import Context
    from sqlmesh.core.console import CaptureTerminalConsole, get_console, set_console

    project.close()
    console, before = CaptureTerminalConsole(), get_console()
    kwargs.setdefault("auto_apply", True)
    kwargs.setdefault("no_prompts", True)
    failure = ""
    set_console(console)  # SQLMesh's console is one per process
    try:
        project._context = Context(paths=str(project.root))
        project._context.plan(**kwargs)
    except Exception as error:  # noqa: BLE001 - the text is what the tests read
        failure = f"{type(error).__name__}: {error}"
    finally:
        set_console(before)
    text = " ".join((console.captured_output + " " + console.captured_errors + " " + failure).split())
    return Outcome(bool(failure), text)


def snapshot_tables(project: Project) -> t.Dict[str, int]:
    """Every table SQLMesh made for a model version (``sqlmesh__<schema>``), with its rows."""
    project.close()
    with duckdb.connect(str(project.root / "db.duckdb"), read_only=True) as connection:
        names = connection.sql(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema LIKE 'sqlmesh\\_\\_%' ESCAPE '\\' AND table_type = 'BASE TABLE'"
        ).fetchall()
        return {name: connection.sql(f"SELECT count(*) FROM {name}").fetchone()[0] for (name,) in names}


def table_bytes(project: Project, table: str) -> t.List[t.Tuple[t.Any, ...]]:
    """A table's rows, each value with its type as DuckDB names it, in a total order."""
    project.close()
    with duckdb.connect(str(project.root / "db.duckdb"), read_only=True) as connection:
        columns = [c for (c,) in connection.sql(f"SELECT column_name FROM (DESCRIBE {table})").fetchall()]
        described = ", ".join(f"""typeof("{c}") || ':' || coalesce("{c}"::VARCHAR, 'NULL')""" for c in columns)
        return connection.sql(f"SELECT {described} FROM {table} ORDER BY ALL").fetchall()


@dataclasses.dataclass
class Engine:
    """SQLMesh's DuckDB adapter with functions registered under call names, as a model renders them."""

    connection: duckdb.DuckDBPyConnection
    adapter: t.Any
    sql_names: t.Dict[str, str]
    functions: t.Sequence[t.Any]

    def call(self, function: str, *arguments: str) -> str:
        """A call as a rendered model holds it: ``CAST(name__<digest>(args) AS <type>)``."""
        returns = next(f.spec.returns for f in self.functions if f.spec.name == function)
        return f"CAST({self.sql_names[function]}({', '.join(arguments)}) AS {returns.sql('duckdb')})"

    def select(self, sql: str, mode: str) -> t.List[t.Tuple[t.Any, ...]]:
        """The rows of ``sql`` with the fast path ``mode`` ("on" or "off")."""
        with fast_path(mode):
            return self.adapter.fetchall(sql)
