"""What the metrics store (and the model's own table) say about a model's volume and latency.

``daily_row_count`` must be rows per day of data, so where it comes from depends on the
model's kind:

- an incremental model writes the rows of each interval it builds: the rows written over the
  days of the intervals built (the latest build of each interval; unit tests and previews
  left out);
- a FULL model rebuilds everything each time, over an interval SQLMesh runs from the model's
  start to now: that interval says nothing of the days the rows cover (a model started in
  2024 read "5 rows a day over 1068 days" for the 5,340 rows it rebuilds daily). Its table
  holds one build's rows; the days they cover are the span of its time column (``time_column``
  says which), and with no such column no daily figure is stated: only the rows of its latest
  build.

The p95 of the run time is measured too; it is shown, never taken as a latency SLA.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing as t

from sqlglot import exp

if t.TYPE_CHECKING:
    import pandas as pd

PREVIEW_COMMANDS = ("test", "evaluate")  # runs that build no table: their rows say nothing of volume
SECONDS_A_DAY = 86_400
# Types whose values are days or instants (TIME of day is not).
DATED_TYPES = exp.DataType.TEMPORAL_TYPES - {exp.DataType.Type.TIME, exp.DataType.Type.TIMETZ}


@dataclasses.dataclass(frozen=True)
class DataSpan:
    """What a model's table holds now along its time column: the rows, the first and last day."""

    column: str
    rows: int
    first: dt.date
    last: dt.date

    @property
    def days(self) -> int:
        """Calendar days from the first to the last, both counted."""
        return (self.last - self.first).days + 1


@dataclasses.dataclass(frozen=True)
class Measured:
    """What the metrics store says about one model."""

    runs: int = 0  # evaluations that built the model's table, succeeded
    p95_total_ms: t.Optional[float] = None
    daily_row_count: t.Optional[int] = None
    intervals: int = 0  # distinct intervals the row count is measured over (incremental models)
    interval_days: float = 0.0
    rows_per_build: t.Optional[int] = None  # a FULL model: the rows its latest build wrote
    span: t.Optional[DataSpan] = None  # a FULL model: its time column's span, where daily_row_count comes from
    no_span: t.Optional[str] = None  # a FULL model without a span: why


@dataclasses.dataclass(frozen=True)
class TimeColumn:
    """The column a model's rows are dated by, or why there is none."""

    name: t.Optional[str]
    why_not: str = ""


def rebuilds(model: t.Any) -> bool:
    """Whether each build replaces all the model's rows (FULL and VIEW kinds)."""
    return bool(model.kind.is_full or model.kind.is_view)


def time_column(model: t.Any) -> TimeColumn:
    """The kind's time column; else the one date or timestamp column of ``partitioned_by``;
    else the model's one date or timestamp column."""
    declared = getattr(model.kind, "time_column", None)
    if declared is not None:
        return TimeColumn(declared.column.name)
    types = model.columns_to_types or {}
    dated = [name for name, kind in types.items() if kind is not None and kind.this in DATED_TYPES]
    partitions = [c.name for e in model.partitioned_by for c in e.find_all(exp.Column) if c.name in dated]
    if len(set(partitions)) == 1:
        return TimeColumn(partitions[0])
    if len(dated) == 1:
        return TimeColumn(dated[0])
    if not dated:
        return TimeColumn(None, "it has no date or timestamp column to spread them over")
    return TimeColumn(None, f"it has several date or timestamp columns ({', '.join(dated)}): "
                            "partitioned_by on one of them says which dates its rows")


def data_span(adapter: t.Any, model: t.Any, column: str) -> t.Optional[DataSpan]:
    """Rows and first and last day of ``column`` in the model's table (its production view),
    or None when it cannot be read (not built, another process holds the database)."""
    dated = exp.column(column, quoted=True)
    query = exp.select(exp.func("count", exp.Star()), exp.func("min", dated), exp.func("max", dated)).from_(
        exp.to_table(model.fqn, dialect=model.dialect)
    )
    try:
        rows, first, last = adapter.fetchone(query)
    except Exception:  # noqa: BLE001 - advice goes on without the figure
        return None
    if first is None or last is None:
        return None
    return DataSpan(column, int(rows), _day(first), _day(last))


def measure(runs: "pd.DataFrame", *, rebuilt: bool = False, span: t.Optional[DataSpan] = None,
            no_span: t.Optional[str] = None) -> Measured:
    """Figures from a model's rows of ``MetricsStore.model_runs()``: successful runs that built
    its table. ``rebuilt``: a FULL model, whose rows a day come from ``span`` only."""
    built = runs[(runs["status"] == "ok") & ~runs["command"].isin(PREVIEW_COMMANDS)]
    if built.empty:
        return Measured()
    p95_ms = float(built["total_s"].quantile(0.95)) * 1000  # linear interpolation between runs
    if rebuilt:
        latest = built.dropna(subset=["rows_out"]).sort_values("started_at")
        rows = int(latest["rows_out"].iloc[-1]) if len(latest) else None
        daily = round(span.rows / span.days) if span is not None else None
        return Measured(len(built), p95_ms, daily, rows_per_build=rows, span=span,
                        no_span=None if span is not None else no_span)
    rated = built.dropna(subset=["interval_start", "interval_end", "rows_out"])
    rated = rated[rated["interval_end"] > rated["interval_start"]]
    # A restated or rerun interval counts once, as last built.
    rated = rated.sort_values("started_at").drop_duplicates(["interval_start", "interval_end"], keep="last")
    days = float((rated["interval_end"] - rated["interval_start"]).dt.total_seconds().sum()) / SECONDS_A_DAY
    daily = round(float(rated["rows_out"].sum()) / days) if days > 0 else None
    return Measured(len(built), p95_ms, daily, len(rated), round(days, 4))


def describe(measured: Measured) -> str:
    """Where ``daily_row_count`` came from, in words."""
    span = measured.span
    if span is not None:
        return (
            f"{measured.daily_row_count:,} rows a day: the {span.rows:,} rows its table holds (one FULL build) "
            f"over the {span.days:,} day(s) of {span.column}, {span.first} to {span.last}"
        )
    return (
        f"{measured.daily_row_count:,} rows a day: rows written over {measured.interval_days:g} day(s) "
        f"of {measured.intervals} interval(s)"
    )


def _day(value: t.Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def measure_model(model: t.Any, runs: t.Optional["pd.DataFrame"], adapter: t.Any = None) -> Measured:
    """``measure`` for a loaded SQLMesh model: a FULL one's span read through ``adapter``."""
    if runs is None:
        return Measured()
    if not rebuilds(model):
        return measure(runs)
    column = time_column(model)
    if column.name is None:
        return measure(runs, rebuilt=True, no_span=column.why_not)
    span = data_span(adapter, model, column.name) if adapter is not None else None
    return measure(runs, rebuilt=True, span=span, no_span=f"its table's {column.name} could not be read")
