"""The mixmesh command."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import click.testing
import pytest

import mixmesh

MIXMESH = str(Path(sys.executable).with_name("mixmesh"))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([MIXMESH, *args], capture_output=True, text=True, cwd=cwd, check=True)


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"mixmesh, version {mixmesh.__version__}"
    listed = run("--help").stdout
    for command in ("demo", "init", "stats", "report", "advise"):
        assert f"  {command} " in listed, command


def invoke(*args: str, columns: int = 200) -> "click.testing.Result":
    from click.testing import CliRunner

    from mixmesh.cli import main

    return CliRunner().invoke(main, list(args), env={"COLUMNS": str(columns), "MIXMESH_METRICS": ""})


@pytest.mark.parametrize(
    "args, says",
    [
        (["stats", "--project", "{missing}"], "Error: Invalid value for '--project': Directory '{missing}' does not exist."),
        (["report", "--project", "{missing}"], "Error: Invalid value for '--project': Directory '{missing}' does not exist."),
        (["advise", "--project", "{missing}"], "Error: Invalid value for '--project': Directory '{missing}' does not exist."),
        (["stats", "--project", "{file}"], "Error: Invalid value for '--project': Directory '{file}' is a file."),
        (["stats", "--days", "0"], "Error: Invalid value for '--days': 0.0 is not in the range x>0."),
        (["stats", "--days", "-1"], "Error: Invalid value for '--days': -1.0 is not in the range x>0."),
        (["stats", "--days", "a week"], "Error: Invalid value for '--days': 'a week' is not a valid float range."),
        (["stats", "--json", "--prometheus"], "Error: --json and --prometheus are two formats: choose one"),
        (["report", "--out", "{folder}"], "Error: Invalid value for '--out': File '{folder}' is a directory."),
        (["statz"], "Error: No such command 'statz'. Did you mean 'stats'?"),
    ],
    ids=["stats of a missing project", "report of a missing project", "advise of a missing project",
         "a file for a project", "zero days", "negative days", "days not a number", "two formats",
         "a report into a folder", "an unknown command"],
)
def test_bad_arguments_are_refused_naming_the_option(tmp_path: Path, args: list, says: str) -> None:
    (tmp_path / "notes.txt").write_text("not a project")
    places = {"missing": str(tmp_path / "nowhere"), "file": str(tmp_path / "notes.txt"), "folder": str(tmp_path)}
    result = invoke(*(arg.format(**places) for arg in args))
    assert result.exit_code == 2, result.output
    assert result.output.rstrip().endswith(says.format(**places)), result.output
    assert not (tmp_path / "nowhere").exists()  # nothing was created for the missing project


@pytest.mark.parametrize("table", ["mixmesh.cli.demo", "mixmesh.monitor.stats_cli"])
def test_table_cells_are_text_not_markup(table: str) -> None:
    import importlib
    import io

    from rich.console import Console

    output = io.StringIO()
    cells = ["list[float]", "[bold]x[/]", 1234]
    Console(file=output, width=120).print(importlib.import_module(table)._table("t", ["a", "b", "c"], [cells]))
    assert "list[float]" in output.getvalue() and "[bold]x[/]" in output.getvalue() and "1,234" in output.getvalue()


# ------------------------------------------------------------------ global options, exit codes, 80 columns

SNAPSHOTS = Path(__file__).with_name("snapshots")
CONFIG = "gateways:\n  local:\n    connection:\n      type: duckdb\n      database: db.duckdb\nmodel_defaults:\n  dialect: duckdb\n"


@pytest.fixture(autouse=True)
def forget_the_project() -> t.Iterator[None]:
    from mixmesh.core import settings

    yield
    settings.use_project(None)


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose store holds fixed runs: the same figures, p-values and advice every time."""
    from mixmesh.monitor.store import MetricsStore
    from tests.metrics_data import START, function_run, model_run

    root = tmp_path / "project"
    root.mkdir()
    (root / "config.yaml").write_text(CONFIG)
    store = MetricsStore.for_project(root, setting="")
    for day in range(8):
        run = model_run("analytics.customer_risk_scoring", at=START + dt.timedelta(days=day), total_s=2.0 + day,
                        python_s=1.5 + day, rows_out=1000, peak_rss_mb=300 + 40 * day)
        store.append([run], [function_run(run, "python_risk_score", mean_list_length=250.0, total_s=1.0 + day)])
    store.append([model_run("analytics.customer_ltv_prediction", at=START, total_s=400.0, python_s=10.0,
                            rows_out=10**8)])
    store.flush()
    monkeypatch.chdir(root)  # the store's location, in the output, is then the same in every run
    return root


def _matches_snapshot(output: str, name: str) -> None:
    lines = [line.rstrip() for line in output.splitlines()]
    expected = (SNAPSHOTS / name).read_text(encoding="utf-8").splitlines()
    assert lines == expected, "\n".join(lines)


def test_stats_at_80_columns_stack_rows_and_never_cut_a_name(recorded: Path) -> None:
    result = invoke("-p", ".", "stats", columns=80)
    assert result.exit_code == 0, result.output
    assert max(len(line.rstrip()) for line in result.output.splitlines()) <= 80
    assert "…" not in result.output and "analytics.customer_risk_scoring" in result.output
    _matches_snapshot(result.output, "stats_80_columns.txt")


def test_stats_wide_keeps_one_line_per_row(recorded: Path) -> None:
    result = invoke("-p", ".", "stats", "--wide", columns=80)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│ analytics.")]
    assert len(rows) == 3 and all("…" not in row for row in rows)  # two models, one function
    _matches_snapshot(result.output, "stats_wide.txt")


def test_the_demo_summary_at_80_columns(tmp_path: Path) -> None:
    import io

    import duckdb
    from rich.console import Console

    from mixmesh.cli.demo import DATABASE, DemoResult, ModelTiming, print_summary

    with duckdb.connect(str(tmp_path / DATABASE)) as connection:
        connection.execute("""
            CREATE SCHEMA analytics;
            CREATE TABLE analytics.customer_risk_scoring AS
                SELECT * FROM (VALUES ('HIGH', 0.91), ('LOW', 0.12), ('LOW', 0.2)) t(final_risk_tier, ml_risk_score);
            CREATE TABLE analytics.customer_ltv_prediction AS SELECT * FROM (VALUES
                ('C001', 'premium', 1234.5, 0.8, 0.1, 99.0, DATE '2024-01-31')) t(customer_id, customer_segment,
                predicted_ltv, prediction_confidence, churn_risk, total_spend, prediction_date);
            CREATE TABLE analytics.real_time_personalization AS SELECT * FROM (VALUES ('browsing', 0.5, true))
                t(session_type, ml_engagement_score, show_premium_offer);
        """)
    timings = {"analytics.customer_risk_scoring": ModelTiming(seconds=1.5, python_seconds=0.5, intervals=31)}
    output = io.StringIO()
    print_summary(tmp_path, DemoResult(rows={}, trained=[], timings=timings, seconds=2.0),
                  Console(file=output, width=80))
    text = output.getvalue()
    assert "…" not in text and "Database:" in text
    text = text[: text.index("ML models:")]  # the rest names the temporary folder, wrapped where it ends
    _matches_snapshot(text, "demo_80_columns.txt")


def test_global_options_like_sqlmesh(recorded: Path, tmp_path: Path) -> None:
    import json

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    by_path = invoke("--paths", str(recorded), "stats", "--json")
    by_old_option = invoke("stats", "--json", "--project", str(recorded))  # deprecated, still read
    assert by_path.exit_code == by_old_option.exit_code == 0, by_path.output + by_old_option.output
    assert json.loads(by_path.output)["models"] == json.loads(by_old_option.output)["models"]
    both = invoke("-p", str(recorded), "stats", "--project", str(recorded))
    assert both.exit_code == 2 and "give the project once" in both.output
    twice = invoke("-p", str(recorded), "-p", str(recorded), "stats")
    assert twice.exit_code == 2 and "-p was given 2 times" in twice.output
    # --gateway names the gateway whose warehouse keeps the figures when metrics=warehouse.
    (recorded / "pyproject.toml").write_text('[tool.mixmesh]\nmetrics = "warehouse"\n')
    warehouse = json.loads(invoke("-p", str(recorded), "--gateway", "local", "stats", "--json").output)
    assert warehouse["store"] == f"{recorded / 'db.duckdb'} (schema mixmesh_metrics)" and warehouse["models"] == []


def test_json_timestamps_are_rfc_3339_with_a_zone(recorded: Path) -> None:
    import json

    document = json.loads(invoke("-p", ".", "stats", "--json").output)
    stamps = [model["last_run_at"] for model in document["models"]]
    assert stamps == ["2026-01-01T00:00:00+00:00", "2026-01-08T00:00:00+00:00"]
    assert all(dt.datetime.fromisoformat(stamp).utcoffset() == dt.timedelta(0) for stamp in stamps)
    assert document["thresholds"]["min_change"] == 0.1 and document["thresholds"]["min_change_ms"] == 50.0


@pytest.mark.parametrize("command", ["stats", "report", "advise", "cache", "quarantine"])
def test_outside_a_project_every_command_exits_2(tmp_path: Path, command: str) -> None:
    os.chdir(tmp_path)
    result = invoke(command)
    assert result.exit_code == 2, result.output
    assert f"no SQLMesh project (config.yaml or config.py) in {tmp_path} or above it" in result.output
    assert not (tmp_path / "report.html").exists()  # no empty page


def test_a_project_path_without_a_config_exits_2(tmp_path: Path) -> None:
    result = invoke("-p", str(tmp_path), "stats")
    assert result.exit_code == 2 and f"no SQLMesh project (config.yaml or config.py) in {tmp_path}" in result.output


def test_no_such_model_exits_2_naming_the_recorded_ones(recorded: Path) -> None:
    result = invoke("stats", "--model", "nope.nope")
    assert result.exit_code == 2
    assert "no model nope.nope in the runs recorded in" in result.output
    assert "analytics.customer_ltv_prediction, analytics.customer_risk_scoring" in result.output
    # A model that has runs, only none in the window, is not an error.
    recent = invoke("stats", "--model", "analytics.customer_ltv_prediction", "--days", "1")
    assert recent.exit_code == 0 and "No model evaluations recorded for analytics.customer_ltv_prediction" in recent.output


def test_a_report_that_cannot_be_written_exits_3_and_creates_nothing(recorded: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "x.html"
    result = invoke("report", "--out", str(missing))
    assert result.exit_code == 3, result.output
    assert f"the folder {missing.parent} does not exist" in result.output
    assert not missing.parent.exists()
    written = invoke("report", "--out", str(tmp_path / "r.html"))
    assert written.exit_code == 0 and (tmp_path / "r.html").stat().st_size > 0


def test_fail_on_degrading_exits_4_for_ci(recorded: Path) -> None:
    result = invoke("stats", "--fail-on", "degrading")
    assert result.exit_code == 4
    assert "--fail-on degrading: analytics.customer_risk_scoring (time degrading (p=0.00084))" in result.output
    assert invoke("stats").exit_code == 0  # without it, a degrading trend is reported, not failed
    # Thresholds: a time trend must change a run by 10 s here, which 2 s to 9 s does not.
    only_time = invoke("stats", "--json", "--min-change-ms", "10000", "--fail-on", "degrading")
    import json

    risk = json.loads(only_time.stdout)["models"][1]
    assert risk["time_trend"]["direction"] == "stable" and risk["memory_trend"]["direction"] == "degrading"
    assert only_time.exit_code == 4  # memory still degrades
    assert invoke("stats", "--model", "analytics.customer_ltv_prediction", "--fail-on", "degrading").exit_code == 0


def test_advise_loads_the_project_with_the_gateway_and_config_given(tmp_path: Path) -> None:
    """``mixmesh --gateway GW advise`` loads the project as ``sqlmesh --gateway GW`` does."""
    (tmp_path / "models").mkdir()
    (tmp_path / "config.yaml").write_text(
        "gateways:\n  local:\n    connection:\n      type: duckdb\n      database: db.duckdb\n"
        "default_gateway: local\nmodel_defaults:\n  dialect: duckdb\n"
    )
    (tmp_path / "models" / "one.sql").write_text("MODEL (name analytics.one, kind FULL);\nSELECT 1 AS x\n")
    named = invoke("-p", str(tmp_path), "--gateway", "local", "advise", "--json")
    assert named.exit_code == 0, named.output
    unknown = invoke("-p", str(tmp_path), "--gateway", "nope", "advise")
    assert unknown.exit_code == 1 and "nope" in unknown.output
