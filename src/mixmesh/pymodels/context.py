"""The context a Python model's function receives, and the results of its SQL.

``ModelContext`` passes through everything SQLMesh's ExecutionContext offers and adds the
interval (``start_date``, ``end_date``, ``execution_time``) and safe SQL:
``context.sql(query, **params)`` (or the seed's ``context.engine.execute(query)``) binds
``:name`` parameters as the engine's own parameters, reads models from the physical tables
of the environment being built, and calls ``@udf`` functions by name.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing as t

import sqlglot
from sqlglot import exp

from mixmesh.pymodels import model_sql
from mixmesh.pymodels.model_sql import Identifier, ModelSqlError
from mixmesh.core.names import keep_import_path

if t.TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from mixmesh.core.models import ModelSpec

DEFAULT_BATCH_ROWS = 1_000_000
logger = logging.getLogger(__name__)


class ModelContext:
    """SQLMesh's ExecutionContext for one model and interval, with safe SQL on top."""

    def __init__(self, context: t.Any, spec: "ModelSpec", arguments: t.Mapping[str, t.Any]) -> None:
        self._context = context
        self.spec = spec
        self.start: t.Optional[dt.datetime] = arguments.get("start")
        self.end: t.Optional[dt.datetime] = arguments.get("end")
        self.execution_time: t.Optional[dt.datetime] = arguments.get("execution_time")

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._context, name)

    @property
    def start_date(self) -> t.Optional[dt.date]:
        """The first day of the interval being computed."""
        return _date(self.start)

    @property
    def end_date(self) -> t.Optional[dt.date]:
        """The last day of the interval being computed (inclusive)."""
        return _date(self.end)

    def interval_arguments(self) -> t.Dict[str, t.Any]:
        """What the seed's models read from ``kwargs``: ``start_date`` and ``end_date``."""
        return {"start_date": self.start_date, "end_date": self.end_date}

    def sql(self, query: t.Union[str, exp.Expr], **params: t.Any) -> "SqlResult":
        """One read-only query (SELECT, WITH or VALUES) to run in the model's engine, with
        ``:name`` parameters bound to ``params`` (``context.table(...)`` ones as names)."""
        expression = self._substituted(self._parse(query, params), params)
        model_sql.check_read_only(self.spec.name, expression)
        return self._prepared(expression, params)

    def write(self, statement: t.Union[str, exp.Expr], **params: t.Any) -> None:
        """Run one statement that writes (``CREATE TEMP TABLE ...``, ``INSERT ...``): the
        explicit way for a model to change data, which ``context.sql`` refuses to do."""
        expression = self._substituted(self._parse(statement, params), params)
        model_sql.check_one_statement(self.spec.name, expression)
        prepared = self._prepared(expression, params)
        logger.info("model %s writes: %s", self.spec.name, prepared.sql())
        with prepared._run():
            pass

    def _substituted(self, expression: exp.Expr, params: t.Mapping[str, t.Any]) -> exp.Expr:
        try:
            return model_sql.substitute_identifiers(expression, params)
        except ModelSqlError as error:  # a name that cannot stand where it is put
            raise ModelSqlError(f"model {self.spec.name}: {error}") from None

    def identifier(self, name: str) -> Identifier:
        """A table or column name from a variable, quoted by sqlglot:
        ``context.sql("SELECT count(*) FROM :t", t=context.identifier(name))`` or
        ``f"... FROM {context.identifier(name)}"``; whatever ``name`` holds is one name."""
        try:
            return model_sql.table(name, self._context.default_dialect)
        except ModelSqlError as error:
            raise ModelSqlError(f"model {self.spec.name}: context.identifier: {error}") from None

    def table(self, model_name: str) -> Identifier:
        """SQLMesh's ``context.table``: a model's physical table, as a quoted name usable the
        same two ways (SQLMesh reads the literal argument to know the model's dependencies;
        a name held in a variable goes through ``identifier``)."""
        try:
            physical = self._context.resolve_table(model_name)
        except Exception:  # noqa: BLE001 - not a model of the project: the name as given
            return model_sql.table(model_name, self._context.default_dialect)
        return model_sql.Identifier(exp.to_table(physical, dialect=self._context.default_dialect),
                                    self._context.default_dialect)

    def _prepared(self, expression: exp.Expr, params: t.Mapping[str, t.Any]) -> "SqlResult":
        values = {name: value for name, value in params.items() if not isinstance(value, Identifier)}
        _check_parameters(self.spec.name, expression, values)
        expression = self._read_models_physically(expression)
        expression = self._bind_functions(expression)
        if self._context.engine_adapter is not None:
            from mixmesh import engines

            expression = engines.resolve_expression(self._context.engine_adapter, expression, values)
        return SqlResult(self._context.engine_adapter, expression, values, self.spec.name)

    def execute(self, query: t.Union[str, exp.Expr], **params: t.Any) -> "SqlResult":
        """The seed's spelling of ``sql``: ``context.engine.execute(query)``."""
        return self.sql(query, **params)

    @property
    def engine(self) -> "ModelContext":
        """The seed's ``context.engine``: ``context.engine.execute(query)`` is ``context.sql``."""
        return self

    def _parse(self, query: t.Union[str, exp.Expr], params: t.Mapping[str, t.Any]) -> exp.Expr:
        if isinstance(query, exp.Expr):
            return query.copy()
        dialect = self._context.default_dialect
        try:
            parsed = sqlglot.parse_one(query, read=dialect)
        except sqlglot.errors.ParseError:
            try:
                parsed = sqlglot.parse_one(_dollar_parameters(query, dialect, params), read=dialect)
            except sqlglot.errors.ParseError as error:
                missing = _colon_names(query, dialect) - set(params)
                if missing:
                    raise ModelSqlError(
                        f"model {self.spec.name}: the query uses parameter(s) {sorted(missing)} that "
                        "context.sql was not given"
                    ) from None
                raise ModelSqlError(f"model {self.spec.name}: context.sql cannot parse the query: {error}") from None
        return _as_placeholders(parsed, params)

    def _read_models_physically(self, expression: exp.Expr) -> exp.Expr:
        """Models become the physical tables of the environment being built."""
        from sqlmesh.core.dialect import normalize_model_name

        tables = self._context._model_tables
        ctes = {cte.alias_or_name for cte in expression.find_all(exp.CTE)}

        def physical(node: exp.Expr) -> exp.Expr:
            if not isinstance(node, exp.Table) or not node.name or (not node.db and node.name in ctes):
                return node
            name = normalize_model_name(node, self._context.default_catalog, self._context.default_dialect)
            if name not in tables:
                return node
            table = exp.to_table(tables[name])
            if node.alias:
                table.set("alias", node.args["alias"])
            return table

        return expression.transform(physical, copy=False)

    def _bind_functions(self, expression: exp.Expr) -> exp.Expr:
        """Calls of ``@udf`` functions and project SQL functions become their engine bindings,
        as in SQL models (the SQL functions' definitions were stored with the model's code)."""
        from mixmesh.runtime.bindings import bind_calls, bound_call, call_arguments
        from mixmesh.runtime.functions import Udf

        bind_calls(expression, self.spec.func.__globals__)
        functions = {
            value.spec.name: value for value in self.spec.func.__globals__.values() if isinstance(value, Udf)
        }
        if not functions:
            return expression
        adapter = self._context.engine_adapter

        def bound(node: exp.Expr) -> exp.Expr:
            udf = functions.get(node.name.lower()) if isinstance(node, exp.Anonymous) else None
            if udf is None:
                return node
            positional = [arg for arg in node.expressions if not isinstance(arg, exp.PropertyEQ)]
            named = [arg for arg in node.expressions if isinstance(arg, exp.PropertyEQ)]
            keywords = {arg.this.name: arg.expression for arg in named}
            twice = sorted({arg.this.name for arg in named if sum(a.this.name == arg.this.name for a in named) > 1})
            arguments = call_arguments(udf.spec, self.spec.name, positional, keywords, twice=twice)
            return bound_call(udf.spec, self.spec.name, arguments, adapter)

        return expression.transform(bound, copy=False)


_Rows = t.TypeVar("_Rows", bound=t.Sized)


class SqlResult:
    """A query ready to run; each conversion runs it (``.batches`` streams)."""

    def __init__(self, adapter: t.Any, expression: exp.Expr, params: t.Mapping[str, t.Any], model: str) -> None:
        self._adapter = adapter
        self.expression = expression
        self.params = dict(params)
        self.model = model

    def to_arrow(self) -> "pa.Table":
        """All rows as a pyarrow Table."""
        with self._run() as result:
            return _read(result.to_arrow_table())

    def to_pandas(self) -> "pd.DataFrame":
        """All rows as a pandas DataFrame."""
        with self._run() as result:
            return _read(result.df())

    def to_polars(self) -> t.Any:
        """All rows as a polars DataFrame (needs polars installed)."""
        try:
            import polars as pl
        except ImportError:
            raise ModelSqlError(f"model {self.model}: to_polars() needs polars: pip install polars") from None
        return pl.from_arrow(self.to_arrow())

    def batches(self, rows: int = DEFAULT_BATCH_ROWS) -> t.Iterator["pa.RecordBatch"]:
        """The rows as Arrow record batches of up to ``rows`` rows, streamed from the engine."""
        with self._run() as result:
            for batch in result.to_arrow_reader(rows):
                yield _read(batch)
                del batch  # not alive while the next one is read

    def to_spark(self) -> t.Any:
        """The rows as a Spark DataFrame, computed where the data is (a Spark gateway only):
        a model may return it, and its rows go from Spark to the model's table without
        passing through Python."""
        from mixmesh import engines

        engine = engines.engine(self._adapter.dialect)
        if not hasattr(engine, "dataframe"):
            raise ModelSqlError(
                f"model {self.model}: to_spark() needs a Spark gateway; this one is {self._adapter.dialect}"
            )
        return engine.dataframe(self._adapter, self.expression, self.params)

    def fetchall(self) -> t.List[t.Tuple[t.Any, ...]]:
        """All rows as tuples."""
        with self._run() as result:
            return _read(result.fetchall())

    def sql(self) -> str:
        """The query as the engine receives it (parameters stay parameters)."""
        from mixmesh import engines

        return engines.engine(self._adapter.dialect).render(self.expression)

    def _run(self) -> t.ContextManager[t.Any]:
        from mixmesh import engines

        return engines.engine(self._adapter.dialect).run(self._adapter, self.expression, self.params)


def _read(rows: _Rows) -> _Rows:
    """Count the rows a model read, for monitoring's rows in."""
    from mixmesh import sink

    sink.record_rows_read(len(rows))
    return rows


def _dollar_parameters(query: str, dialect: t.Optional[str], params: t.Mapping[str, t.Any]) -> str:
    """``:name`` as ``$name``, for dialects whose parser does not read ``:name`` everywhere.

    DuckDB's SQL gives ``:`` other meanings (``SELECT :n`` does not parse, ``{'a':x}`` is a
    struct), so only a colon that the dialect's own tokenizer sees right before the name
    of a given parameter (never inside a string or a comment) is rewritten.
    """
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokens import TokenType

    tokens = Dialect.get_or_raise(dialect).tokenize(query)
    colons = [
        colon.start
        for colon, name in zip(tokens, tokens[1:])
        if colon.token_type == TokenType.COLON
        and name.start == colon.end + 1
        and name.text in params
    ]
    for position in reversed(colons):
        query = query[:position] + "$" + query[position + 1 :]
    return query


def _colon_names(query: str, dialect: t.Optional[str]) -> t.Set[str]:
    """The names written as ``:name`` in a query (the dialect's tokens, not strings)."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokens import TokenType

    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(query)
    except sqlglot.errors.SqlglotError:
        return set()
    return {
        name.text for colon, name in zip(tokens, tokens[1:])
        if colon.token_type == TokenType.COLON and name.start == colon.end + 1 and name.token_type == TokenType.VAR
    }


def _as_placeholders(expression: exp.Expr, params: t.Mapping[str, t.Any]) -> exp.Expr:
    """``$name`` parses as a parameter node in some dialects; make every one a placeholder."""

    def placeholder(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Parameter) and node.name in params:
            return exp.Placeholder(this=node.name)
        return node

    return expression.transform(placeholder, copy=False)


def _check_parameters(model: str, expression: exp.Expr, params: t.Mapping[str, t.Any]) -> None:
    placeholders = list(expression.find_all(exp.Placeholder))
    if any(p.name in ("", "?") for p in placeholders):
        raise ModelSqlError(f"model {model}: context.sql takes named parameters (:name), not '?'")
    names = {p.name for p in placeholders}
    missing, unused = sorted(names - set(params)), sorted(set(params) - names)
    if missing:
        raise ModelSqlError(f"model {model}: the query uses parameter(s) {missing} that context.sql was not given")
    if unused:
        raise ModelSqlError(f"model {model}: context.sql was given parameter(s) {unused} the query does not use (:name)")


def _date(value: t.Optional[dt.datetime]) -> t.Optional[dt.date]:
    if value is None:
        return None
    return value.date() if isinstance(value, dt.datetime) else value


# Public names keep the path projects import them from (see mixmesh.core.names).
keep_import_path(globals(), "mixmesh.context")
