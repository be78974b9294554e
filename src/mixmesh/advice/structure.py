"""The mixed-language pattern a SQLMesh model follows, read from its structure (nothing runs).

The rule, for a model as SQLMesh loads it:

- A Python model (mixmesh ``@python_model`` or SQLMesh ``@model``) that reads tables
  through SQL (its ``depends_on``) follows **python_primary_sql_integration**. A Python model
  reading no table is **plain Python** (none of the seed's three patterns).
- A SQL model calling no mixmesh Python function is **plain SQL**.
- A SQL model calling mixmesh Python functions follows **hybrid_workflow** when Python output
  feeds more Python through SQL: a Python function takes another's result as an argument
  (nested, or through columns computed from it, followed by name through aliases, CTEs,
  derived tables and subqueries), or Python functions run at two stages of the query, one
  reading the other (a CTE, derived table or subquery, and a SELECT over it), as in the
  seed's ``real_time_personalization``. Otherwise it follows
  **sql_primary_python_enhancement**: Python calls at one stage (or at stages that do not
  read each other), whose results no Python function takes, as in ``customer_risk_scoring``.

Which calls are Python functions: the query is read as SQLMesh renders it while loading
(macros expanded, columns qualified, no engine), where ``@python_risk_score(...)`` has become
``python_risk_score__<digest>(...)`` (``mixmesh.core.names.binding_name``); a name counts when the
model's stored Python environment holds a ``@udf`` definition of that SQL name (mixmesh stores
its decorator with ``name=`` and ``returns=`` spelled out, see
``FunctionSpec.explicit_decorator_arguments``). Project SQL functions (``sql/udfs``) get
engine names of the same shape, but are not Python. A query that renders only against an
engine is read as written, where the calls are ``@name(...)``.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import typing as t

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, ScopeType, traverse_scope, walk_in_scope

from mixmesh.advice.advisor import HYBRID, PYTHON_PRIMARY, SQL_PRIMARY
from mixmesh.core.names import short_name

PLAIN_SQL = "plain_sql"
PLAIN_PYTHON = "plain_python"
# The pattern a plain model is compared with: SQL with no Python, Python with no SQL.
CLOSEST_PATTERN = {PLAIN_SQL: SQL_PRIMARY, PLAIN_PYTHON: PYTHON_PRIMARY}

_BINDING_NAME = re.compile(r"^(?P<name>\w+?)__[0-9a-f]{10}$", re.IGNORECASE)
_EXPLICIT_UDF_ARGUMENTS = {"name", "returns"}


@dataclasses.dataclass(frozen=True)
class Structure:
    """The pattern a model follows (or plain_sql / plain_python), and why."""

    pattern: str
    reason: str
    language: str  # "sql" or "python"
    functions: t.Tuple[str, ...] = ()  # the Python functions a SQL model calls


def is_advisable(model: t.Any) -> bool:
    """Whether the model is written in SQL or Python (not a seed or an external table)."""
    from sqlmesh.core.model import PythonModel, SqlModel

    return isinstance(model, (SqlModel, PythonModel))


def model_structure(model: t.Any) -> Structure:
    """The pattern ``model`` (a loaded SQLMesh SQL or Python model) follows, by the rule above."""
    from sqlmesh.core.model import PythonModel

    if isinstance(model, PythonModel):
        return _python_structure(model)
    return _sql_structure(model)


def _python_structure(model: t.Any) -> Structure:
    tables = sorted(short_name(name) for name in model.depends_on)
    if tables:
        return Structure(PYTHON_PRIMARY, f"a Python model reading {', '.join(tables)} through SQL", "python")
    return Structure(PLAIN_PYTHON, "a Python model reading no table", "python")


def _sql_structure(model: t.Any) -> Structure:
    names = python_function_names(model.python_env)
    flow = _Flow(names).read(_query(model)) if names else None
    if flow is None or not flow.calls:
        return Structure(PLAIN_SQL, "a SQL model calling no Python function", "sql")
    functions = tuple(dict.fromkeys(name for name, _ in flow.calls))
    feeds = [f"{consumer} takes the result of {producer}" for consumer, producer in dict.fromkeys(flow.feeds)]
    chained = [f"{upstream}, then {downstream}, which reads it" for upstream, downstream in dict.fromkeys(flow.chained)]
    parts = [f"Python output feeds more Python through SQL: {'; '.join(feeds)}"] if feeds else []
    parts += [f"Python at several stages: {'; '.join(chained)}"] if chained else []
    if parts:
        return Structure(HYBRID, "; ".join(parts), "sql", functions)
    stages = list(dict.fromkeys(stage for _, stage in flow.calls))
    where = f"at one stage ({stages[0]})" if len(stages) == 1 else f"at stages that do not read each other ({', '.join(stages)})"
    return Structure(
        SQL_PRIMARY,
        f"SQL calls {', '.join(functions)} {where}; no Python function takes a Python result",
        "sql",
        functions,
    )


def python_function_names(python_env: t.Mapping[str, t.Any]) -> t.FrozenSet[str]:
    """SQL names (lower case) of the ``@udf`` functions stored in a model's Python environment."""
    names = set()
    for executable in python_env.values():
        if not executable.is_definition:
            continue
        try:
            module = ast.parse(executable.payload)
        except SyntaxError:
            continue
        for node in module.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for decorator in node.decorator_list:
                    keywords = {k.arg: k.value for k in getattr(decorator, "keywords", ())}
                    name = keywords.get("name")
                    if _EXPLICIT_UDF_ARGUMENTS <= keywords.keys() and isinstance(name, ast.Constant):
                        names.add(str(name.value).lower())
    return frozenset(names)


def _query(model: t.Any) -> exp.Expr:
    try:
        rendered = model.render_query()
    except Exception:  # a query that renders only against an engine: read it as written
        rendered = None
    return rendered if rendered is not None else model.query


class _Flow:
    """Where a query calls Python functions and which Python results reach which calls."""

    def __init__(self, names: t.FrozenSet[str]) -> None:
        self.names = names
        self.calls: t.List[t.Tuple[str, str]] = []  # (function, stage)
        self.feeds: t.List[t.Tuple[str, str]] = []  # (consumer, producer)
        self.chained: t.List[t.Tuple[str, str]] = []  # (upstream stage, downstream stage)
        self._outputs: t.Dict[int, t.List[t.Tuple[str, t.Set[str]]]] = {}  # scope -> [(column, producers)]
        self._upstream: t.Dict[int, t.Set[int]] = {}

    def read(self, query: exp.Expr) -> "_Flow":
        calling: t.Dict[int, str] = {}  # scope -> stage name, for scopes that call Python
        for scope in traverse_scope(query):  # children before the scopes reading them
            self._upstream[id(scope)] = self._reads(scope)
            if self._read_scope(scope):
                calling[id(scope)] = _stage(scope)
        for downstream, stage in calling.items():
            for upstream in self._upstream[downstream] & calling.keys():
                self.chained.append((calling[upstream], stage))
        return self

    def _reads(self, scope: Scope) -> t.Set[int]:
        # Not scope.sources: sqlglot offers every earlier CTE to a CTE, read or not.
        direct = [s for s in _read_sources(scope) if isinstance(s, Scope)]
        direct += scope.subquery_scopes + scope.union_scopes + scope.derived_table_scopes
        upstream = {id(s) for s in direct}
        for source in direct:
            upstream |= self._upstream.get(id(source), set())
        return upstream

    def _read_scope(self, scope: Scope) -> bool:
        """Record the scope's output columns, its calls and what feeds them; whether it calls Python."""
        lateral: t.Dict[str, t.Set[str]] = {}  # earlier aliases a projection may name (DuckDB)
        seen_by: t.Dict[int, t.Dict[str, t.Set[str]]] = {}  # projection -> the aliases it may name
        if isinstance(scope.expression, exp.SetOperation):  # (scope.is_union means a branch of one)
            self._outputs[id(scope)] = self._union_outputs(scope)
        elif isinstance(scope.expression, exp.Select):
            outputs = []
            for projection in scope.expression.selects:
                seen_by[id(projection)] = dict(lateral)
                if isinstance(projection, exp.Star) or (isinstance(projection, exp.Column) and projection.is_star):
                    outputs += self._star(projection, scope)
                    continue
                produced = self._producers(projection, scope, lateral)
                outputs.append((projection.alias_or_name.lower(), produced))
                if produced:
                    lateral[projection.alias_or_name.lower()] = produced
            self._outputs[id(scope)] = outputs
        calls = False
        for node in scope.walk():
            function = self._function(node)
            if function is None:
                continue
            calls = True
            self.calls.append((function, _stage(scope)))
            visible = seen_by.get(id(_projection_of(node, scope.expression)), lateral)
            for argument in node.expressions:
                for producer in self._producers(argument, scope, visible):
                    self.feeds.append((function, producer))
        return calls

    def _union_outputs(self, scope: Scope) -> t.List[t.Tuple[str, t.Set[str]]]:
        branches = [self._outputs.get(id(branch), []) for branch in scope.union_scopes]
        names = [name for name, _ in branches[0]] if branches else []
        return [
            (name, set().union(*(branch[i][1] for branch in branches if i < len(branch))))
            for i, name in enumerate(names)
        ]

    def _producers(self, expression: exp.Expr, scope: Scope, lateral: t.Mapping[str, t.Set[str]]) -> t.Set[str]:
        """The Python functions whose results reach ``expression``, an expression of ``scope``."""
        found: t.Set[str] = set()
        subqueries = {id(s.expression): s for s in scope.subquery_scopes}
        for node in walk_in_scope(expression):
            function = self._function(node)
            if function is not None:
                found.add(function)
            elif isinstance(node, exp.Column) and not node.is_star:
                found |= self._column(node, scope, lateral)
            elif id(node) in subqueries:
                for _, produced in self._outputs.get(id(subqueries[id(node)]), []):
                    found |= produced
        return found

    def _column(self, column: exp.Column, scope: Scope, lateral: t.Mapping[str, t.Set[str]]) -> t.Set[str]:
        name = column.name.lower()
        sources = [scope.sources.get(column.table)] if column.table else _read_sources(scope)
        found: t.Set[str] = set()
        for source in sources:
            if isinstance(source, Scope):
                found |= set().union(*(produced for column_name, produced in self._outputs.get(id(source), []) if column_name == name))
        if not found and not column.table:
            found |= lateral.get(name, set())
        return found

    def _star(self, star: exp.Expr, scope: Scope) -> t.List[t.Tuple[str, t.Set[str]]]:
        """The columns ``*`` (or ``t.*``) passes on from the query's own CTEs and subqueries."""
        table = star.table if isinstance(star, exp.Column) else ""
        sources = [scope.sources.get(table)] if table else _read_sources(scope)
        return [output for source in sources if isinstance(source, Scope) for output in self._outputs.get(id(source), [])]

    def _function(self, node: exp.Expr) -> t.Optional[str]:
        """The Python function ``node`` calls, if it is such a call."""
        from sqlmesh.core.dialect import MacroFunc

        if not isinstance(node, exp.Anonymous):
            return None
        name = node.name.lower()
        bound = _BINDING_NAME.match(name)
        if bound is not None and bound.group("name") in self.names:
            return bound.group("name")
        if isinstance(node.parent, MacroFunc) and name in self.names:  # @name(...), as written
            return name
        return None


def _read_sources(scope: Scope) -> t.List[t.Any]:
    """The tables and scopes a scope reads (FROM, JOIN)."""
    return [source for _, source in scope.selected_sources.values()]


def _projection_of(node: exp.Expr, select: exp.Expr) -> exp.Expr:
    """The child of ``select`` holding ``node`` (a projection, or a WHERE, GROUP BY... clause)."""
    while node.parent is not None and node.parent is not select:
        node = node.parent
    return node


def _stage(scope: Scope) -> str:
    """How a reason names a part of the query: a CTE's or derived table's name, or its place."""
    if scope.scope_type is ScopeType.ROOT:
        return "the final SELECT"
    parent = scope.expression.parent
    if scope.scope_type in (ScopeType.CTE, ScopeType.DERIVED_TABLE) and isinstance(parent, (exp.CTE, exp.Subquery)) and parent.alias:
        return parent.alias
    if scope.scope_type is ScopeType.UNION and scope.parent is not None:
        return f"UNION branch {scope.parent.union_scopes.index(scope) + 1} of {_stage(scope.parent)}"
    return "a subquery"
