"""The metrics store: append-only through a spool, safe with concurrent processes, versioned, configurable."""

from __future__ import annotations

import datetime as dt
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import textwrap
import time
import typing as t
from pathlib import Path

import duckdb
import pytest

from mixmesh.monitor.records import FUNCTION_RUN_COLUMNS, MODEL_RUN_COLUMNS, SCHEMA_VERSION
from mixmesh.monitor.store import (
    FUNCTION_RUN_TYPES,
    MODEL_RUN_TYPES,
    WAREHOUSE_SCHEMA,
    MetricsStore,
    MetricsStoreError,
    default_spool,
)
from tests.metrics_data import days_ago, function_run, model_run

WRITERS, APPENDS = 4, 200


def test_column_types_follow_the_records() -> None:
    assert tuple(MODEL_RUN_TYPES) == MODEL_RUN_COLUMNS
    assert tuple(FUNCTION_RUN_TYPES) == FUNCTION_RUN_COLUMNS


def test_rows_read_back_oldest_first_filtered_by_model_and_days(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "metrics.duckdb")
    # An aware timestamp in another zone is kept as UTC.
    paris = dt.timezone(dt.timedelta(hours=2))
    recent = model_run("a.x", at=dt.datetime(2030, 1, 1, 14, 0, tzinfo=paris), rows_out=None)
    old = model_run("a.x", at=days_ago(10), total_s=2.0)
    other = model_run("a.y", at=days_ago(1))
    for run in (recent, old, other):
        assert store.append([run], [function_run(run), function_run(run, "other", mode="vectorized")])
    store.flush()

    runs = store.model_runs()
    assert list(runs.columns) == list(MODEL_RUN_COLUMNS)
    assert list(runs["run_id"]) == [old.run_id, other.run_id, recent.run_id]
    assert runs.iloc[-1]["started_at"] == dt.datetime(2030, 1, 1, 12, 0)
    assert runs.iloc[-1]["rows_out"] is None or runs["rows_out"].isna().iloc[-1]
    assert list(store.model_runs(model="a.x")["run_id"]) == [old.run_id, recent.run_id]
    assert list(store.model_runs(days=5)["run_id"]) == [other.run_id, recent.run_id]
    functions = store.function_runs(model="a.x", days=5)
    assert list(functions.columns) == list(FUNCTION_RUN_COLUMNS)
    assert list(zip(functions["run_id"], functions["function"])) == [(recent.run_id, "other"), (recent.run_id, "score")]
    assert store.pending() == 0
    assert store.schema_version() == SCHEMA_VERSION


def test_a_store_written_before_the_wait_column_stays_readable_and_gains_it(tmp_path: Path) -> None:
    """wait_s (a retry's backoff) came after schema version 1: older files and batches lack it."""
    store = MetricsStore(tmp_path / "metrics.duckdb", background_merge=False)
    old = model_run("a.x", at=days_ago(2))
    store.append([old])
    store.merge()
    with duckdb.connect(str(tmp_path / "metrics.duckdb")) as connection:  # as version 1 wrote it
        connection.execute("ALTER TABLE model_runs DROP COLUMN wait_s")
    runs = store.model_runs()  # nothing spooled: read from the file as it is, read-only
    assert list(runs.columns) == list(MODEL_RUN_COLUMNS)
    assert list(runs.run_id) == [old.run_id] and runs.wait_s.isna().all()

    spooled = model_run("a.x", at=days_ago(1))  # a batch an older mixmesh spooled, without wait_s
    document = {"schema_version": SCHEMA_VERSION, "batch_id": "older", "written_at": "2026-01-01T00:00:00", "pid": 1,
                "model_runs": [{k: v for k, v in _json_row(spooled).items() if k != "wait_s"}], "function_runs": []}
    store.spool.mkdir(parents=True, exist_ok=True)
    (store.spool / "00000000000000000001-1-older.json").write_text(json.dumps(document))
    store.append([model_run("a.x", wait_s=1.5)])
    assert store.merge() == 2  # both batches, into the file brought up to date
    assert list(store.model_runs().wait_s.fillna(-1)) == [-1, -1, 1.5]


def _json_row(run: t.Any) -> t.Dict[str, t.Any]:
    from mixmesh.monitor.store import _row

    return _row(run, MODEL_RUN_TYPES)


def test_a_missing_store_reads_empty(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "nothing" / "metrics.duckdb")
    assert store.model_runs().empty and list(store.model_runs().columns) == list(MODEL_RUN_COLUMNS)
    assert store.function_runs().empty
    assert store.schema_version() is None
    assert not (tmp_path / "nothing").exists()


def _append_many(path: str, writer: int, start: t.Any, results: t.Any) -> None:
    """One writing process: APPENDS evaluations, each a model row and two function rows."""
    store = MetricsStore(path)
    start.wait()
    kept = []
    for index in range(APPENDS):
        run = model_run(f"m.writer_{writer}", run_id=f"{writer}-{index}")
        kept.append(store.append([run], [function_run(run, "f"), function_run(run, "g")]))
    store.flush()
    results.put((writer, kept.count(True)))


def _read_while_written(path: str, stop: t.Any, results: t.Any) -> None:
    """A reader during the writes: it never fails and never sees a row twice or go away."""
    store = MetricsStore(path)
    seen, problems = 0, []
    while not stop.is_set():
        try:
            ids = list(store.model_runs()["run_id"])
        except Exception as error:  # pragma: no cover - reported below
            problems.append(repr(error))
            continue
        if len(ids) != len(set(ids)):
            problems.append("duplicate rows")
        if len(ids) < seen:
            problems.append(f"rows went from {seen} to {len(ids)}")
        seen = len(ids)
        time.sleep(0.02)
    results.put(("reader", seen, problems))


def test_concurrent_processes_lose_no_row_and_write_none_twice(tmp_path: Path) -> None:
    path = str(tmp_path / ".mixmesh" / "metrics.duckdb")
    context = multiprocessing.get_context("spawn")
    start, stop, results = context.Event(), context.Event(), context.Queue()
    writers = [context.Process(target=_append_many, args=(path, w, start, results)) for w in range(WRITERS)]
    reader = context.Process(target=_read_while_written, args=(path, stop, results))
    for process in (*writers, reader):
        process.start()
    start.set()
    outcomes = [results.get(timeout=240) for _ in writers]
    stop.set()
    reader_outcome = results.get(timeout=60)
    for process in (*writers, reader):
        process.join(timeout=60)
        assert process.exitcode == 0

    assert sorted(kept for _, kept in outcomes) == [APPENDS] * WRITERS
    assert reader_outcome[2] == [], reader_outcome
    store = MetricsStore(path)
    runs = store.model_runs()
    expected = {f"{w}-{i}" for w in range(WRITERS) for i in range(APPENDS)}
    assert len(runs) == WRITERS * APPENDS and set(runs["run_id"]) == expected
    functions = store.function_runs()
    assert len(functions) == 2 * WRITERS * APPENDS
    assert functions.groupby("run_id").size().eq(2).all()
    assert store.pending() == 0
    with duckdb.connect(path, read_only=True) as connection:
        assert connection.execute("SELECT count(*), count(DISTINCT batch_id) FROM batches").fetchone() == (800, 800)


def _hold(path: Path, read_only: bool = False) -> subprocess.Popen:
    """Another process holding the DuckDB file until its stdin closes."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys
            connection = duckdb.connect({str(path)!r}, read_only={read_only})
            print("held", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def _release(holder: subprocess.Popen) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0


def test_appends_neither_wait_nor_fail_while_another_process_holds_the_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.duckdb"
    store = MetricsStore(path, lock_timeout=0.3)
    store.append([model_run()])
    store.flush()
    holder = _hold(path)
    try:
        # Appends are small file writes: they return while the file is held (waiting for
        # the lock would hang here until the holder lets go, below).
        assert all(store.append([model_run()]) for _ in range(50))
        store.flush()  # its merge gives up on the held lock
        assert store.pending() == 50
        with pytest.raises(MetricsStoreError, match="busy"):
            store.model_runs()
    finally:
        _release(holder)
    assert len(store.model_runs()) == 51
    assert store.pending() == 0


def test_readers_see_spooled_rows_when_they_cannot_merge(tmp_path: Path) -> None:
    path = tmp_path / "metrics.duckdb"
    store = MetricsStore(path, background_merge=False, lock_timeout=0.3)
    first = model_run()
    store.append([first])
    assert store.merge() == 1
    late = [model_run() for _ in range(3)]
    for run in late:
        store.append([run], [function_run(run)])
    holder = _hold(path, read_only=True)  # readers may share the file; a merge may not
    try:
        assert set(store.model_runs()["run_id"]) == {first.run_id, *(run.run_id for run in late)}
        assert len(store.function_runs()) == 3
        assert store.pending() == 3
    finally:
        _release(holder)
    assert len(store.model_runs()) == 4 and store.pending() == 0


def test_a_merge_repeated_after_a_crash_adds_nothing_twice(tmp_path: Path) -> None:
    # A merger that died after its commit but before removing the spool files.
    store = MetricsStore(tmp_path / "metrics.duckdb", background_merge=False)
    runs = [model_run() for _ in range(3)]
    for run in runs:
        store.append([run], [function_run(run)])
    saved = tmp_path / "saved"
    shutil.copytree(store.spool, saved)
    assert store.merge() == 3
    for file in saved.glob("*.json"):
        shutil.copy(file, store.spool / file.name)
    assert store.pending() == 3
    assert store.merge() == 0
    assert store.pending() == 0
    assert sorted(store.model_runs()["run_id"]) == sorted(run.run_id for run in runs)
    assert len(store.function_runs()) == 3


def test_half_written_batches_are_invisible_and_stale_ones_removed(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "metrics.duckdb", background_merge=False)
    store.append([model_run()])
    temporary = store.spool / ".deadbeef.tmp"
    temporary.write_text('{"schema_version": 1, "batch_id": "dead", "model_ru')
    assert store.pending() == 1 and len(store.model_runs()) == 1
    assert temporary.exists()  # it may still be being written
    old = time.time() - 7200
    os.utime(temporary, (old, old))
    store.append([model_run()])
    store.merge()
    assert not temporary.exists()
    assert len(store.model_runs()) == 2


def test_a_write_that_cannot_happen_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = MetricsStore(blocker / "metrics.duckdb")
    with caplog.at_level(logging.WARNING, logger="mixmesh.monitor"):
        assert store.append([model_run()]) is False
        assert store.append([model_run()]) is False
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"mixmesh could not keep metrics in {store.spool}: " in warnings[0].getMessage()


def test_another_schema_version_is_refused_with_a_message(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "metrics.duckdb"
    store = MetricsStore(path)
    store.append([model_run()])
    store.flush()
    with duckdb.connect(str(path)) as connection:
        connection.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(MetricsStoreError, match="schema version 99; this mixmesh reads and writes version 1"):
        store.model_runs()
    with caplog.at_level(logging.WARNING, logger="mixmesh.monitor"):
        assert store.append([model_run()])  # kept in the spool; the merge is refused and logged
        store.flush()
    assert store.pending() == 1
    assert any("schema version 99" in record.getMessage() for record in caplog.records)


def test_a_batch_of_another_version_stays_in_the_spool(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = MetricsStore(tmp_path / "metrics.duckdb", background_merge=False)
    store.append([model_run()])
    batch = next(store.spool.glob("*.json"))
    document = json.loads(batch.read_text())
    document["schema_version"] = 2
    batch.write_text(json.dumps(document))
    with caplog.at_level(logging.WARNING, logger="mixmesh.monitor"):
        assert store.model_runs().empty
    assert batch.exists()
    assert any(f"metrics batch {batch} has schema version 2; this mixmesh writes version 1; left in place"
               in record.getMessage() for record in caplog.records)


# ------------------------------------------------------------------ where


def test_the_project_default_and_its_spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIXMESH_METRICS", raising=False)
    store = MetricsStore.for_project(tmp_path)
    assert store.path == tmp_path / ".mixmesh" / "metrics.duckdb" and store.schema == "main"
    assert store.spool == tmp_path / ".mixmesh" / "spool" / "metrics"
    # Every process and constructor opening that file agrees on the spool.
    assert MetricsStore(tmp_path / ".mixmesh" / "metrics.duckdb").spool == store.spool
    store.append([model_run()])
    store.flush()
    assert (tmp_path / ".mixmesh" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert len(store.model_runs()) == 1


def test_metrics_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXMESH_METRICS", "off")
    store = MetricsStore.for_project(tmp_path)
    assert not store.enabled and "off" in store.location
    assert store.append([model_run()]) is False
    assert store.model_runs().empty and store.function_runs().empty
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("setting", ["metrics/runs.duckdb", "ABSOLUTE"])
def test_metrics_go_to_a_file_named_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    target = tmp_path / "elsewhere" / "runs.duckdb"
    monkeypatch.setenv("MIXMESH_METRICS", str(target) if setting == "ABSOLUTE" else setting)
    project = tmp_path / "project"
    store = MetricsStore.for_project(project)
    expected = target if setting == "ABSOLUTE" else project / "metrics" / "runs.duckdb"
    assert store.path == expected and store.spool == default_spool(expected)
    store.append([model_run()])
    store.flush()
    assert expected.exists() and len(store.model_runs()) == 1


WAREHOUSE_CONFIG = """\
gateways:
  local:
    connection:
      type: duckdb
      database: warehouse.duckdb
  memory:
    connection:
      type: duckdb
default_gateway: local
model_defaults:
  dialect: duckdb
  start: '2024-01-01'
disable_anonymized_analytics: true
"""


def test_metrics_can_live_in_the_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.yaml").write_text(WAREHOUSE_CONFIG)
    for setting in ("warehouse", "warehouse:local"):
        monkeypatch.setenv("MIXMESH_METRICS", setting)
        store = MetricsStore.for_project(tmp_path)
        assert (store.path, store.schema) == (tmp_path / "warehouse.duckdb", WAREHOUSE_SCHEMA)
    store.append([model_run()])
    store.flush()
    assert len(store.model_runs()) == 1
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1", [WAREHOUSE_SCHEMA]
        ).fetchall()
    assert [name for (name,) in tables] == ["batches", "function_runs", "model_runs", "schema_version"]
    assert store.spool == tmp_path / ".mixmesh" / "spool" / "warehouse.mixmesh_metrics"


@pytest.mark.parametrize(
    "gateway, says",
    [
        ("memory", "metrics in the warehouse need a DuckDB gateway with a database file, not an in-memory one"),
        ("nosuch", "metrics in the warehouse: cannot read the SQLMesh config of {project}: Missing gateway with name 'nosuch'."),
    ],
    ids=["in memory", "no such gateway"],
)
def test_a_warehouse_that_is_not_a_file_keeps_metrics_in_the_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, gateway: str, says: str
) -> None:
    (tmp_path / "config.yaml").write_text(WAREHOUSE_CONFIG)
    monkeypatch.setenv("MIXMESH_METRICS", f"warehouse:{gateway}")
    with caplog.at_level(logging.WARNING, logger="mixmesh.monitor"):
        store = MetricsStore.for_project(tmp_path)
    assert store.path == tmp_path / ".mixmesh" / "metrics.duckdb"
    warning = says.format(project=tmp_path) + f"; keeping metrics in {tmp_path / '.mixmesh' / 'metrics.duckdb'} instead"
    assert warning in caplog.text


def test_the_warehouse_while_sqlmesh_holds_it_in_the_same_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Capture runs inside `sqlmesh run`, whose connection to the warehouse stays open.
    from sqlmesh import Context

    (tmp_path / "config.yaml").write_text(WAREHOUSE_CONFIG)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "one.sql").write_text("MODEL (name s.one, kind FULL); SELECT 1 AS x")
    monkeypatch.setenv("MIXMESH_METRICS", "warehouse")
    monkeypatch.setenv("MIXMESH_MONITOR", "off")  # only the rows appended below: not the plan's own
    context = Context(paths=str(tmp_path))
    try:
        context.plan(auto_apply=True, no_prompts=True)
        store = MetricsStore.for_project(tmp_path)
        runs = [model_run("s.one") for _ in range(3)]
        for run in runs:  # while SQLMesh holds the warehouse open in this process
            assert store.append([run], [function_run(run)])
        store.flush()
        assert context.engine_adapter.fetchone("SELECT x FROM s.one") == (1,)
    finally:
        context.close()
    assert sorted(store.model_runs()["run_id"]) == sorted(run.run_id for run in runs)
    assert store.pending() == 0
