"""The tables a Python model's SQL reads, found in its source, for SQLMesh's DAG.

SQLMesh learns a Python model's parents from ``context.resolve_table('...')`` calls or an
explicit ``depends_on``. Models that write SQL (``context.sql("SELECT ... FROM
analytics.orders")``, or the seed's f-strings) would otherwise run without their parents
and read production tables in a development environment. So every string of the model's
function, and of the project helpers it calls, that parses as a query gives its tables
(CTE names aside), and so does every module-level string they name (``QUERY``, or
``queries.ORDERS`` from an imported module), where teams keep their long queries. An f-string hole may stand for a value; a table it stands for is chosen
at run time and cannot be known here (declare it with ``depends_on``).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing as t

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import build_scope

from mixmesh.core.introspection import project_functions

# An f-string hole parses as a name; where it stands for a table, that table is unknowable.
_HOLE = "__mixmesh_hole__"


def tables_read(func: t.Callable[..., t.Any], dialect: t.Optional[str] = None) -> t.Set[str]:
    """Names of the tables read by the queries written in ``func`` and its helpers."""
    tables: t.Set[str] = set()
    for function in project_functions(func):
        for text in _strings(function):
            tables |= _tables_in(text, dialect)
    return tables


def _strings(func: t.Callable[..., t.Any]) -> t.Iterator[str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return
    for node in ast.walk(tree):
        named = _global_value(func, node)
        if isinstance(named, str):
            yield named
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, ast.JoinedStr):
            yield "".join(
                part.value if isinstance(part, ast.Constant) else _HOLE for part in node.values
            )


def _global_value(func: t.Callable[..., t.Any], node: ast.AST) -> t.Any:
    """The value a name (``QUERY``) or dotted name (``queries.ORDERS``) has in ``func``'s module."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        return getattr(func, "__globals__", {}).get(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
        owner = _global_value(func, node.value)
        if inspect.ismodule(owner):
            return getattr(owner, node.attr, None)
    return None


def _tables_in(text: str, dialect: t.Optional[str]) -> t.Set[str]:
    if not any(word in text.upper() for word in ("SELECT", "FROM")):
        return set()
    try:
        expression = sqlglot.parse_one(text, read=dialect)
    except Exception:
        return set()
    if not isinstance(expression, exp.Query):
        return set()
    root = build_scope(expression)
    if root is None:
        return set()
    return {
        exp.table_name(source, dialect=dialect)
        for scope in root.traverse()
        for source in scope.sources.values()
        if isinstance(source, exp.Table) and source.name and _HOLE not in source.sql()
    }
