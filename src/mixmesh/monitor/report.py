"""The performance report: one self-contained HTML page with charts, viewable offline.

``render_report`` turns the store's two tables (``MetricsStore.model_runs`` and
``function_runs``) and a list of recommendations into the page; ``write_report`` reads a
store and writes it. The page is the jinja2 template ``templates/report.html.j2`` (with
autoescaping: every name and error from the store is escaped there); this module prepares
what it shows. The page loads nothing: its CSS is inline, its charts are inline SVG drawn
by ``charts``, and it has no script (its filter over models is CSS). Every charted figure
is in the DOM as a ``data-value`` on its mark, so what a reader sees can be checked
against the store.

Runs are grouped by model version (SQLMesh's snapshot fingerprint): a model's versions are
listed with their figures, and its charts and run table mark where the version changed.
Failed runs are listed near the top of the page with their errors, and in their model's
section, not only in a collapsed table.

Longer than 450 lines because it prepares every part of one page (index, failed runs, figures,
versions, charts, runs and functions) for its one template.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import typing as t
from pathlib import Path

from markupsafe import Markup

from mixmesh.core.version import __version__
from mixmesh.monitor import charts

if t.TYPE_CHECKING:
    import jinja2
    import pandas as pd

    from mixmesh.monitor.stats import ModelStats
    from mixmesh.monitor.versions import VersionStats
    from mixmesh.monitor.store import MetricsStore

MAX_RUNS_CHARTED = 50  # per model: the latest ones, so a long history stays readable
MAX_FAILED_LISTED = 20  # failed runs listed at the top of the page, latest first
TEMPLATE = "report.html.j2"

SQL = charts.Series("sql", "SQL (engine)")
PYTHON = charts.Series("python", "Python")
WAIT = charts.Series("wait", "waiting (retry backoff)")
ROWS_PER_S = charts.Series("rows-per-s", "rows/s")
MEMORY = charts.Series("memory", "process peak memory")
ADDED = charts.Series("memory-added", "memory the evaluation added")
P95 = charts.Series("p95", "p95 batch time")


def write_report(
    store: "MetricsStore",
    out: t.Union[str, Path],
    model: t.Optional[str] = None,
    days: t.Optional[float] = None,
    *,
    recommendations: t.Optional[t.Sequence[str]] = None,
) -> Path:
    """Read the store (only ``model``'s runs, only the last ``days`` days, if given) and write the page."""
    from mixmesh.monitor.stats import summarize_frames

    model_runs, function_runs = store.model_runs(model, days), store.function_runs(model, days)
    summary = summarize_frames(model_runs, function_runs)
    if recommendations is None:
        recommendations = [item.message for item in summary.recommendations]
    page = render_report(model_runs, function_runs, recommendations, scope=_scope(model, days), figures=summary.models)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def render_report(
    model_runs: "pd.DataFrame",
    function_runs: "pd.DataFrame",
    recommendations: t.Optional[t.Sequence[str]],
    *,
    max_runs: int = MAX_RUNS_CHARTED,
    scope: t.Optional[str] = None,
    generated_at: t.Optional[dt.datetime] = None,
    figures: t.Optional[t.Sequence["ModelStats"]] = None,
) -> str:
    """The page, as a string. ``recommendations=None`` says they were not computed; ``[]``, that there are none.

    ``figures``: the per-model figures ``mixmesh stats`` shows (computed from the runs when
    not given), so that the report and the command never disagree.
    """
    from mixmesh.monitor.stats import summarize_frames
    from mixmesh.monitor.versions import version_stats

    generated = generated_at or dt.datetime.now(dt.timezone.utc)
    models: t.List[ModelView] = []
    failed: t.List[RunView] = []
    if model_runs is not None and len(model_runs):
        model_runs = _with_new_columns(model_runs)
        if figures is None:
            figures = summarize_frames(model_runs, function_runs).models
        by_name = {stats.model: stats for stats in figures}
        for index, model in enumerate(_models(model_runs, function_runs), 1):
            versions = version_stats(model.name, model.runs)
            models.append(_model_view(index, model, by_name[model.name], versions, max_runs))
        failed = sorted((run for m in models for run in m.failed), key=lambda run: run.started, reverse=True)
    return _template().render(
        title="mixmesh performance report",
        facts=_facts(model_runs, scope, generated),
        scope=scope,
        models=models,
        failed=failed[:MAX_FAILED_LISTED],
        failed_total=len(failed),
        changed=sum(1 for m in models if m.changed),
        recommendations=None if recommendations is None else [str(r) for r in recommendations],
        version=__version__,
    )


@functools.lru_cache(maxsize=1)
def _template() -> "jinja2.Template":
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("mixmesh.monitor", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a name the template misspells fails, not renders empty
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(TEMPLATE)


# -- what the template shows -----------------------------------------------------------------


class _Model(t.NamedTuple):
    name: str
    runs: "pd.DataFrame"  # its model_runs rows, oldest first
    functions: "pd.DataFrame"  # its function_runs rows with the run's started_at, oldest first


class Cell(t.NamedTuple):
    """A figure in a table: its name, its value (``data-value``), and how it reads."""

    figure: str
    value: t.Optional[float]
    text: str

    @property
    def exact(self) -> str:
        return repr(float(self.value)) if self.value is not None else ""


class RunView(t.NamedTuple):
    """One run, as its model's table and the failed runs' list show it."""

    run_id: str
    model: str
    anchor: str
    started: str
    command: str
    environment: str
    version: str
    version_changed: bool  # the first run of a version after another's
    interval: str
    status: str
    error: str
    cells: t.List[Cell]


class ChartView(t.NamedTuple):
    svg: Markup
    caption: str
    legend: t.List[charts.Series]  # for charts of several series


class VersionView(t.NamedTuple):
    version: str
    snapshot_version: str
    changed: bool
    environments: str
    runs: int
    failed: int
    period: str
    cells: t.List[Cell]


class ModelView(t.NamedTuple):
    index: int
    anchor: str
    name: str
    stats: t.List[Cell]  # the figures mixmesh stats shows, for the overview table
    runs: int
    failed_count: int
    share: t.Optional[t.Tuple[float, float, float]]  # SQL, Python and waiting shares of the time
    versions: t.List[VersionView]
    changed: bool  # more than one version among the runs
    latest_status: str
    shown: str  # which runs the charts show
    charts: t.List["ChartView"]
    failed: t.List[RunView]  # latest first
    table: t.List[RunView]  # latest first
    functions: t.List[t.List[str]]


def _models(model_runs: "pd.DataFrame", function_runs: "pd.DataFrame") -> t.List[_Model]:
    """One entry per model, the model with the most time spent first."""
    import pandas as pd

    runs = model_runs.sort_values("started_at", kind="stable")
    if function_runs is None or len(function_runs) == 0:
        functions = pd.DataFrame(columns=["run_id", "model", "function", "started_at"])
    else:
        started = runs[["run_id", "started_at"]]
        functions = function_runs.merge(started, on="run_id", how="inner").sort_values("started_at", kind="stable")
    grouped = [_Model(str(name), group, functions[functions["model"] == name]) for name, group in runs.groupby("model")]
    return sorted(grouped, key=lambda m: (-sum(_finite(v) or 0.0 for v in m.runs["total_s"]), m.name))


def _with_new_columns(model_runs: "pd.DataFrame") -> "pd.DataFrame":
    """Frames built before a column existed (tests, callers' own frames) read it as missing."""
    missing = [c for c in ("environment", "wait_s", "fingerprint", "snapshot_version", "added_rss_mb") if c not in model_runs]
    return model_runs.assign(**{column: None for column in missing}) if missing else model_runs


def _model_view(
    index: int, model: _Model, stats: "ModelStats", versions: t.Sequence["VersionStats"], max_runs: int
) -> ModelView:
    anchor = f"model-{index}"
    runs = model.runs.tail(max_runs)
    everything = len(runs) == len(model.runs)
    shown = f"all {_plural(len(runs), 'run')}" if everything else f"the last {len(runs)} of {len(model.runs)} runs"
    table = _run_views(model.name, anchor, model.runs)
    points = _run_points(model.name, runs)
    figures = [_run_figure(f"chart-{index}", spec, model.name, shown, runs, points) for spec in _run_charts()]
    latest = _latest_per_function(model.functions)
    if latest:
        figures.append(_function_figure(f"chart-{index}", model.name, latest))
    return ModelView(
        index=index, anchor=anchor, name=model.name, stats=_overview_cells(stats), runs=stats.runs,
        failed_count=stats.failed, share=_shares(stats), versions=[_version_view(v) for v in reversed(versions)],
        changed=len(versions) > 1, latest_status=str(model.runs["status"].iloc[-1]), shown=shown,
        charts=figures, failed=[run for run in table if run.status != "ok"], table=table,
        functions=_function_rows(model.functions),
    )


def _overview_cells(stats: "ModelStats") -> t.List[Cell]:
    return [
        Cell("mean_total_s", stats.mean_s, _fmt(stats.mean_s, _seconds)),
        Cell("p95_total_s", stats.p95_s, _fmt(stats.p95_s, _seconds)),
        Cell("rows_per_s", stats.rows_per_s, _fmt(stats.rows_per_s, _rate)),
        Cell("added_rss_mb", stats.added_memory_mb, _fmt(stats.added_memory_mb, _mib)),
        Cell("peak_rss_mb", stats.peak_memory_mb, _fmt(stats.peak_memory_mb, _mib)),
        *(Cell(name, getattr(stats, name), f"{int(getattr(stats, name)):,}") for name in ("retries", "fallbacks", "errors")),
    ]


def _shares(stats: "ModelStats") -> t.Optional[t.Tuple[float, float, float]]:
    if stats.python_share is None:
        return None
    sql = stats.sql_share or 0.0
    return sql, stats.python_share, max(1 - sql - stats.python_share, 0.0)


def _version_view(version: "VersionStats") -> VersionView:
    first, last = _when(version.first_run_at), _when(version.last_run_at)
    return VersionView(
        version=version.version or "not recorded",
        snapshot_version=version.snapshot_version or "",
        changed=version.version_changed,
        environments=", ".join(version.environments),
        runs=version.runs,
        failed=version.failed,
        period=first if first == last else f"{first} to {last}",
        cells=[
            Cell("mean_total_s", version.mean_s, _fmt(version.mean_s, _seconds)),
            Cell("p95_total_s", version.p95_s, _fmt(version.p95_s, _seconds)),
            Cell("added_rss_mb", version.added_memory_mb, _fmt(version.added_memory_mb, _mib)),
            Cell("peak_rss_mb", version.peak_memory_mb, _fmt(version.peak_memory_mb, _mib)),
        ],
    )


def _version_key(value: t.Any) -> str:
    return value if isinstance(value, str) else ""


def _run_views(model: str, anchor: str, runs: "pd.DataFrame") -> t.List[RunView]:
    """Every run of the model, latest first, each knowing whether it started a new version."""
    views, previous = [], None
    for run in runs.itertuples(index=False):
        key = _version_key(run.fingerprint)
        figures = (
            ("total_s", run.total_s, _seconds), ("sql_s", run.sql_s, _seconds), ("python_s", run.python_s, _seconds),
            ("wait_s", run.wait_s, _seconds), ("rows_out", run.rows_out, _count), ("rows_per_s", run.rows_per_s, _rate),
            ("added_rss_mb", run.added_rss_mb, _mib), ("peak_rss_mb", run.peak_rss_mb, _mib),
        )
        views.append(RunView(
            run_id=str(run.run_id), model=model, anchor=anchor, started=_when(run.started_at),
            command=str(run.command or ""), environment=_text(run.environment), version=key or "not recorded",
            version_changed=previous is not None and key != previous, interval=_interval(run.interval_start, run.interval_end),
            status=str(run.status), error=_text(run.error),
            cells=[Cell(name, _finite(value), _fmt(value, fmt)) for name, value, fmt in figures],
        ))
        previous = key
    return views[::-1]


def _facts(model_runs: "pd.DataFrame", scope: t.Optional[str], generated: dt.datetime) -> t.List[str]:
    facts = []
    if model_runs is not None and len(model_runs):
        count, models = len(model_runs), model_runs["model"].nunique()
        first, last = _when(model_runs["started_at"].min()), _when(model_runs["ended_at"].max())
        facts.append(f"{_plural(count, 'run')} of {_plural(models, 'model')}, {first} to {last} UTC")
        projects = sorted({str(p) for p in model_runs.get("project", []) if isinstance(p, str) and p})
        if len(projects) == 1:
            facts.append(f"project {projects[0]}")
    if scope:
        facts.append(scope)
    facts.append(f"generated {_when(generated)} UTC")
    return facts


# -- charts ------------------------------------------------------------------------------------


class _RunChart(t.NamedTuple):
    """One chart over a model's runs: the columns it draws, and how."""

    kind: str  # the marks' data-chart, and the chart's id suffix
    caption: str
    measures: str  # what it shows, for its description
    series: t.Tuple[charts.Series, ...]
    columns: t.Tuple[str, ...]  # the model_runs columns, one per series
    fmt: charts.Format
    bars: bool  # bars (stacked when several series), else a line


def _run_charts() -> t.Tuple[_RunChart, ...]:
    return (
        _RunChart("time", "Time per run, SQL, Python and waiting stacked", "SQL, Python and retry backoff seconds",
                  (SQL, PYTHON, WAIT), ("sql_s", "python_s", "wait_s"), _seconds, True),
        _RunChart("rows_per_s", "Rows per second", "Rows written per second", (ROWS_PER_S,), ("rows_per_s",), _rate,
                  False),
        _RunChart("memory_added", "Memory the evaluation added", "Resident memory added during the evaluation (MiB)",
                  (ADDED,), ("added_rss_mb",), _mib, True),
        _RunChart("memory", "Peak memory of the whole process", "Peak resident memory of the process (MiB)", (MEMORY,),
                  ("peak_rss_mb",), _mib, False),
    )


def _run_points(model: str, runs: "pd.DataFrame") -> t.List[charts.Point]:
    """Each run's place on the x axis: its label, data attributes, and the notes behind it
    (failed, first of a new version); its values come per chart."""
    points, previous = [], None
    for run in runs.itertuples(index=False):
        key = _version_key(run.fingerprint)
        failed = run.status != "ok"
        label = _when(run.started_at) + (" (failed)" if failed else "")
        data = {"model": model, "run": str(run.run_id), "status": str(run.status), "version": key}
        changed = previous is not None and key != previous
        points.append(charts.Point((), label, data, failed, (key or "not recorded") if changed else None))
        previous = key
    return points


def _run_figure(
    prefix: str, spec: _RunChart, model: str, shown: str, runs: "pd.DataFrame", labels: t.Sequence[charts.Point]
) -> "ChartView":
    description = f"{spec.measures} of {shown} of {model}, oldest first."
    chart = charts.Chart(f"{prefix}-{spec.kind}", spec.caption, description, spec.kind)
    # A zero (no retry waited) draws no mark, like a missing value.
    columns = [[_finite(value) or None for value in runs[column]] if column == "wait_s" else
               [_finite(value) for value in runs[column]] for column in spec.columns]
    points = [dataclasses.replace(p, values=tuple(values)) for p, values in zip(labels, zip(*columns))]
    if spec.bars and not any(value is not None for p in points for value in p.values):
        svg = charts.line(chart, spec.series[0], points, spec.fmt)  # draws "not recorded"
    elif spec.bars:
        svg = charts.stacked_bars(chart, spec.series, points, spec.fmt)
    else:
        svg = charts.line(chart, spec.series[0], points, spec.fmt)
    return _figure(svg, spec.caption, spec.series if len(spec.series) > 1 else ())


def _latest_per_function(functions: "pd.DataFrame") -> t.List[t.Any]:
    """Each function's row from the latest run that measured its p95, in name order."""
    if len(functions) == 0:
        return []
    measured = functions[functions["p95_batch_s"].map(lambda v: _finite(v) is not None)]
    return [group.iloc[-1] for _, group in sorted(measured.groupby("function"), key=lambda item: str(item[0]))]


def _function_figure(prefix: str, model: str, latest: t.Sequence[t.Any]) -> "ChartView":
    points = []
    for row in latest:
        name, data = str(row["function"]), {"model": model, "function": str(row["function"]), "run": str(row["run_id"])}
        points.append(charts.Point((_finite(row["p95_batch_s"]),), name, data))
    caption = "p95 batch time per function (latest run)"
    description = (
        f"95th percentile time of one call or batch of each function of {model}, in the latest run that called it."
    )
    chart = charts.Chart(f"{prefix}-functions", caption, description, "function_p95")
    return _figure(charts.horizontal_bars(chart, P95, points, _seconds), caption)


def _figure(svg: str, caption: str, legend: t.Sequence[charts.Series] = ()) -> "ChartView":
    """A chart with its caption; the SVG comes from ``charts``, which escapes every text it writes."""
    return ChartView(Markup(svg), caption, list(legend))


def _function_rows(functions: "pd.DataFrame") -> t.List[t.List[str]]:
    """Per function: totals over the report's runs; p50, p95 and list length from the latest run."""
    rows = []
    for name, group in sorted(functions.groupby("function"), key=lambda item: str(item[0])):
        last = group.iloc[-1]
        rows.append([
            str(name), str(last["mode"]), _count(len(group)), _count(sum(_values(group["calls"]))),
            _count(sum(_values(group["rows"]))), _seconds(sum(_values(group["total_s"]))),
            _fmt(last["p50_batch_s"], _seconds), _fmt(last["p95_batch_s"], _seconds),
            _count(sum(_values(group["errors"]))), _fmt(last.get("mean_list_length"), lambda v: f"{v:,.1f}"),
            _cache_figure(group),
        ])
    return rows


def _cache_figure(group: "pd.DataFrame") -> str:
    """A cached function's rows read from the result cache and calls made, over the runs."""
    if "cache_hits" not in group or not group["cache_hits"].notna().any():
        return ""
    return f"{_count(sum(_values(group['cache_hits'])))} / {_count(sum(_values(group['cache_misses'])))}"


# -- scope, numbers and text -------------------------------------------------------------------


def _scope(model: t.Optional[str], days: t.Optional[float]) -> t.Optional[str]:
    period = ("last day" if days == 1 else f"last {days:g} days") if days is not None else None
    parts = [part for part in (f"model {model}" if model else None, period) if part]
    return ", ".join(parts) or None


def _finite(value: t.Any) -> t.Optional[float]:
    """A float, or None for a missing, NaN or infinite figure (nothing to chart)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _values(column: t.Iterable[t.Any]) -> t.List[float]:
    return [v for v in map(_finite, column) if v is not None]


def _fmt(value: t.Any, fmt: t.Callable[[float], str]) -> str:
    number = _finite(value)
    return "–" if number is None else fmt(number)


def _text(value: t.Any) -> str:
    return value if isinstance(value, str) else ""


def _seconds(value: float) -> str:
    if value == 0:
        return "0 s"
    if value < 1e-3:
        return f"{value * 1e6:.3g} µs"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    if value < 60:
        return f"{value:.3g} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _rate(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _mib(value: float) -> str:
    return f"{value / 1024:.3g} GiB" if value >= 1024 else f"{value:.3g} MiB"


def _count(value: float) -> str:
    return f"{int(value):,}"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _when(value: t.Any) -> str:
    import pandas as pd

    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.strftime("%Y-%m-%d %H:%M")


def _interval(start: t.Any, end: t.Any) -> str:
    """The interval a run built, by day when it starts and ends at midnight."""
    import pandas as pd

    if pd.isna(start) or pd.isna(end):
        return ""
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    if first == first.normalize() and last == last.normalize():
        return f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
    return f"{_when(first)} to {_when(last)}"
