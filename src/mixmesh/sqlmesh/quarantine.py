"""Quarantined rows in the warehouse: the table ``mixmesh_quarantine.rows``, written after
each model's statement, and the audit ``quarantined_rows`` every project gets.

Around the statement that writes a model's interval (``SnapshotEvaluator._render_and_insert_snapshot``,
inside SQLMesh's transaction where the engine has them), ``insert_hook`` collects the rows
the model's functions quarantined (``mixmesh.runtime.quarantine``, with those Spark's
executors sent back). Once the statement has written the model's data, and only then, it
appends them to the table through the gateway's engine adapter, then resolves the entries
earlier evaluations of the same interval left (a restatement fixes them or quarantines them
again under its own run). A statement that fails writes nothing: no entry describes data that
was not written. A failure to write the entries fails the evaluation: nothing is dropped.

Entries belong to the physical table of the model's version (``table_name``), as SQLMesh's
intervals do: the audit counts those of the table it audits.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import typing as t
import uuid
import weakref

from sqlglot import exp

SCHEMA = "mixmesh_quarantine"
TABLE = f"{SCHEMA}.rows"
AUDIT_NAME = "quarantined_rows"

COLUMNS: t.Dict[str, exp.DataType] = {
    name: exp.DataType.build(sql_type)
    for name, sql_type in (
        ("run_id", "TEXT"),
        ("model", "TEXT"),
        ("table_name", "TEXT"),  # the physical table of the model's version (SQLMesh's snapshot table)
        ("interval_start", "TIMESTAMPTZ"),
        ("interval_end", "TIMESTAMPTZ"),  # exclusive
        ("function", "TEXT"),
        ("arguments", "TEXT"),  # JSON, by argument name
        ("error_type", "TEXT"),
        ("error_message", "TEXT"),
        ("attempts", "INT"),
        ("row_count", "BIGINT"),  # 1, or the rows a summary over the cap stands for
        ("quarantined_at", "TIMESTAMPTZ"),
        ("resolved_at", "TIMESTAMPTZ"),
        ("resolved_by_run", "TEXT"),
    )
}

# SQLMesh runs an audit's query for each interval it evaluated; it fails when rows come back.
AUDIT_SQL = f"""
AUDIT (name {AUDIT_NAME}, defaults (max_rows = 0), blocking true);
SELECT model, function, quarantined, total,
  'model ' || model || ': function ' || function || ' quarantined ' || CAST(quarantined AS VARCHAR)
  || ' rows of this interval (' || CAST(total AS VARCHAR) || ' in all, more than max_rows '
  || CAST(@max_rows AS VARCHAR) || '); see mixmesh quarantine --model ' || model AS message
FROM (
  SELECT model, function, quarantined, SUM(quarantined) OVER () AS total
  FROM (
    SELECT model, function, SUM(row_count) AS quarantined
    FROM {TABLE}
    WHERE table_name = @resolve_template('@{{table_name}}', mode := 'literal')
      AND resolved_at IS NULL
      AND interval_start <= @end_dt AND interval_end > @start_dt
    GROUP BY model, function
  ) AS by_function
) AS counted
WHERE total > @max_rows
"""


# ---------------------------------------------------------------------------- the hooks


def insert_hook(insert: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap ``SnapshotEvaluator._render_and_insert_snapshot``: the rows quarantined while the
    model's interval is written go to the warehouse once it is written."""

    @functools.wraps(insert)
    def hook(self: t.Any, start: t.Any, end: t.Any, execution_time: t.Any, snapshot: t.Any, *args: t.Any,
             **kwargs: t.Any) -> t.Any:
        if not snapshot.is_model or snapshot.is_seed:
            return insert(self, start, end, execution_time, snapshot, *args, **kwargs)
        from mixmesh import engines
        from mixmesh.runtime import quarantine

        adapter = self.get_adapter(snapshot.model.gateway)
        ensure_table(adapter)
        with quarantine.collecting(snapshot.name) as collector:
            result = insert(self, start, end, execution_time, snapshot, *args, **kwargs)
            engines.collect_remote_quarantined()  # what Spark's executors sent back with their tasks
            target = kwargs.get("target_table_name") or snapshot.table_name()
            interval = (_utc(start), _utc(end))
            record(adapter, collector.rows(), model_table(target), interval, run_id())
        return result

    return hook


def audits_hook(load_audits: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap ``SqlMeshLoader._load_audits``: every project has the ``quarantined_rows`` audit
    (a project's own audit of that name wins)."""

    @functools.wraps(load_audits)
    def hook(self: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        audits = load_audits(self, *args, **kwargs)
        if AUDIT_NAME not in audits:
            audits[AUDIT_NAME] = quarantined_rows_audit(self.config.model_defaults.dialect, self.config_path)
        return audits

    return hook


def audit_hook(audit: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """Wrap ``SnapshotEvaluator.audit``: a failed ``quarantined_rows`` audit says which functions
    quarantined how many rows. SQLMesh shows a failed audit's arguments and query, not its
    rows: the rows' messages are added as the argument ``found``."""

    @functools.wraps(audit)
    def hook(self: t.Any, snapshot: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        results = audit(self, snapshot, *args, **kwargs)
        return [_with_findings(self, snapshot, result) for result in results]

    return hook


def _with_findings(evaluator: t.Any, snapshot: t.Any, result: t.Any) -> t.Any:
    if result.audit.name != AUDIT_NAME or not result.count or result.query is None:
        return result
    messages = failed_rows_messages(evaluator, snapshot, result)
    return result if messages is None else with_found(result, "; ".join(messages))


def failed_rows_messages(evaluator: t.Any, snapshot: t.Any, result: t.Any) -> t.Optional[t.List[str]]:
    """The ``message`` column of a failed mixmesh audit's rows; None where they cannot be read
    (the audit failed either way; only its explanation is missing)."""
    adapter = evaluator.get_adapter(snapshot.model.gateway)
    try:
        return [row[0] for row in adapter.fetchall(exp.select("message").from_(result.query.subquery("failed")))]
    except Exception:  # noqa: BLE001 - see above
        return None


def with_found(result: t.Any, text: str) -> t.Any:
    """The audit result with ``found := text`` among its arguments, which SQLMesh shows."""
    return result.model_copy(update={"audit_args": {**result.audit_args, "found": exp.Literal.string(text)}})


def quarantined_rows_audit(dialect: t.Optional[str], project: t.Any, sql: str = AUDIT_SQL) -> t.Any:
    """The audit (or another of mixmesh's, ``sql``), as SQLMesh loads one from a project's audits/ folder."""
    from sqlmesh.core.audit import load_audit
    from sqlmesh.core.dialect import parse

    # Parsed in DuckDB's dialect, in which the text is written; rendered in the project's.
    audit = load_audit(parse(sql, default_dialect="duckdb"), dialect="duckdb", module_path=project)
    return audit.model_copy(update={"dialect": dialect or "duckdb"}) if dialect and dialect != "duckdb" else audit


# ----------------------------------------------------------------------- the warehouse


_ensured: "weakref.WeakSet[t.Any]" = weakref.WeakSet()  # adapters (a new Context, a new one)
_ensure_lock = threading.Lock()


def ensure_table(adapter: t.Any) -> None:
    """Create the schema and the table once per engine adapter (under a lock: concurrent
    CREATEs of one table conflict on DuckDB)."""
    if adapter in _ensured:
        return
    with _ensure_lock:
        if adapter not in _ensured:
            adapter.create_schema(SCHEMA)
            adapter.create_table(TABLE, COLUMNS, exists=True)
            _ensured.add(adapter)


def record(
    adapter: t.Any, rows: t.Sequence[t.Any], table_name: str, interval: t.Tuple[dt.datetime, dt.datetime], run: str
) -> None:
    """Append the evaluation's rows, then resolve what earlier evaluations of the interval left
    (one evaluation at a time where resolving rewrites the table, so no append is lost)."""
    if updates_in_place(adapter):
        _append_and_resolve(adapter, rows, table_name, interval, run)
    else:
        with _rewrite_lock:
            _append_and_resolve(adapter, rows, table_name, interval, run)


_rewrite_lock = threading.Lock()


def _append_and_resolve(
    adapter: t.Any, rows: t.Sequence[t.Any], table_name: str, interval: t.Tuple[dt.datetime, dt.datetime], run: str
) -> None:
    import pandas as pd

    if rows:
        now = dt.datetime.now(dt.timezone.utc)
        frame = pd.DataFrame(
            [{"run_id": run, "model": row.model, "table_name": table_name,
              "interval_start": interval[0], "interval_end": interval[1], "function": row.function,
              "arguments": row.arguments, "error_type": row.error_type, "error_message": row.error_message,
              "attempts": row.attempts, "row_count": row.rows, "quarantined_at": now,
              "resolved_at": None, "resolved_by_run": None} for row in rows],
            columns=list(COLUMNS),
        )
        frame["attempts"] = frame["attempts"].astype("Int64")
        frame["resolved_at"] = pd.Series([pd.NaT] * len(frame), dtype="datetime64[us, UTC]")
        adapter.insert_append(TABLE, frame, target_columns_to_types=COLUMNS, track_rows_processed=False)
    resolve(adapter, table_name, interval, run)


def resolve(adapter: t.Any, table_name: str, interval: t.Tuple[dt.datetime, dt.datetime], run: str) -> None:
    """Mark resolved the entries of ``table_name`` for intervals overlapping ``interval``
    written by other runs (this run's own are its new failures)."""
    where = exp.and_(
        exp.column("table_name").eq(exp.Literal.string(table_name)),
        exp.column("resolved_at").is_(exp.null()),
        exp.column("run_id").neq(exp.Literal.string(run)),
        exp.column("interval_start").__lt__(_timestamp(interval[1])),
        exp.column("interval_end").__gt__(_timestamp(interval[0])),
    )
    resolved = {"resolved_at": exp.cast(exp.Literal.string(_now_text()), exp.DataType.build("TIMESTAMPTZ")),
                "resolved_by_run": exp.Literal.string(run)}
    if updates_in_place(adapter):
        adapter.update_table(TABLE, resolved, where=where)
    else:
        _rewrite_resolved(adapter, resolved, where)


def updates_in_place(adapter: t.Any) -> bool:
    """Whether the engine runs UPDATE on a plain table (Spark's file tables do not)."""
    return getattr(adapter, "dialect", None) != "spark"


def _rewrite_resolved(adapter: t.Any, resolved: t.Dict[str, exp.Expression], where: exp.Expression) -> None:
    """Resolve by rewriting the table (engines without UPDATE): the quarantine stays small
    (capped per evaluation), and only when something is to be resolved."""
    found = adapter.fetchone(exp.select("COUNT(*)").from_(TABLE).where(where))
    if not found or not found[0]:
        return
    columns = [
        exp.If(this=where.copy(), true=value.copy(), false=exp.column(name)).as_(name) if name in resolved
        else exp.column(name)
        for name, value in ((name, resolved.get(name)) for name in COLUMNS)
    ]
    frame = adapter.fetchdf(exp.select(*columns).from_(TABLE))
    adapter.replace_query(TABLE, frame, target_columns_to_types=COLUMNS)


def model_table(target_table_name: str) -> str:
    """The physical table's own name, as the audit's ``@resolve_template('@{table_name}')`` gives it."""
    return exp.to_table(target_table_name).name


def run_id() -> str:
    """The run the entries are filed under: monitoring's run of the evaluation, when it records one."""
    from mixmesh.sink import evaluation_on_this_thread

    evaluation = evaluation_on_this_thread()
    return getattr(evaluation, "run_id", None) or uuid.uuid4().hex


def _utc(value: t.Any) -> dt.datetime:
    from sqlmesh.utils.date import to_datetime

    return to_datetime(value).astimezone(dt.timezone.utc)


def _timestamp(value: dt.datetime) -> exp.Expression:
    return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.build("TIMESTAMPTZ"))


def _now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(sep=" ")


# ------------------------------------------------------------------------------ reading


def table_exists(adapter: t.Any) -> bool:
    return bool(adapter.table_exists(TABLE))


def listed(
    adapter: t.Any, *, model: t.Optional[str] = None, function: t.Optional[str] = None,
    limit: t.Optional[int] = 50, include_resolved: bool = False,
) -> t.Any:
    """The entries, newest first, as a pandas DataFrame."""
    query = exp.select(*COLUMNS).from_(TABLE).where(_filters(model, function, include_resolved))
    query = query.order_by("quarantined_at DESC", "interval_start DESC", "function", "arguments")
    return adapter.fetchdf(query.limit(limit) if limit else query)


def summarised(
    adapter: t.Any, *, model: t.Optional[str] = None, function: t.Optional[str] = None, include_resolved: bool = False
) -> t.Any:
    """Failed rows by model, function and error type, most first, as a pandas DataFrame."""
    query = (
        exp.select(
            "model", "function", "error_type", "CAST(SUM(row_count) AS BIGINT) AS failed_rows", "COUNT(DISTINCT run_id) AS runs",
            "MIN(interval_start) AS first_interval", "MAX(interval_end) AS last_interval",
            "MAX(quarantined_at) AS last_quarantined_at",
        )
        .from_(TABLE)
        .where(_filters(model, function, include_resolved))
        .group_by("model", "function", "error_type")
        .order_by("failed_rows DESC", "model", "function", "error_type")
    )
    return adapter.fetchdf(query)


def _filters(model: t.Optional[str], function: t.Optional[str], include_resolved: bool) -> exp.Expression:
    conditions: t.List[exp.Expression] = [exp.true()]
    if not include_resolved:
        conditions.append(exp.column("resolved_at").is_(exp.null()))
    if model:
        conditions.append(exp.column("model").eq(exp.Literal.string(model)))
    if function:
        conditions.append(exp.column("function").eq(exp.Literal.string(function)))
    return exp.and_(*conditions)
