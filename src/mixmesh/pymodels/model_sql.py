"""What SQL a Python model may run: one read-only query, names taken from variables safely.

``context.sql`` reads; it never writes, and never reaches past the warehouse: a query is
parsed with sqlglot before it runs and refused unless it is one SELECT (``WITH ... SELECT``,
a set operation) or VALUES, with no statement inside it that writes, and no function or
table name that reads a file. A model that must write says so with ``context.write``, one
statement at a time.

A table or column name held in a variable is passed as an identifier, never pasted into the
text: ``context.identifier(name)``, either as a parameter (``context.sql("SELECT count(*)
FROM :t", t=context.identifier(name))``, a table where a table stands, a column elsewhere) or
in an f-string, where it is the name quoted by sqlglot (``"raw"."people"``), so whatever the
variable holds is one name and nothing else. ``context.table("raw.people")`` (SQLMesh's,
with a literal model name) gives a model's physical table the same way.
"""

from __future__ import annotations

import re
import typing as t

from sqlglot import exp

from mixmesh.core.errors import MixmeshError


class ModelSqlError(MixmeshError, ValueError):
    """A query a model passed to ``context.sql`` cannot run as written."""


# Statements (and statement-like nodes) a read-only query may not hold.
_WRITES = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Copy,
    exp.Attach, exp.Detach, exp.Command, exp.Pragma, exp.Set, exp.Use, exp.TruncateTable, exp.Transaction,
    exp.Commit, exp.Rollback, exp.Install,
)
# Table functions and scalar functions that read files or other databases.
_FILE_READERS = re.compile(
    r"^(read_\w+|glob|parquet_\w+|sniff_csv|iceberg_\w+|delta_scan|sqlite_\w+|postgres_\w+|mysql_\w+"
    r"|load_extension|getenv|readfile)$",
    re.IGNORECASE,
)
# A table name that is a path (DuckDB reads 'data.csv' as a file, Spark csv.`/path`).
_PATH_LIKE = re.compile(r"[/\\]|\.(csv|tsv|parquet|json|jsonl|ndjson|txt|gz|zst|xlsx|arrow|avro|orc)$", re.IGNORECASE)


class Identifier(str):
    """A table or column name from a variable: the name quoted by sqlglot, and, as a
    ``context.sql`` parameter, put in the query as a name, never as a value."""

    def __new__(cls, expression: exp.Expr, dialect: t.Optional[str]) -> "Identifier":
        text = expression.sql(dialect or "", identify=True)
        created = super().__new__(cls, text)
        created.expression = expression  # type: ignore[attr-defined]
        return created


def table(name: str, dialect: t.Optional[str] = None) -> Identifier:
    """``"raw.people"`` as a table name: each dotted part one quoted identifier."""
    return Identifier(exp.Table(**_table_parts(_parts(name, "table"))), dialect)


def _parts(name: str, what: str) -> t.List[exp.Identifier]:
    if not isinstance(name, str) or not name.strip():
        raise ModelSqlError(f"a {what} name is a non-empty string, got {name!r}")
    return [exp.to_identifier(part, quoted=True) for part in name.split(".")]


def _table_parts(parts: t.List[exp.Identifier]) -> t.Dict[str, exp.Identifier]:
    if len(parts) > 3:
        raise ModelSqlError(f"{'.'.join(p.name for p in parts)!r} is not a table name: at most catalog.schema.table")
    keys = ("this", "db", "catalog")
    return {key: part for key, part in zip(keys, reversed(parts))}


def substitute_identifiers(expression: exp.Expr, params: t.Mapping[str, t.Any]) -> exp.Expr:
    """``:t`` given ``context.identifier(...)`` becomes that name: a table where a table
    stands (``FROM :t``), a column (``table.column`` for a dotted name) elsewhere."""

    def given(node: t.Any) -> t.Optional[Identifier]:
        if isinstance(node, (exp.Placeholder, exp.Parameter)) and isinstance(params.get(node.name), Identifier):
            return params[node.name]
        return None

    def name(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and given(node.this) is not None:  # FROM :t AS x
            replacement = given(node.this).expression.copy()
            if node.args.get("alias") is not None:
                replacement.set("alias", node.args["alias"])
            return replacement
        identifier = given(node)
        return _as_column(identifier.expression) if identifier is not None else node

    return expression.transform(name, copy=False)


def _as_column(table: exp.Expr) -> exp.Expr:
    parts = [part.copy() for part in table.parts] if isinstance(table, exp.Table) else [table.copy()]
    if len(parts) > 2:
        raise ModelSqlError(f"{table.sql()} is not a column name: at most table.column")
    return exp.Column(this=parts[-1], table=parts[0] if len(parts) == 2 else None)


def check_read_only(model: str, expression: exp.Expr) -> None:
    """One read-only query, or a ModelSqlError naming the model and what is refused."""
    if isinstance(expression, exp.Block) or not isinstance(expression, (exp.Query, exp.Values)):
        raise ModelSqlError(
            f"model {model}: context.sql runs one read-only query (SELECT, WITH ... SELECT or VALUES); "
            f"this is {_described(expression)}. {_ADVICE}"
        )
    for node in expression.walk():
        if isinstance(node, _WRITES):
            raise ModelSqlError(f"model {model}: context.sql refuses a query holding {_described(node)}. {_ADVICE}")
        if isinstance(node, exp.Func) and _FILE_READERS.match(_function_name(node)):
            raise ModelSqlError(
                f"model {model}: context.sql reads the warehouse's tables, not files or other databases: "
                f"{_function_name(node)}(...) is refused. Load the file into a table upstream (a SQLMesh "
                "model or an external table) and read that"
            )
        if isinstance(node, exp.Table) and any(_PATH_LIKE.search(part.name) for part in node.parts):
            raise ModelSqlError(
                f"model {model}: context.sql reads the warehouse's tables, not files: the table name "
                f"{node.sql()!r} looks like a path. Load the file into a table upstream and read that"
            )
        if isinstance(node, exp.Table) and isinstance(node.this, (exp.Placeholder, exp.Parameter)):
            raise ModelSqlError(
                f"model {model}: the parameter :{node.this.name} stands where a table's name does; a "
                f"parameter is a value. Pass the name as context.identifier(name): "
                f"context.sql('... FROM :{node.this.name}', {node.this.name}=context.identifier(name))"
            )


_ADVICE = (
    "A table or column name from a variable goes in as context.identifier(name); "
    "a model that must write uses context.write(statement)"
)


def check_one_statement(model: str, expression: exp.Expr) -> None:
    """``context.write``: one statement that writes tables, never files or other databases."""
    if isinstance(expression, exp.Block):
        raise ModelSqlError(f"model {model}: context.write runs one statement; this is {_described(expression)}")
    for node in expression.walk():
        if isinstance(node, (exp.Copy, exp.Attach, exp.Detach, exp.Install, exp.Command, exp.Pragma)):
            raise ModelSqlError(
                f"model {model}: context.write writes the warehouse's tables; {_described(node)} is refused"
            )
        if isinstance(node, exp.Func) and _FILE_READERS.match(_function_name(node)):
            raise ModelSqlError(f"model {model}: context.write refuses {_function_name(node)}(...), which reads files")


def _function_name(node: exp.Func) -> str:
    return node.name if isinstance(node, exp.Anonymous) else node.sql_name()


def _described(expression: exp.Expr) -> str:
    if isinstance(expression, exp.Block):
        kinds = "; ".join(_kind(statement) for statement in expression.expressions)
        return f"{len(expression.expressions)} statements ({kinds})"
    kind = _kind(expression)
    return f"{'an' if kind[:1] in 'AEIOU' else 'a'} {kind} statement"


def _kind(expression: exp.Expr) -> str:
    if isinstance(expression, exp.Command):
        return str(expression.this).upper()
    return type(expression).__name__.upper()
