"""Landing what a Python model returns: checked, staged in the engine, then written at once.

A model may return a pandas DataFrame, an Arrow table, a polars DataFrame, or yield batches
of them; on engines that have DataFrames of their own (Spark), one of those too, which stays
in the engine (distributed) from the query that made it to the model's table. Each batch is
conformed to the declared columns (``validation``) and appended to
a staging table in the engine as it comes, so nothing is held whole in Python memory.
When every batch has landed and the grain is unique, SQLMesh gets one query reading the
staging table, and writes it as it writes any model. As batches land, the engine releases
what it cached of the tables read and written, and it keeps a small budget while SQLMesh
copies the staged rows (``release_memory``, ``write_budget``), so that memory stays at
about a batch whatever the number of rows. A failure anywhere before that
leaves the model's table as it was; SQLMesh's own write of a DataFrame generator is not
transactional on every engine, which is why batches do not go to it one by one.
"""

from __future__ import annotations

import contextlib
import logging
import types as pytypes
import typing as t

import pyarrow as pa
from sqlglot import exp

from mixmesh import engines
from mixmesh.core import sql_types as types
from mixmesh.runtime import validation

if t.TYPE_CHECKING:
    from mixmesh.pymodels.context import ModelContext
    from mixmesh.core.models import ModelSpec

logger = logging.getLogger(__name__)


class Staged(t.NamedTuple):
    """A model's rows, checked and staged: the query SQLMesh writes from, and the cleanup."""

    query: exp.Query
    drop: t.Callable[[], None]  # also ends the write budget: call it once SQLMesh has written


# Kinds SQLMesh writes by copying the query's rows (CREATE TABLE AS, DELETE + INSERT): a
# copy streams, so a small memory budget holds it. Other kinds (MERGE...) join the staged
# rows with the model's table and keep the engine's own limit.
COPIED_KINDS = ("FULL", "INCREMENTAL_BY_TIME_RANGE")
# How much a landing appends between two releases of the engine's cache (releasing costs a
# few milliseconds, which a stream of small batches would pay per batch); a landing smaller
# than this leaves the engine's memory alone.
RELEASE_EVERY_BYTES = 16 * 2**20


def stage(returned: t.Any, spec: "ModelSpec", context: "ModelContext") -> Staged:
    """Check and stage everything the model returned (consuming its batches)."""
    adapter = context.engine_adapter
    engine = engines.engine(adapter.dialect)
    staging = engine.create_staging(adapter, spec.columns, model=spec.name)
    try:
        landed = unreleased = 0  # bytes appended, and appended since the engine's cache was released
        for table in _tables(returned, spec, engine):
            size = getattr(table, "nbytes", RELEASE_EVERY_BYTES)  # an engine's frame: count it as large
            engine.append_staging(adapter, staging, _conformed(table, spec, engine))
            del table  # the last batch (for a single DataFrame, all of it) need not outlive its landing
            landed, unreleased = landed + size, unreleased + size
            if unreleased >= RELEASE_EVERY_BYTES:
                engine.release_memory(adapter, staging)  # the engine cached the blocks read and written
                unreleased = 0
        _check_unique(engine, adapter, staging, spec, spec.grain or spec.unique_key)
        query = _written_rows(engine, adapter, staging, spec, context)
        budget = _write_budget(engine, adapter, staging, spec, large=landed >= RELEASE_EVERY_BYTES)
    except BaseException:
        engine.drop_staging(adapter, staging)
        raise

    def drop() -> None:
        budget.close()
        _drop_quietly(engine, adapter, staging)

    return Staged(query, drop)


def _write_budget(
    engine: t.Any, adapter: t.Any, staging: str, spec: "ModelSpec", *, large: bool
) -> contextlib.ExitStack:
    """The engine's memory budget for SQLMesh's write, held until ``Staged.drop``; a small
    landing (less than ``RELEASE_EVERY_BYTES``) left little in the cache, and pays nothing."""
    budget = contextlib.ExitStack()
    if large:
        engine.release_memory(adapter, staging)
        if spec.kind in COPIED_KINDS:
            budget.enter_context(engine.write_budget(adapter, staging))
    return budget


def _drop_quietly(engine: t.Any, adapter: t.Any, staging: str) -> None:
    """Drop a staging table; a failure only leaves it to the next landing's clean-up."""
    try:
        engine.drop_staging(adapter, staging)
    except Exception as error:  # the write itself succeeded or failed on its own
        logger.warning("could not drop the staging table %s (%s); a later run drops it", staging, error)


def _tables(returned: t.Any, spec: "ModelSpec", engine: t.Any) -> t.Iterator[t.Any]:
    if _is_batches(returned):
        for batch in returned:
            yield _table(batch, spec, engine)
            del batch  # not alive while the next one is read
    else:
        yield _table(returned, spec, engine)


def _is_batches(value: t.Any) -> bool:
    return isinstance(value, (pytypes.GeneratorType, list, tuple)) or (
        hasattr(value, "__next__") and not hasattr(value, "columns")
    )


def _is_engine_frame(value: t.Any, engine: t.Any) -> bool:
    """A DataFrame of the engine's own (a Spark DataFrame), which the engine lands itself."""
    return engine.ENGINE_FRAMES and engine.is_engine_frame(value)


def _conformed(table: t.Any, spec: "ModelSpec", engine: t.Any) -> t.Any:
    if _is_engine_frame(table, engine):
        return engine.conform_frame(table, spec)
    return validation.conform(table, spec)


def _table(value: t.Any, spec: "ModelSpec", engine: t.Any) -> t.Any:
    """A returned batch as an Arrow table (pandas, Arrow or polars), or the engine's own frame."""
    if _is_engine_frame(value, engine):
        return value
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    module = type(value).__module__.split(".")[0]
    is_frame = hasattr(value, "columns")  # a DataFrame, not a Series
    if module == "pandas" and is_frame:
        return _from_pandas(value, spec)
    if module == "polars" and is_frame:
        return value.to_arrow()
    raise validation.ModelOutputError(
        f"model {spec.name} returned a {type(value).__name__}; return a pandas DataFrame, an Arrow "
        "table or a polars DataFrame, or yield several of them"
    )


def _from_pandas(frame: t.Any, spec: "ModelSpec") -> pa.Table:
    try:
        return _nan_kept(pa.Table.from_pandas(frame, preserve_index=False), frame, spec)
    except (pa.ArrowException, TypeError, ValueError):
        pass
    for name in frame.columns:  # find the column that does not convert, for the message
        try:
            pa.Table.from_pandas(frame[[name]], preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError) as error:
            raise validation.ModelOutputError(
                f"model {spec.name}: column {name!r} mixes values Arrow cannot hold in one column ({error})"
            ) from None
    raise validation.ModelOutputError(f"model {spec.name}: its DataFrame does not convert to Arrow")


def _nan_kept(table: pa.Table, frame: t.Any, spec: "ModelSpec") -> pa.Table:
    """The columns declared DOUBLE or FLOAT (at any depth) with NaN kept as NaN.

    Arrow reads pandas' NaN as NULL (pandas' own marker of a missing float); a Python model
    keeps NaN as NaN on every engine instead, as its functions' results do, and as Arrow and
    polars frames do: a NULL is None or pd.NA (docs/return-values.md).
    """
    for name, sql_type in spec.columns.items():
        if name not in table.column_names or not types.holds_floats(sql_type):
            continue
        column = frame[name]
        if getattr(column, "ndim", 2) != 1:  # a name the frame holds twice: conform says so
            continue
        try:
            kept = pa.array(column, from_pandas=False)  # a float64 column: read in place, no copy
        except (pa.ArrowException, TypeError, ValueError):
            continue  # values Arrow reads only the pandas way: the checks that follow say what is wrong
        table = table.set_column(table.column_names.index(name), name, kept)
    return table


def _check_unique(engine: t.Any, adapter: t.Any, staging: str, spec: "ModelSpec", key: t.Sequence[str]) -> None:
    if not key:
        return
    columns = [exp.column(name, quoted=True) for name in key]
    duplicate = (
        exp.select(*columns, exp.func("COUNT", exp.Star()).as_("copies"))
        .from_(exp.to_table(staging))
        .group_by(*columns)
        .having(exp.func("COUNT", exp.Star()) > 1)
        .limit(1)
    )
    with engine.run(adapter, duplicate, {}, staging=True) as result:
        rows = result.fetchall()
    if rows:
        *values, copies = rows[0]
        example = dict(zip(key, values))
        raise validation.ModelOutputError(
            f"model {spec.name} returned {copies} rows with the same grain {example}; "
            f"each value of the grain {list(key)} may appear once"
        )


def _written_rows(
    engine: t.Any, adapter: t.Any, staging: str, spec: "ModelSpec", context: "ModelContext"
) -> exp.Query:
    """The query SQLMesh writes from: the staged rows, within the interval for incremental models."""
    query = exp.select(*[exp.column(c, quoted=True) for c in spec.columns]).from_(exp.to_table(staging))
    if not spec.is_incremental_by_time or context.start is None or context.end is None:
        return query
    column = exp.column(spec.time_column, quoted=True)
    start, end = (_literal(value, spec.columns[spec.time_column]) for value in (context.start, context.end))
    outside = exp.or_(column < start, column > end)
    counting = exp.select(exp.func("COUNT", exp.Star())).from_(exp.to_table(staging)).where(outside)
    with engine.run(adapter, counting, {}, staging=True) as result:
        (count,) = result.fetchone()
    if count:
        _warn(
            f"model {spec.name} returned {count} row(s) with {spec.time_column} outside the interval "
            f"{context.start_date} .. {context.end_date}; they are not written"
        )
    return query.where(exp.Between(this=column.copy(), low=start.copy(), high=end.copy()))


def _literal(value: t.Any, sql_type: exp.DataType) -> exp.Expr:
    """An interval bound as a typed SQL literal, built by sqlglot (never pasted text)."""
    bound = exp.cast(exp.Literal.string(str(value)), exp.DataType.build("TIMESTAMP"))
    return exp.cast(bound, sql_type.copy()) if sql_type.is_type(exp.DataType.Type.DATE) else bound


def _warn(message: str) -> None:
    logger.warning(message)
    try:
        from sqlmesh.core.console import get_console

        get_console().log_warning(message)
    except Exception:  # the console is a courtesy; the log line is the record
        pass
