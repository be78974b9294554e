"""The performance report: the page's content on edge cases, and the page in headless Chromium."""

from __future__ import annotations

import datetime as dt
import html.parser
import io
import json
import math
import os
import re
import shutil
import typing as t
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mixmesh.cli import main
from mixmesh.monitor import charts
from mixmesh.monitor.records import FUNCTION_RUN_COLUMNS, MODEL_RUN_COLUMNS, FunctionRun, ModelRun
from mixmesh.monitor.report import MAX_RUNS_CHARTED, render_report, write_report
from mixmesh.monitor.store import MetricsStore

if t.TYPE_CHECKING:
    from tests.projects import Project

START = dt.datetime(2024, 5, 1, 6, 0)
FUNCTIONS = ("python_risk_score", "amount_zscore")


def model_run(model: str, index: int, **changes: t.Any) -> ModelRun:
    """A run whose figures follow from its index, so every run's numbers differ."""
    started = START + dt.timedelta(hours=index)
    sql_s, python_s = 0.5 + (index % 7) * 0.13, 0.2 + (index % 5) * 0.31
    fields = dict(
        run_id=f"{model}-{index}", model=model, command="run", environment="prod", engine="duckdb",
        interval_start=started, interval_end=started + dt.timedelta(hours=1), started_at=started,
        ended_at=started + dt.timedelta(seconds=sql_s + python_s), total_s=sql_s + python_s, python_s=python_s,
        sql_s=sql_s, rows_in=20_000 + index, rows_out=10_000 + index, rows_per_s=(10_000 + index) / (sql_s + python_s),
        peak_rss_mb=200.0 + index * 1.7, retries=index % 2,
    )
    return ModelRun(**{**fields, **changes})


def function_runs(run: ModelRun, index: int) -> t.List[FunctionRun]:
    return [
        FunctionRun(run.run_id, run.model, name, "row", 100, 10_000, run.python_s / 2, 0.001, 0.002 + 0.0007 * index + k * 0.004)
        for k, name in enumerate(FUNCTIONS)
    ]


def frames(runs: t.Sequence[ModelRun], functions: t.Sequence[FunctionRun] = ()) -> t.Tuple[pd.DataFrame, pd.DataFrame]:
    model_df = pd.DataFrame([vars(r) for r in runs], columns=list(MODEL_RUN_COLUMNS))
    function_df = pd.DataFrame([vars(f) for f in functions], columns=list(FUNCTION_RUN_COLUMNS))
    return model_df, function_df


class Marks(html.parser.HTMLParser):
    """The chart marks of a page (elements with data-chart and data-value), as attribute dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: t.List[t.Dict[str, str]] = []
        self.urls: t.List[str] = []
        self.tags: t.Set[str] = set()

    def handle_starttag(self, tag: str, attrs: t.List[t.Tuple[str, t.Optional[str]]]) -> None:
        found = {name: value or "" for name, value in attrs}
        self.tags.add(tag)
        if "data-value" in found and "data-chart" in found:
            self.marks.append(found)
        self.urls += [found[name] for name in ("src", "href") if name in found]


def parse(page: str) -> Marks:
    parser = Marks()
    parser.feed(page)
    return parser


# -- the page, without a browser ------------------------------------------------------------


def test_an_empty_store_gives_a_page_that_says_no_runs_were_recorded(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "none" / "metrics.duckdb")  # never written: no file
    page = write_report(store, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "No runs recorded yet" in page
    assert "<svg" not in page and not parse(page).marks
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_an_empty_filter_names_what_was_asked(tmp_path: Path) -> None:
    page = render_report(*frames([]), [], scope="model analytics.x, last 7 days")
    assert "No runs recorded yet (model analytics.x, last 7 days)." in page


def test_one_run_charts_each_of_its_figures_once() -> None:
    run = model_run("analytics.one", 3)
    page = render_report(*frames([run], function_runs(run, 3)), [])
    marks = parse(page).marks
    values = {(m["data-chart"], m["data-series"], m.get("data-function")): float(m["data-value"]) for m in marks}
    assert values == {
        ("time", "sql", None): run.sql_s,
        ("time", "python", None): run.python_s,
        ("rows_per_s", "rows-per-s", None): run.rows_per_s,
        ("memory", "memory", None): run.peak_rss_mb,
        ("function_p95", "p95", "python_risk_score"): function_runs(run, 3)[0].p95_batch_s,
        ("function_p95", "p95", "amount_zscore"): function_runs(run, 3)[1].p95_batch_s,
    }
    assert len(marks) == len(values)
    assert all(m["data-model"] == "analytics.one" and m["data-run"] == run.run_id for m in marks)
    assert "all 1 run" in page


def test_a_retry_backoff_is_charted_as_waiting_beside_sql_and_python() -> None:
    waited = model_run("analytics.flaky", 1, sql_s=0.2, python_s=0.6, wait_s=0.8, total_s=1.6)
    plain = model_run("analytics.flaky", 2, sql_s=0.2, python_s=0.6, wait_s=0.0, total_s=0.8)
    page = render_report(*frames([waited, plain]), [])
    time_marks = [(m["data-run"], m["data-series"], float(m["data-value"])) for m in parse(page).marks
                  if m["data-chart"] == "time"]
    assert sorted(time_marks) == sorted([
        (waited.run_id, "sql", 0.2), (waited.run_id, "python", 0.6), (waited.run_id, "wait", 0.8),
        (plain.run_id, "sql", 0.2), (plain.run_id, "python", 0.6),  # no backoff: no mark
    ])
    # SQL 0.4 s, Python 1.2 s and waiting 0.8 s of 2.4 s.
    assert "17% / 50% (33% waiting)</td>" in page


def test_many_runs_chart_the_latest_ones_per_model() -> None:
    runs = [model_run("analytics.busy", i) for i in range(120)] + [model_run("analytics.quiet", i) for i in range(3)]
    marks = parse(render_report(*frames(runs), [])).marks
    busy = [m["data-run"] for m in marks if m["data-chart"] == "time" and m["data-series"] == "sql" and m["data-model"] == "analytics.busy"]
    assert busy == [f"analytics.busy-{i}" for i in range(120 - MAX_RUNS_CHARTED, 120)]
    quiet = [m for m in marks if m["data-model"] == "analytics.quiet" and m["data-chart"] == "memory"]
    assert len(quiet) == 3


def test_the_figures_table_covers_every_run_and_puts_the_costliest_model_first() -> None:
    runs = [model_run("a.cheap", i, python_s=0.1, sql_s=0.1, total_s=0.2) for i in range(4)]
    runs += [model_run("b.dear", i, python_s=1.0, sql_s=3.0, total_s=4.0) for i in range(60)]
    page = render_report(*frames(runs), [])
    assert page.index("b.dear") < page.index("a.cheap")
    assert re.search(r'data-figure="python_share" data-value="0.25"', page)
    assert 'data-figure="runs" data-value="60.0"' in page


def test_the_figures_table_shows_what_mixmesh_stats_shows() -> None:
    from mixmesh.monitor.stats import summarize_frames

    runs = [model_run("a.m", i, total_s=1.0 + i, status="failed" if i == 9 else "ok") for i in range(10)]
    page = render_report(*frames(runs), [])
    stats = summarize_frames(*frames(runs)).models[0]
    for figure, value in (("mean_total_s", stats.mean_s), ("p95_total_s", stats.p95_s), ("rows_per_s", stats.rows_per_s)):
        assert f'data-figure="{figure}" data-value="{float(value)!r}"' in page, figure
    assert stats.mean_s == 5.0  # the failed run's 10 s is not among the times


def test_names_and_recommendations_are_escaped_everywhere() -> None:
    model = 'raw.<script>alert("m")</script>&amp;'
    function = '"><img src=x onerror=alert(1)>'
    run = model_run(model, 1, error="<b>boom</b>", status="failed")
    functions = [FunctionRun(run.run_id, model, function, "row", 1, 1, 0.1, 0.01, 0.02)]
    page = render_report(*frames([run], functions), ["Vectorize <script>x()</script> & batch"])
    parsed = parse(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert "&lt;script&gt;x()&lt;/script&gt; &amp; batch" in page
    assert {m["data-model"] for m in parsed.marks} == {model}  # attributes give the names back intact
    assert {m["data-function"] for m in parsed.marks if m["data-chart"] == "function_p95"} == {function}
    assert "&lt;b&gt;boom&lt;/b&gt;" in page


def test_a_long_name_is_shortened_in_the_chart_and_whole_in_its_tooltip() -> None:
    name = "a_function_whose_name_goes_on_and_on_and_on"
    run = model_run("m." + "x" * 200, 1)
    page = render_report(*frames([run], [FunctionRun(run.run_id, run.model, name, "row", 1, 1, 0.1, 0.01, 0.02)]), [])
    assert name[: charts.LABEL_CHARS - 1] + "…<title>" + name + "</title>" in page
    assert page.count("m." + "x" * 200) >= 3  # heading, table, tooltips: never cut


def test_missing_and_infinite_figures_are_left_out_of_the_charts() -> None:
    runs = [model_run("m.gaps", 0, rows_per_s=None), model_run("m.gaps", 1, rows_per_s=math.inf), model_run("m.gaps", 2)]
    marks = parse(render_report(*frames(runs), [])).marks
    assert [m["data-run"] for m in marks if m["data-chart"] == "rows_per_s"] == ["m.gaps-2"]


def test_recommendations_none_empty_and_given_read_differently() -> None:
    model_df, function_df = frames([model_run("m.a", 0)])
    assert "were not computed" in render_report(model_df, function_df, None)
    assert "nothing in these runs calls for a change" in render_report(model_df, function_df, [])
    assert "<li>Use incremental processing</li>" in render_report(model_df, function_df, ["Use incremental processing"])


def test_the_page_is_self_contained() -> None:
    run = model_run("m.a", 0)
    page = render_report(*frames([run], function_runs(run, 0)), ["x"])
    parsed = parse(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "img" not in parsed.tags
    assert all(url.startswith("#") for url in parsed.urls)
    assert "url(" not in page and "@import" not in page


@pytest.mark.parametrize("top, ticks", [(0.0, [0.0, 1.0]), (4.3, [0.0, 2.0, 4.0, 6.0]), (0.0123, [0.0, 0.005, 0.01, 0.015])])
def test_axis_ticks_are_round_and_reach_the_largest_value(top: float, ticks: t.List[float]) -> None:
    assert charts.nice_ticks(top, count=3) == ticks


def test_the_report_command_reads_the_projects_store(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("model_defaults:\n  dialect: duckdb\n")  # the commands need a project
    runs = [model_run("m.a", i) for i in range(3)] + [model_run("m.b", 0)]
    MetricsStore(tmp_path / ".mixmesh" / "metrics.duckdb").append(runs)
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()  # the report goes into a folder that exists; mixmesh never creates one
    result = CliRunner().invoke(main, ["report", "--out", str(out), "--model", "m.a", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    marks = parse(out.read_text(encoding="utf-8")).marks
    assert {m["data-model"] for m in marks} == {"m.a"} and "model m.a" in out.read_text(encoding="utf-8")


def test_stats_lists_the_versions_of_a_model_whose_version_changed(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("model_defaults:\n  dialect: duckdb\n")  # the commands need a project
    runs = [model_run("m.v", i, fingerprint="1883379321" if i < 6 else "2950217784") for i in range(10)]
    MetricsStore(tmp_path / ".mixmesh" / "metrics.duckdb").append([*runs, model_run("m.same", 0, fingerprint="5")])
    result = CliRunner().invoke(main, ["stats", "--project", str(tmp_path)], terminal_width=80)
    assert result.exit_code == 0, result.output
    versions = result.output.split("Model versions")[1].split("Recommendations")[0]
    assert re.search(r"m\.v +│ +1883379321 │ 2024-05-01 06:00 │ +6 │", versions)
    assert re.search(r"m\.v +│ \* 2950217784 │ 2024-05-01 12:00 │ +4 │", versions)
    assert "m.same" not in versions  # one version: nothing changed
    as_json = CliRunner().invoke(main, ["stats", "--json", "--project", str(tmp_path)])
    assert [v["version"] for v in json.loads(as_json.output)["versions"]] == ["5", "1883379321", "2950217784"]


def test_the_report_command_on_a_project_without_runs(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("model_defaults:\n  dialect: duckdb\n")  # the commands need a project
    result = CliRunner().invoke(main, ["report", "--out", str(tmp_path / "r.html"), "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "No runs recorded yet" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_runs_are_grouped_by_model_version_and_the_change_is_marked() -> None:
    from mixmesh.monitor.stats import summarize_frames

    runs = [model_run("m.v", i, fingerprint="111" if i < 6 else "222", environment="dev" if i == 7 else "prod",
                      added_rss_mb=float(i)) for i in range(10)]
    runs[8] = model_run("m.v", 8, fingerprint="222", status="failed", error="boom")
    summary = summarize_frames(*frames(runs))
    old, new = summary.versions
    assert (old.version, old.runs, old.version_changed, old.environments) == ("111", 6, False, ["prod"])
    assert (new.version, new.runs, new.failed, new.version_changed, new.environments) == ("222", 4, 1, True, ["dev", "prod"])
    assert old.added_memory_mb == 5.0 and new.added_memory_mb == 9.0
    assert (summary.models[0].version, summary.models[0].versions) == ("222", 2)
    assert summary.to_dict()["versions"][1]["version_changed"] is True

    page = render_report(*frames(runs), [])
    marks = parse(page).marks
    assert {m["data-version"] for m in marks if m["data-run"] == "m.v-5"} == {"111"}
    assert {m["data-version"] for m in marks if m["data-run"] == "m.v-6"} == {"222"}
    # One dashed line per chart over runs, where version 222 starts, and nowhere else.
    assert page.count('<g class="version-change" data-version="222">') == 4 and page.count('class="version-change"') == 4
    assert page.count('class=" version-start"') == 1  # the runs table: the first run of 222


def test_trends_compare_runs_of_the_current_version_only() -> None:
    """A new version that takes twice as long is a change of code, not a degradation."""
    from mixmesh.monitor.stats import summarize_frames

    runs = [model_run("m.t", i, fingerprint="old", total_s=1.0 + (i % 3) * 0.01) for i in range(10)]
    runs += [model_run("m.t", i, fingerprint="new", total_s=2.0 + (i % 3) * 0.01) for i in range(10, 20)]
    stats = summarize_frames(*frames(runs)).models[0]
    assert stats.time_trend.n == 10 and stats.time_trend.direction == "stable"
    everything = summarize_frames(*frames([model_run("m.t", i, total_s=r.total_s) for i, r in enumerate(runs)])).models[0]
    assert everything.time_trend.direction == "degrading"  # the same times with no versions recorded


def test_a_failed_run_shows_its_error_outside_any_collapsed_table() -> None:
    runs = [model_run("m.f", 0), model_run("m.f", 1, status="failed", error="ValueError: 13 is unlucky")]
    page = render_report(*frames(runs), [])
    before_details = page.split("<details>")[0]
    assert before_details.count("<pre class=\"error\">ValueError: 13 is unlucky</pre>") == 2  # top list and model
    assert '<section id="failed"' in page and 'data-failed' in page


def test_a_store_written_before_versions_were_kept_still_reports(tmp_path: Path) -> None:
    import duckdb

    store = MetricsStore(tmp_path / "metrics.duckdb", background_merge=False)
    store.append([model_run("m.old", i) for i in range(3)])
    store.merge()
    with duckdb.connect(str(tmp_path / "metrics.duckdb")) as connection:  # as an older mixmesh wrote it
        for column in ("fingerprint", "snapshot_version", "added_rss_mb"):
            connection.execute(f"ALTER TABLE model_runs DROP COLUMN {column}")
    page = write_report(store, tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count("<code>not recorded</code>") >= 1 and '<g class="version-change"' not in page
    store.append([model_run("m.old", 3, fingerprint="123", added_rss_mb=2.0)])  # the file gains the columns
    assert list(store.model_runs().fingerprint.fillna("-")) == ["-", "-", "-", "123"]


# -- a real project: versions, environments and intervals recorded ------------------------

FUNCTION = """
from mixmesh import udf


@udf
def label(x: float) -> str:
    return "big" if x > {limit} else "small"
"""

DAILY = """
MODEL (name analytics.daily, kind INCREMENTAL_BY_TIME_RANGE (time_column d), start '2024-01-01', cron '@daily');
SELECT @start_date AS d, x, @label(x) AS size FROM (SELECT range::DOUBLE AS x FROM range(200))
"""


@pytest.mark.slow
def test_each_run_records_its_model_version_environment_and_interval(project: "Project") -> None:
    """An edit of the model's Python function is a new model version; a plan into dev says so."""
    project.write("macros/functions.py", FUNCTION.format(limit=50))
    project.write("models/daily.sql", DAILY)
    project.plan(execution_time="2024-01-03")
    project.write("macros/functions.py", FUNCTION.format(limit=100))
    project.plan(environment="dev", execution_time="2024-01-03")
    runs = MetricsStore(project.root / ".mixmesh" / "metrics.duckdb").model_runs(model="analytics.daily")

    assert list(runs.environment) == ["prod", "dev"]
    assert [(str(run.interval_start.date()), str(run.interval_end.date())) for run in runs.itertuples()] == [
        ("2024-01-01", "2024-01-03")] * 2  # the two missing days, in one batch
    first, second = runs.fingerprint
    assert first and second and first != second
    assert runs.snapshot_version.notna().all()
    # What an evaluation added is part of the process's peak, not all of it.
    assert ((runs.added_rss_mb >= 0) & (runs.added_rss_mb < runs.peak_rss_mb)).all()

    page = render_report(runs, pd.DataFrame(columns=list(FUNCTION_RUN_COLUMNS)), [])
    assert f'data-version="{second}"' in page and f'data-version="{first}"' in page


# -- the page in headless Chromium ----------------------------------------------------------

MARKS_JS = """() => [...document.querySelectorAll('svg.chart .mark')].map(e => {
    const box = e.getBBox();
    return {...e.dataset, height: box.height, width: box.width};
})"""


@pytest.fixture(scope="module")
def browser() -> t.Iterator[t.Any]:
    """Headless Chromium: the one on PATH (the Makefile installs Debian's where Playwright cannot
    download its own), else Playwright's. Missing, it skips the test, but fails it in CI."""
    missing = pytest.fail if os.environ.get("CI") else pytest.skip
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        missing("Playwright is not installed: `make test` installs it and the browser")
    executable = os.environ.get("MIXMESH_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable)
        except Error as error:
            missing(f"no headless Chromium (`make test` installs one): {error.message.splitlines()[0]}")
        yield launched
        launched.close()


RISK, LTV, SUMMARY = "analytics.customer_risk_features", "analytics.customer_ltv_prediction", "analytics.daily_summary"
OLD_VERSION, NEW_VERSION = "1883379321", "2950217784"  # SQLMesh fingerprints: 10 digits
ERROR = (
    "ConnectionError: the scoring service at scoring.internal:8443 did not answer within 30 s\n"
    "  while calling predict_ltv for customers 10 001 to 20 000 (attempt 3 of 3)"
)
SCREENSHOTS_VARIABLE = "MIXMESH_WRITE_SCREENSHOTS"  # =1: write the documentation's screenshots
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def example_store(folder: Path) -> MetricsStore:
    """Three models: one whose code changed after 40 of its 70 runs, one whose latest run failed."""
    store = MetricsStore(folder / "metrics.duckdb")
    risk = [model_run(RISK, i, fingerprint=OLD_VERSION if i < 40 else NEW_VERSION, snapshot_version="3120577934",
                      added_rss_mb=(12.0 if i < 40 else 31.0) + (i % 5) * 1.3, peak_rss_mb=430.0 + i * 0.4)
            for i in range(70)]
    store.append(risk, [f for i, run in enumerate(risk) for f in function_runs(run, i)])
    ltv = [model_run(LTV, i, fingerprint="407551023", snapshot_version="407551023", added_rss_mb=58.0 + (i - 70) * 1.5)
           for i in range(70, 74)]
    ltv.append(model_run(LTV, 74, fingerprint="407551023", snapshot_version="407551023", status="failed", error=ERROR,
                         rows_out=None, rows_per_s=None, added_rss_mb=64.5, sql_s=0.1, python_s=30.2, total_s=30.3))
    store.append(ltv)
    store.append([model_run(SUMMARY, i, fingerprint="77120945", added_rss_mb=0.4, python_s=0.0, sql_s=0.2 + i * 0.01,
                            total_s=0.2 + i * 0.01) for i in range(75, 80)])
    return store


def screenshot_path(tmp_path: Path, width: int) -> Path:
    folder = DOCS_IMAGES if os.environ.get(SCREENSHOTS_VARIABLE) == "1" else tmp_path
    return folder / f"report-{width}.png"


def assert_not_blank(shot: bytes) -> None:
    from PIL import Image, ImageStat

    grey = Image.open(io.BytesIO(shot)).convert("L")
    assert ImageStat.Stat(grey).stddev[0] > 20, "the screenshot is (nearly) one colour"


@pytest.mark.slow
def test_the_report_in_chromium_is_drawn_and_charts_the_stores_numbers(tmp_path: Path, browser: t.Any) -> None:
    store = example_store(tmp_path)
    out = write_report(store, tmp_path / "report.html", recommendations=["Vectorize python_risk_score"])

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: t.List[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(out.as_uri())
    assert requests == [out.as_uri()]  # nothing else is loaded
    assert page.evaluate("document.scripts.length") == 0

    shot = page.screenshot(full_page=True, path=str(screenshot_path(tmp_path, 1280)))
    assert_not_blank(shot)
    assert_not_blank(page.locator("svg.chart").first.screenshot())

    marks = page.evaluate(MARKS_JS)
    assert {(m["chart"], m["series"], m.get("function"), m["run"]): float(m["value"]) for m in marks} == expected_marks(store)
    assert len(marks) == len(expected_marks(store))

    # What is drawn matches the numbers: a bar's height over its value is the same for every bar of a chart.
    for chart in ("time", "memory_added"):
        bars = [m for m in marks if m["chart"] == chart and m["model"] == RISK]
        ratios = [m["height"] / float(m["value"]) for m in bars]
        assert max(ratios) == pytest.approx(min(ratios), rel=2e-3), chart
    page.close()


@pytest.mark.slow
def test_the_report_in_chromium_shows_versions_failures_and_filters_models(tmp_path: Path, browser: t.Any) -> None:
    out = write_report(example_store(tmp_path), tmp_path / "report.html", recommendations=[])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(out.as_uri())
    risk, ltv, summary = (page.locator("section.model", has=page.get_by_role("heading", name=name, exact=True))
                          for name in (RISK, LTV, SUMMARY))

    # Two model versions: listed with their runs, and marked in each chart where the version changed.
    rows = risk.locator("table.versions tbody tr")
    assert [rows.nth(i).get_attribute("data-version") for i in range(rows.count())] == [NEW_VERSION, OLD_VERSION]
    assert "30" in rows.nth(0).inner_text() and "40" in rows.nth(1).inner_text()
    changes = risk.locator(f'svg .version-change[data-version="{NEW_VERSION}"]')
    assert changes.count() == 4 and changes.first.is_visible()  # time, rows/s, memory added, process peak
    assert ltv.locator("svg .version-change").count() == 0

    # A failed run: visible without opening anything, with its error text, at the top and in its model.
    for where in (page.locator("section#failed"), ltv):
        error = where.locator("pre.error").first
        assert error.is_visible() and error.inner_text() == ERROR
    assert ltv.locator("svg rect.failed-run").count() == 4 and risk.locator("svg rect.failed-run").count() == 0

    # The filter, without a script: failed models only, changed versions only, one model from the index.
    page.get_by_label("with failed runs").check()
    assert ltv.is_visible() and not risk.is_visible() and not summary.is_visible()
    page.get_by_label("whose version changed").check()
    assert risk.is_visible() and not ltv.is_visible()
    page.get_by_label("every model").check()
    page.locator("ol.index").get_by_role("link", name=SUMMARY).click()
    assert summary.is_visible() and not risk.is_visible() and not ltv.is_visible()
    summary.get_by_role("link", name="Show every model").click()
    assert risk.is_visible() and ltv.is_visible()

    # 800 px wide: nothing but the tables' own scrolling runs past the window's edge.
    page.set_viewport_size({"width": 800, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 800
    assert_not_blank(page.screenshot(full_page=True, path=str(screenshot_path(tmp_path, 800))))
    page.close()


def expected_marks(store: MetricsStore) -> t.Dict[t.Tuple[str, str, t.Optional[str], str], float]:
    """What each chart should show, computed from the store's own tables."""
    runs, functions = store.model_runs(), store.function_runs()
    expected = {}
    for _, group in runs.groupby("model"):
        for run in group.tail(MAX_RUNS_CHARTED).itertuples():
            expected[("time", "sql", None, run.run_id)] = run.sql_s
            expected[("time", "python", None, run.run_id)] = run.python_s
            expected[("memory", "memory", None, run.run_id)] = run.peak_rss_mb
            if not pd.isna(run.added_rss_mb):
                expected[("memory_added", "memory-added", None, run.run_id)] = run.added_rss_mb
            if not pd.isna(run.rows_per_s):
                expected[("rows_per_s", "rows-per-s", None, run.run_id)] = run.rows_per_s
    for (_, function), group in functions.groupby(["model", "function"]):
        latest = group.iloc[-1]
        expected[("function_p95", "p95", function, latest["run_id"])] = latest["p95_batch_s"]
    return expected
