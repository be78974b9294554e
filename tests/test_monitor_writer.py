"""The writer of evaluations' figures (mixmesh.monitor.writer): off the model's thread, several
evaluations to a spool file, written at the end of a command, after a second, before a reader
in the process reads and before the process exits."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import pytest

from mixmesh.monitor import writer
from mixmesh.monitor.store import DEFAULT_PATH, MetricsStore
from tests.metrics_data import START, model_run
from tests.projects import Project
from tests.waiting import wait_for

NEVER_S = 3600.0  # a writer told to wait this long writes only when asked


def spooled(store: MetricsStore) -> t.List[Path]:
    """The store's spool files, as another process sees them (no wait for this one's writer)."""
    assert store.spool is not None
    return sorted(store.spool.glob("[0-9]*.json")) if store.spool.is_dir() else []


def rows_of(run: t.Any) -> writer.Rows:
    return lambda: ([run], [])


def test_evaluations_handed_over_together_are_one_spool_file_in_order(tmp_path: Path, monkeypatch: t.Any) -> None:
    monkeypatch.setattr(writer, "WRITE_AFTER_S", NEVER_S)
    store = MetricsStore(tmp_path / "metrics.duckdb", background_merge=False)
    runs = [model_run(run_id=f"r{i}", at=START + dt.timedelta(minutes=i)) for i in range(4)]
    for run in runs:
        store.append_later(rows_of(run))
    assert spooled(store) == [] and writer.held() == 4  # nothing written while the model runs
    writer.write_soon()
    assert wait_for(lambda: len(spooled(store)) == 1, 60)
    assert writer.held() == 0
    assert list(store.model_runs()["run_id"]) == [run.run_id for run in runs]


def test_rows_held_are_written_after_a_while_unasked(tmp_path: Path, monkeypatch: t.Any) -> None:
    monkeypatch.setattr(writer, "WRITE_AFTER_S", 0.05)
    store = MetricsStore(tmp_path / "metrics.duckdb", background_merge=False)
    store.append_later(rows_of(model_run(run_id="r0")))
    assert wait_for(lambda: len(spooled(store)) == 1, 60)


def test_a_reader_in_the_process_waits_for_the_rows_held(tmp_path: Path, monkeypatch: t.Any) -> None:
    monkeypatch.setattr(writer, "WRITE_AFTER_S", NEVER_S)
    store = MetricsStore(tmp_path / "metrics.duckdb", background_merge=False)
    store.append_later(rows_of(model_run(run_id="r0")))
    assert list(store.model_runs()["run_id"]) == ["r0"]


def test_the_process_writes_the_rows_held_before_it_exits(tmp_path: Path) -> None:
    path = tmp_path / "metrics.duckdb"
    script = textwrap.dedent(f"""
        from mixmesh.monitor import writer
        from mixmesh.monitor.store import MetricsStore
        from tests.metrics_data import model_run

        writer.WRITE_AFTER_S = {NEVER_S}
        run = model_run(run_id="at-exit")
        MetricsStore({str(path)!r}, background_merge=False).append_later(lambda: ([run], []))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120, cwd=Path(__file__).parents[1])
    store = MetricsStore(path, background_merge=False)
    assert len(spooled(store)) == 1
    assert list(store.model_runs()["run_id"]) == ["at-exit"]


def test_rows_that_cannot_be_built_are_logged_and_the_others_written(
    tmp_path: Path, monkeypatch: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(writer, "WRITE_AFTER_S", NEVER_S)
    store = MetricsStore(tmp_path / "metrics.duckdb", background_merge=False)

    def broken() -> t.Any:
        raise ValueError("a figure that cannot be read")

    store.append_later(rows_of(model_run(run_id="r0")))
    store.append_later(broken, "analytics.broken")
    store.append_later(rows_of(model_run(run_id="r2")))
    with caplog.at_level("WARNING", logger="mixmesh.monitor.writer"):
        assert list(store.model_runs()["run_id"]) == ["r0", "r2"]
    assert "could not record the figures of analytics.broken" in caplog.text


def test_a_plan_s_figures_reach_the_spool_when_the_plan_ends(project: Project, monkeypatch: t.Any) -> None:
    """Another process (``mixmesh stats`` while a long ``sqlmesh run`` goes on) sees a
    command's figures once it ends, without waiting for the writer's second."""
    monkeypatch.setattr(writer, "WRITE_AFTER_S", NEVER_S)
    project.write("models/one.sql", "MODEL (name analytics.one, kind FULL);\nSELECT 1 AS x")
    project.write("models/two.sql", "MODEL (name analytics.two, kind FULL);\nSELECT 2 AS x")
    project.plan()
    store = MetricsStore(project.root / DEFAULT_PATH, background_merge=False)
    assert wait_for(lambda: writer.held() == 0 and bool(spooled(store)), 60)
    assert len(spooled(store)) == 1  # both models' figures, in one file
    assert set(store.model_runs()["model"]) == {"analytics.one", "analytics.two"}


@pytest.fixture(autouse=True)
def _nothing_held_after() -> t.Iterator[None]:
    yield
    writer.wait_for_writes()  # a test's rows are not left for the next one's writer

