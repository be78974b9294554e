"""The performance report: one self-contained HTML page with charts, viewable offline.

``render_report`` turns the store's two tables (``MetricsStore.model_runs`` and
``function_runs``) and a list of recommendations into the page; ``write_report`` reads a
store and writes it. The page loads nothing: its CSS is inline, its charts are inline SVG
drawn here (``charts``), and it has no script. Every charted figure is in the DOM as a
``data-value`` on its mark, so what a reader sees can be checked against the store.

Longer than 450 lines because it renders one self-contained HTML page: its template, styles
and sections in one place.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import typing as t
from pathlib import Path

from mixmesh.core.version import __version__
from mixmesh.monitor import charts

if t.TYPE_CHECKING:
    from mixmesh.monitor.stats import ModelStats
    import pandas as pd

    from mixmesh.monitor.store import MetricsStore

MAX_RUNS_CHARTED = 50  # per model: the latest ones, so a long history stays readable

SQL = charts.Series("sql", "SQL (engine)")
PYTHON = charts.Series("python", "Python")
WAIT = charts.Series("wait", "waiting (retry backoff)")
ROWS_PER_S = charts.Series("rows-per-s", "rows/s")
MEMORY = charts.Series("memory", "peak memory")
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
    generated = generated_at or dt.datetime.now(dt.timezone.utc)
    if model_runs is None or len(model_runs) == 0:
        body = _empty(scope)
    else:
        if figures is None:
            from mixmesh.monitor.stats import summarize_frames

            figures = summarize_frames(model_runs, function_runs).models
        models = _models(model_runs, function_runs)
        body = _overview(models, {stats.model: stats for stats in figures}) + _recommendation_list(recommendations)
        body += "".join(_model_section(index, m, max_runs) for index, m in enumerate(models, 1))
    header = _header(model_runs, scope, generated)
    return _PAGE.format(title="mixmesh performance report", css=_CSS, header=header, body=body, version=__version__)


class _Model(t.NamedTuple):
    name: str
    runs: "pd.DataFrame"  # its model_runs rows, oldest first
    functions: "pd.DataFrame"  # its function_runs rows with the run's started_at, oldest first


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


# -- page parts ----------------------------------------------------------------------------


def _header(model_runs: "pd.DataFrame", scope: t.Optional[str], generated: dt.datetime) -> str:
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
    meta = " · ".join(_e(fact) for fact in facts)
    return f'<h1>mixmesh performance report</h1><p class="meta">{meta}</p>'


def _empty(scope: t.Optional[str]) -> str:
    what = f"No runs recorded yet ({_e(scope)})." if scope else "No runs recorded yet."
    return (
        f'<section class="empty" role="status"><h2>{what}</h2>'
        "<p>mixmesh records a run each time SQLMesh evaluates a model of a mixmesh project "
        "(<code>sqlmesh plan</code>, <code>sqlmesh run</code>). Build the project, then write this report again.</p>"
        "</section>"
    )


def _overview(models: t.Sequence[_Model], figures: t.Mapping[str, "ModelStats"]) -> str:
    caption = (
        "The figures mixmesh stats shows, the model with the most time spent first: times over "
        "successful runs, rows/s as rows written over time, memory the highest peak."
    )
    headers = ("Model", "Runs", "Mean time", "p95 time", "SQL / Python", "Rows/s", "Peak memory", "Retries",
               "Fallbacks", "Errors")
    rows = [_overview_row(index, model, figures[model.name]) for index, model in enumerate(models, 1)]
    return (
        '<section aria-labelledby="figures"><h2 id="figures">Figures per model</h2>'
        f'{_table(headers, rows, caption, "figures")}</section>'
    )


def _overview_row(index: int, model: _Model, stats: "ModelStats") -> str:
    share = stats.python_share
    failed = f' <span class="bad">({stats.failed} failed)</span>' if stats.failed else ""
    cells = [
        f'<th scope=row><a href="#model-{index}">{_e(model.name)}</a></th>',
        _cell("runs", stats.runs, f"{stats.runs:,}{failed}"),
        _cell("mean_total_s", stats.mean_s, _seconds),
        _cell("p95_total_s", stats.p95_s, _seconds),
        _cell("python_share", share, _share_bar(share, stats.sql_share or 0.0) if share is not None else "–"),
        _cell("rows_per_s", stats.rows_per_s, _rate),
        _cell("peak_rss_mb", stats.peak_memory_mb, _mib),
    ]
    for column in ("retries", "fallbacks", "errors"):
        cells.append(_cell(column, getattr(stats, column), lambda v: f"{int(v):,}"))
    return f"<tr>{''.join(cells)}</tr>"


def _recommendation_list(recommendations: t.Optional[t.Sequence[str]]) -> str:
    if recommendations is None:
        content = '<p class="note">Recommendations were not computed for this report.</p>'
    elif not recommendations:
        content = '<p class="note">None: nothing in these runs calls for a change.</p>'
    else:
        content = "<ul class=recommendations>" + "".join(f"<li>{_e(str(r))}</li>" for r in recommendations) + "</ul>"
    heading = '<h2 id="recommendations">Recommendations</h2>'
    return f'<section aria-labelledby="recommendations">{heading}{content}</section>'


def _model_section(index: int, model: _Model, max_runs: int) -> str:
    runs = model.runs.tail(max_runs)
    everything = len(runs) == len(model.runs)
    shown = f"all {_plural(len(runs), 'run')}" if everything else f"the last {len(runs)} of {len(model.runs)} runs"
    labels = [_run_point(model.name, run) for run in runs.itertuples(index=False)]
    figures = [_run_figure(f"chart-{index}", spec, model.name, shown, runs, labels) for spec in _run_charts()]
    latest = _latest_per_function(model.functions)
    if latest:
        figures.append(_function_figure(f"chart-{index}", model.name, latest))
    return (
        f'<section class="model" id="model-{index}" aria-labelledby="model-{index}-name">'
        f'<h2 id="model-{index}-name" class="model-name">{_e(model.name)}</h2>'
        f'<p class="meta">Charts show {_e(shown)}, oldest on the left; hover a bar or a point for its figures.</p>'
        f'<div class="grid">{"".join(figures)}</div>'
        f"{_runs_table(model.name, runs)}{_functions_table(model.functions)}</section>"
    )


class _RunChart(t.NamedTuple):
    """One chart over a model's runs: the columns it draws, and how."""

    kind: str  # the marks' data-chart, and the chart's id suffix
    caption: str
    measures: str  # what it shows, for its description
    series: t.Tuple[charts.Series, ...]
    columns: t.Tuple[str, ...]  # the model_runs columns, one per series
    fmt: charts.Format


def _run_charts() -> t.Tuple[_RunChart, ...]:
    return (
        _RunChart("time", "Time per run, SQL, Python and waiting stacked", "SQL, Python and retry backoff seconds",
                  (SQL, PYTHON, WAIT), ("sql_s", "python_s", "wait_s"), _seconds),
        _RunChart("rows_per_s", "Rows per second", "Rows written per second", (ROWS_PER_S,), ("rows_per_s",), _rate),
        _RunChart("memory", "Peak memory of the process", "Peak resident memory (MiB)", (MEMORY,),
                  ("peak_rss_mb",), _mib),
    )


def _run_figure(
    prefix: str, spec: _RunChart, model: str, shown: str, runs: "pd.DataFrame", labels: t.Sequence[charts.Point]
) -> str:
    description = f"{spec.measures} of {shown} of {model}, oldest first."
    chart = charts.Chart(f"{prefix}-{spec.kind}", spec.caption, description, spec.kind)
    # A zero (no retry waited) draws no mark, like a missing value.
    columns = [[_finite(value) or None for value in runs[column]] if column == "wait_s" else
               [_finite(value) for value in runs[column]] for column in spec.columns]
    points = [charts.Point(tuple(values), p.label, p.data) for p, values in zip(labels, zip(*columns))]
    if len(spec.series) > 1:
        return _figure(charts.stacked_bars(chart, spec.series, points, spec.fmt), spec.caption, _legend(spec.series))
    return _figure(charts.line(chart, spec.series[0], points, spec.fmt), spec.caption)


def _run_point(model: str, run: t.Any) -> charts.Point:
    """A run's place on the x axis: its label and data attributes (its values come per chart)."""
    label = _when(run.started_at) + (" (failed)" if run.status != "ok" else "")
    return charts.Point((), label, {"model": model, "run": str(run.run_id), "status": str(run.status)})


def _latest_per_function(functions: "pd.DataFrame") -> t.List[t.Any]:
    """Each function's row from the latest run that measured its p95, in name order."""
    if len(functions) == 0:
        return []
    measured = functions[functions["p95_batch_s"].map(lambda v: _finite(v) is not None)]
    return [group.iloc[-1] for _, group in sorted(measured.groupby("function"), key=lambda item: str(item[0]))]


def _function_figure(prefix: str, model: str, latest: t.Sequence[t.Any]) -> str:
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


def _figure(svg: str, caption: str, legend: str = "") -> str:
    return f"<figure><figcaption>{_e(caption)}{legend}</figcaption>{svg}</figure>"


def _legend(series: t.Sequence[charts.Series]) -> str:
    items = "".join(f'<li><span class="swatch {s.key}" aria-hidden="true"></span>{_e(s.label)}</li>' for s in series)
    return f'<ul class="legend">{items}</ul>'


def _runs_table(model: str, runs: "pd.DataFrame") -> str:
    headers = ("Started (UTC)", "Command", "Status", "Total", "SQL", "Python", "Wait", "Rows out", "Rows/s",
               "Peak memory")
    rows = []
    for run in runs.iloc[::-1].itertuples(index=False):
        status = _e(run.status) + (f": {_e(run.error)}" if isinstance(run.error, str) and run.error else "")
        figures = (
            (run.total_s, _seconds), (run.sql_s, _seconds), (run.python_s, _seconds), (run.wait_s, _seconds),
            (run.rows_out, _count), (run.rows_per_s, _rate), (run.peak_rss_mb, _mib),
        )
        rows.append(
            f"<tr><td>{_e(_when(run.started_at))}</td><td>{_e(str(run.command or ''))}</td><td>{status}</td>"
            + "".join(f"<td class=num>{_fmt(value, fmt)}</td>" for value, fmt in figures)
            + "</tr>"
        )
    summary = f"<summary>The charted runs of {_e(model)}, as a table</summary>"
    return f"<details>{summary}{_table(headers, rows)}</details>"


def _functions_table(functions: "pd.DataFrame") -> str:
    if len(functions) == 0:
        return ""
    caption = (
        "Python functions this model called: totals over the report's runs; "
        "p50, p95 and list length from the latest run."
    )
    headers = ("Function", "Mode", "Runs", "Calls", "Rows", "Time", "p50 batch", "p95 batch", "Errors",
               "Mean list length", "Cache hits / misses")
    rows = []
    for name, group in sorted(functions.groupby("function"), key=lambda item: str(item[0])):
        last = group.iloc[-1]
        figures = (
            _count(len(group)), _count(sum(_values(group["calls"]))), _count(sum(_values(group["rows"]))),
            _e(_seconds(sum(_values(group["total_s"])))), _fmt(last["p50_batch_s"], _seconds),
            _fmt(last["p95_batch_s"], _seconds), _count(sum(_values(group["errors"]))),
            _fmt(last.get("mean_list_length"), lambda v: f"{v:,.1f}"), _cache_figure(group),
        )
        rows.append(
            f"<tr><th scope=row>{_e(str(name))}</th><td>{_e(str(last['mode']))}</td>"
            + "".join(f"<td class=num>{figure}</td>" for figure in figures)
            + "</tr>"
        )
    return _table(headers, rows, caption, "functions")


def _cache_figure(group: "pd.DataFrame") -> str:
    """A cached function's rows read from the result cache and calls made, over the runs."""
    if "cache_hits" not in group or not group["cache_hits"].notna().any():
        return ""
    return f"{_count(sum(_values(group['cache_hits'])))} / {_count(sum(_values(group['cache_misses'])))}"


def _table(headers: t.Sequence[str], rows: t.Sequence[str], caption: str = "", css_class: str = "") -> str:
    """A table that scrolls sideways on a narrow screen; ``rows`` are ``<tr>`` elements."""
    head = "".join(f"<th scope=col>{_e(header)}</th>" for header in headers)
    caption = f"<caption>{_e(caption)}</caption>" if caption else ""
    return (
        f'<div class="scroll"><table class="{css_class}">{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _cell(figure: str, value: t.Optional[float], shown: t.Union[str, t.Callable[[float], str]]) -> str:
    """A table cell with its figure in ``data-value``; ``shown`` is its HTML, or the format of the value."""
    text = shown if isinstance(shown, str) else _fmt(value, shown)
    data = f' data-value="{float(value)!r}"' if value is not None else ""
    return f'<td class=num data-figure="{figure}"{data}>{text}</td>'


def _share_bar(python_share: float, sql_share: float) -> str:
    """SQL and Python shares; the rest of the bar, if any, is a retry's backoff (waiting)."""
    sql_pct, python_pct = round(100 * sql_share), round(100 * python_share)
    waiting = 1 - python_share - sql_share
    note = f" ({round(100 * waiting)}% waiting)" if waiting >= 0.005 else ""
    return (
        f'<span class="share" aria-hidden="true"><span class="sql" style="width:{100 * sql_share:.1f}%"></span>'
        f'<span class="python" style="width:{100 * python_share:.1f}%"></span></span>{sql_pct}% / {python_pct}%{note}'
    )


# -- recommendations and scope -------------------------------------------------------------


def _scope(model: t.Optional[str], days: t.Optional[float]) -> t.Optional[str]:
    period = ("last day" if days == 1 else f"last {days:g} days") if days is not None else None
    parts = [part for part in (f"model {model}" if model else None, period) if part]
    return ", ".join(parts) or None


# -- numbers and text ----------------------------------------------------------------------


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
    return "–" if number is None else _e(fmt(number))


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


def _e(text: str) -> str:
    return html.escape(text, quote=True)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="mixmesh {version}">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header>{header}</header>
<main>{body}</main>
<footer><p>Written by mixmesh {version}. Self-contained: no scripts, nothing loaded from the network.</p></footer>
</body>
</html>
"""

_CSS = """
:root { --bg: #f7f7f5; --card: #ffffff; --ink: #1d1d1f; --muted: #5b5b60; --rule: #deded9; --grid: #ebebe7;
  --sql: #0072b2; --python: #d55e00; --wait: #8a8a8f; --rows-per-s: #007a5a; --memory: #7b3f99; --p95: #1b6f8c; --bad: #b3261e; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #151517; --card: #1f1f22; --ink: #ececee; --muted: #a6a6ad; --rule: #38383d; --grid: #2c2c30;
    --sql: #56b4e9; --python: #f08a4b; --wait: #9c9ca3; --rows-per-s: #3cc39a; --memory: #c58fe0; --p95: #5fb8d6; --bad: #ff8a80; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header, main, footer { max-width: 1180px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 28px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 0 0 8px; }
.meta, .note, footer, caption { color: var(--muted); }
.meta { margin: 0 0 12px; }
section { background: var(--card); border: 1px solid var(--rule); border-radius: 10px; padding: 18px 20px; margin: 18px 0; }
.model-name, th[scope=row] { overflow-wrap: anywhere; }
table.figures th[scope=row] { min-width: 12rem; }
.empty { text-align: center; padding: 48px 20px; }
.empty h2 { font-size: 1.4rem; }
/* Two charts a row on a wide screen: the SVG text scales with the chart, so keep charts wide. */
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 400px), 1fr)); gap: 18px 28px; }
figure { margin: 0; min-width: 0; }
figcaption { font-weight: 600; font-size: 0.95rem; margin-bottom: 4px; display: flex; flex-wrap: wrap; gap: 4px 14px; }
.legend { list-style: none; margin: 0; padding: 0; display: flex; gap: 12px; font-weight: 400; color: var(--muted); }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.swatch.sql, .share .sql { background: var(--sql); }
.swatch.python, .share .python { background: var(--python); }
.swatch.wait { background: var(--wait); }
svg.chart { width: 100%; height: auto; display: block; overflow: visible; }
svg .grid { stroke: var(--grid); stroke-width: 1; }
svg .axis { stroke: var(--muted); stroke-width: 1; }
svg text { fill: var(--muted); font-size: 11px; font-family: inherit; }
svg text.label { fill: var(--ink); }
svg .mark.sql { fill: var(--sql); }
svg .mark.python { fill: var(--python); }
svg .mark.wait { fill: var(--wait); }
svg rect.mark { stroke: var(--card); stroke-width: 0.5; }
svg .line { fill: none; stroke-width: 2; stroke-linejoin: round; }
svg .line.rows-per-s, svg circle.rows-per-s { stroke: var(--rows-per-s); }
svg .line.memory, svg circle.memory { stroke: var(--memory); }
svg circle.mark { fill: var(--card); stroke-width: 2; }
svg rect.mark.p95 { fill: var(--p95); }
svg .mark:hover { opacity: 0.75; }
svg rect.mark[data-status=failed] { stroke: var(--bad); stroke-width: 1.5; }
svg circle.mark[data-status=failed] { fill: var(--bad); }
svg text.none { font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
caption { text-align: left; padding-bottom: 6px; font-size: 0.85rem; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--rule); vertical-align: top; }
thead th { font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { overflow-x: auto; }
.share { display: inline-flex; width: 56px; height: 8px; border-radius: 4px; overflow: hidden; margin-right: 6px; background: var(--grid); }
.bad { color: var(--bad); }
table.functions { margin-top: 14px; }
.recommendations li { margin: 4px 0; }
details { margin-top: 14px; }
summary { cursor: pointer; color: var(--muted); }
a { color: var(--sql); }
footer { font-size: 0.85rem; padding-bottom: 28px; }
@media (max-width: 600px) {
  header, main, footer { padding: 0 10px; }
  section { padding: 14px 12px; }
  svg text { font-size: 14px; }
}
"""
