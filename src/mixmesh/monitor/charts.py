"""Inline SVG charts for the performance report: no script, no network, numbers in the DOM.

Each mark (a bar segment, a point) is an element of class ``mark`` that carries its figure
in ``data-value`` (the exact float, as Python's ``repr`` writes it, which a browser's
``parseFloat`` reads back bit for bit) and in a ``<title>`` tooltip, so a reader hovering
and a test reading the DOM see the store's numbers. Colours and fonts come from the page's
CSS classes, so the charts follow its light or dark scheme.

Charts over runs also mark, behind the data, each failed run (a red column, and a cross under
the axis) and each change of model version (a dashed line where the new version's first run
starts, labelled with the version).
"""

from __future__ import annotations

import dataclasses
import html
import math
import typing as t

WIDTH = 480
HEIGHT = 220
TOP, RIGHT, BOTTOM, LEFT = 12, 14, 44, 60
MAX_BAR_WIDTH = 40.0
ROW_HEIGHT = 26  # one bar of a horizontal bar chart
LABEL_WIDTH = 170  # room for the names beside horizontal bars
LABEL_CHARS = 26  # what fits in LABEL_WIDTH at the chart's font size
VERSION_CHARS = 20  # a version's label beside its line ("version" and a 10-digit fingerprint)

Format = t.Callable[[float], str]


@dataclasses.dataclass(frozen=True)
class Series:
    """One quantity drawn in a chart: its key (CSS class and ``data-series``) and its name."""

    key: str
    label: str


@dataclasses.dataclass(frozen=True)
class Point:
    """One position on the x axis (a run): a value per series, a tooltip, ``data-*`` attributes."""

    values: t.Tuple[t.Optional[float], ...]
    label: str
    data: t.Mapping[str, str] = dataclasses.field(default_factory=dict)
    failed: bool = False  # a failed run: marked behind the data
    new_version: t.Optional[str] = None  # the model version this run starts, when it changed here


@dataclasses.dataclass(frozen=True)
class Chart:
    """What every chart has: an id (unique in the page), a title and a description for readers."""

    chart_id: str
    title: str
    description: str
    kind: str  # data-chart: what the marks measure (time, rows_per_s, memory, function_p95)


def stacked_bars(chart: Chart, series: t.Sequence[Series], points: t.Sequence[Point], fmt: Format) -> str:
    """One bar per point, its series stacked bottom up."""
    top = max((sum(v or 0.0 for v in p.values) for p in points), default=0.0)
    ticks = nice_ticks(top)
    y = _scale(ticks[-1], HEIGHT - BOTTOM, TOP)
    band = (WIDTH - LEFT - RIGHT) / max(len(points), 1)
    width = min(band * 0.72, MAX_BAR_WIDTH)
    marks = []
    for index, point in enumerate(points):
        x = LEFT + band * index + (band - width) / 2
        base = 0.0
        for item, value in zip(series, point.values):
            if value is None:
                continue
            tooltip = f"{point.label}: {item.label} {fmt(value)}"
            box = (x, y(base + value), width, y(base) - y(base + value))
            marks.append(_mark("rect", chart.kind, item.key, value, point.data, tooltip, box))
            base += value
    return _svg(chart, HEIGHT, _y_axis(ticks, y, fmt) + _run_notes(points, band) + _x_axis(points) + "".join(marks))


def line(chart: Chart, series: Series, points: t.Sequence[Point], fmt: Format) -> str:
    """A line through the points' first value, broken where a value is missing, with dots."""
    top = max((p.values[0] for p in points if p.values[0] is not None), default=0.0)
    ticks = nice_ticks(top)
    y = _scale(ticks[-1], HEIGHT - BOTTOM, TOP)
    band = (WIDTH - LEFT - RIGHT) / max(len(points), 1)
    path, marks, pen_down = [], [], False
    for index, point in enumerate(points):
        value = point.values[0]
        if value is None:
            pen_down = False
            continue
        cx, cy = LEFT + band * (index + 0.5), y(value)
        path.append(f"{'L' if pen_down else 'M'}{cx:.1f},{cy:.1f}")
        pen_down = True
        tooltip = f"{point.label}: {series.label} {fmt(value)}"
        marks.append(_mark("circle", chart.kind, series.key, value, point.data, tooltip, (cx, cy)))
    if not path:
        return _svg(chart, HEIGHT, _x_axis(points) + _nothing())
    drawn = f'<path class="line {series.key}" d="{" ".join(path)}"/>'
    notes = _run_notes(points, band)
    return _svg(chart, HEIGHT, _y_axis(ticks, y, fmt) + notes + _x_axis(points) + drawn + "".join(marks))


def horizontal_bars(chart: Chart, series: Series, points: t.Sequence[Point], fmt: Format) -> str:
    """One labelled bar per point (its label is the name shown), longest value widest."""
    height = TOP + ROW_HEIGHT * len(points) + 28
    ticks = nice_ticks(max((p.values[0] or 0.0 for p in points), default=0.0))
    plot_right = WIDTH - RIGHT - 64  # room for the value written after the bar
    x = _scale(ticks[-1], LABEL_WIDTH + 8, plot_right)
    rows = []
    for index, point in enumerate(points):
        value, top = point.values[0] or 0.0, TOP + ROW_HEIGHT * index
        box = (x(0), top + 5, x(value) - x(0), ROW_HEIGHT - 10)
        tooltip = f"{point.label}: {series.label} {fmt(value)}"
        rows.append(
            f'<text class="label" x="{x(0) - 8:.1f}" y="{top + ROW_HEIGHT / 2:.1f}" text-anchor="end" '
            f'dominant-baseline="middle">{_text(_shorten(point.label))}<title>{_text(point.label)}</title></text>'
            + _mark("rect", chart.kind, series.key, value, point.data, tooltip, box)
            + f'<text class="value" x="{x(value) + 6:.1f}" y="{top + ROW_HEIGHT / 2:.1f}" '
            f'dominant-baseline="middle">{_text(fmt(value))}</text>'
        )
    axis_y = TOP + ROW_HEIGHT * len(points)
    axis = "".join(
        f'<line class="grid" x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{TOP}" y2="{axis_y}"/>'
        f'<text class="tick" x="{x(tick):.1f}" y="{axis_y + 16}" text-anchor="middle">{_text(fmt(tick))}</text>'
        for tick in ticks
    )
    return _svg(chart, height, axis + "".join(rows))


def nice_ticks(top: float, count: int = 4) -> t.List[float]:
    """0 and round steps (1, 2, 2.5 or 5 times a power of ten) up to at least ``top``."""
    if not (top > 0 and math.isfinite(top)):
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    steps = math.ceil(top / step - 1e-9)
    return [round(step * i, 12) for i in range(steps + 1)]


def _nothing() -> str:
    middle = (TOP + HEIGHT - BOTTOM) / 2
    return f'<text class="none" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{middle}" text-anchor="middle">not recorded</text>'


def _run_notes(points: t.Sequence[Point], band: float) -> str:
    """Behind the data: a red column under each failed run, a dashed line where a version starts."""
    notes = []
    for index, point in enumerate(points):
        left = LEFT + band * index
        if point.failed:
            notes.append(
                f'<rect class="failed-run" x="{left:.2f}" y="{TOP}" width="{band:.2f}" height="{HEIGHT - BOTTOM - TOP}">'
                f"<title>{_text(point.label)}</title></rect>"
                f'<text class="failed-flag" x="{left + band / 2:.2f}" y="{HEIGHT - BOTTOM + 11}" '
                'text-anchor="middle" aria-hidden="true">✕</text>'
            )
        if point.new_version is not None and index > 0:
            label = f"version {point.new_version}"
            notes.append(
                f'<g class="version-change" data-version="{_text(point.new_version)}"><title>{_text(label)} from '
                f'{_text(point.label)}</title><line x1="{left:.2f}" x2="{left:.2f}" y1="{TOP - 4}" y2="{HEIGHT - BOTTOM}"/>'
                f'<text x="{left + 3:.2f}" y="{TOP + 6}">{_text(_shorten(label, VERSION_CHARS))}</text></g>'
            )
    return "".join(notes)


def _scale(top: float, low: float, high: float) -> t.Callable[[float], float]:
    return lambda value: low + (high - low) * (value / top if top else 0.0)


def _mark(
    shape: str, kind: str, key: str, value: float, data: t.Mapping[str, str], tooltip: str, where: t.Sequence[float]
) -> str:
    geometry = (
        'x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}"'.format(*where)
        if shape == "rect"
        else 'cx="{:.2f}" cy="{:.2f}" r="3.5"'.format(*where)
    )
    attributes = "".join(f' data-{name}="{_text(str(text))}"' for name, text in data.items())
    return (
        f'<{shape} class="mark {key}" {geometry} data-chart="{kind}" data-series="{key}" '
        f'data-value="{float(value)!r}"{attributes}><title>{_text(tooltip)}</title></{shape}>'
    )


def _y_axis(ticks: t.Sequence[float], y: t.Callable[[float], float], fmt: Format) -> str:
    return "".join(
        f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
        f'<text class="tick" x="{LEFT - 6}" y="{y(tick):.1f}" text-anchor="end" dominant-baseline="middle">'
        f"{_text(fmt(tick))}</text>"
        for tick in ticks
    )


def _x_axis(points: t.Sequence[Point]) -> str:
    """The first and last runs' labels under the axis; the marks' tooltips name the others."""
    base = HEIGHT - BOTTOM
    axis = f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}"/>'
    if not points:
        return axis
    first = f'<text class="tick" x="{LEFT}" y="{base + 16}">{_text(points[0].label)}</text>'
    last = (
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{base + 32}" text-anchor="end">{_text(points[-1].label)}</text>'
        if len(points) > 1
        else ""
    )
    return axis + first + last


def _svg(chart: Chart, height: int, body: str) -> str:
    title, desc = f"{chart.chart_id}-title", f"{chart.chart_id}-desc"
    return (
        f'<svg class="chart" id="{chart.chart_id}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{title} {desc}" data-chart="{chart.kind}">'
        f'<title id="{title}">{_text(chart.title)}</title><desc id="{desc}">{_text(chart.description)}</desc>'
        f"{body}</svg>"
    )


def _shorten(name: str, chars: int = LABEL_CHARS) -> str:
    return name if len(name) <= chars else name[: chars - 1] + "…"


def _text(value: str) -> str:
    return html.escape(value, quote=True)
