"""Streaming Python models on DuckDB: bounded batches, every row landed, DuckDB's cache
released around the landing and the user's memory_limit always put back.

Memory itself is measured by benchmarks/python_model_io.py; these tests check behaviour.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from mixmesh import engines
from tests.projects import Project

ROWS = 50_000

EVENTS = f"""
MODEL (name raw.events, kind FULL);
SELECT range::BIGINT AS id, (range % 97)::BIGINT AS customer_id, ((range % 400) * 0.25)::DOUBLE AS amount
FROM range({ROWS})
"""

COLUMNS = '{"id": "BIGINT", "customer_id": "BIGINT", "amount": "DOUBLE"}'

def streamed_copy(rows: int, extra: str = "") -> str:
    """analytics.copy: raw.events streamed through in batches of ``rows`` rows."""
    return f'''
from mixmesh import python_model


@python_model(name="analytics.copy", columns={COLUMNS}{extra})
def copy(context):
    yield from context.sql("SELECT id, customer_id, amount FROM raw.events").batches({rows})
'''


FAILING_COPY = f'''
from mixmesh import python_model


@python_model(name="analytics.copy", columns={COLUMNS})
def copy(context):
    for number, batch in enumerate(context.sql("SELECT id, customer_id, amount FROM raw.events").batches(5_000)):
        if number == 4:
            raise ConnectionError("the source went away in batch 4")
        yield batch
'''


def config(database: str, extra: str = "") -> str:
    return f"""\
gateways:
  local:
    connection:
      type: duckdb
      database: {database}
{extra}default_gateway: local
model_defaults:
  dialect: duckdb
  start: '2024-01-01'
disable_anonymized_analytics: true
"""


@pytest.fixture
def events(project: Project) -> Project:
    project.write("models/events.sql", EVENTS)
    return project


def memory_limit(adapter: t.Any) -> str:
    _ = adapter.cursor  # SQLMesh applies the connection's settings (connector_config) to its first cursor
    cursor = adapter.connection.cursor()
    try:
        return cursor.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    finally:
        cursor.close()


def limits_during_copy_writes(monkeypatch: pytest.MonkeyPatch) -> t.List[str]:
    """DuckDB's memory_limit each time SQLMesh runs a statement reading a staging table
    (its write of a Python model's rows); the statements still run as they are. The
    landing counts as large from 64 KiB on (16 MiB by default), so that these small
    projects exercise what a large one does."""
    from sqlmesh.core.engine_adapter.duckdb import DuckDBEngineAdapter

    from mixmesh.pymodels import landing

    monkeypatch.setattr(landing, "RELEASE_EVERY_BYTES", 64 * 1024)

    seen: t.List[str] = []
    execute = DuckDBEngineAdapter._execute

    def recording(self: t.Any, sql: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if "mixmesh_staging" in sql and not sql.lstrip().upper().startswith(("SELECT", "DROP")):
            seen.append(memory_limit(self))
        return execute(self, sql, *args, **kwargs)

    monkeypatch.setattr(DuckDBEngineAdapter, "_execute", recording)
    return seen


# --- batches ------------------------------------------------------------------------------


def test_batches_hold_at_most_the_rows_asked_for_and_every_row_arrives(events: Project) -> None:
    events.write(
        "models/copy.py",
        '''
        import pyarrow as pa

        from mixmesh import python_model


        @python_model(name="analytics.sizes", columns={"batch": "INT", "batch_rows": "BIGINT", "id": "BIGINT"})
        def sizes(context):
            for number, batch in enumerate(context.sql("SELECT id FROM raw.events").batches(rows=4_096)):
                yield pa.table({
                    "batch": pa.array([number] * batch.num_rows, pa.int32()),
                    "batch_rows": pa.array([batch.num_rows] * batch.num_rows, pa.int64()),
                    "id": batch.column("id"),
                })
        ''',
    )
    events.plan()
    batches, largest, rows, ids = events.query(
        "SELECT count(DISTINCT batch), max(batch_rows), count(*), count(DISTINCT id) FROM analytics.sizes"
    )[0]
    assert largest <= 4_096
    assert batches >= -(-ROWS // 4_096)  # at least as many batches as 4,096-row batches need
    assert rows == ids == ROWS


@pytest.mark.parametrize("batch_rows", [1_000, 12_345, 1_000_000])
def test_a_streamed_model_lands_every_row_exactly(events: Project, batch_rows: int) -> None:
    events.write("models/copy.py", streamed_copy(batch_rows))
    events.plan()
    differences = events.query(
        "SELECT count(*) FROM ((SELECT * FROM raw.events EXCEPT ALL SELECT * FROM analytics.copy) "
        "UNION ALL (SELECT * FROM analytics.copy EXCEPT ALL SELECT * FROM raw.events))"
    )
    assert differences == [(0,)]
    assert events.query("SELECT count(*), sum(amount) FROM analytics.copy") == events.query(
        "SELECT count(*), sum(amount) FROM raw.events"
    )
    assert events.query("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'mixmesh_staging'") == [(0,)]


# --- the write budget ---------------------------------------------------------------------


def test_sqlmesh_copies_the_staged_rows_under_the_write_budget(events: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from mixmesh.engines.duckdb import staging

    events.write("models/copy.py", streamed_copy(10_000))
    context = events.context()
    before = memory_limit(context.engine_adapter)
    threads = context.engine_adapter.fetchone("SELECT current_setting('threads')")[0]
    seen = limits_during_copy_writes(monkeypatch)
    context.plan(auto_apply=True, no_prompts=True)
    budget = staging.WRITE_BUDGET_PER_THREAD * threads
    assert seen and all(staging._bytes(limit) <= budget for limit in seen), (seen, budget)
    assert memory_limit(context.engine_adapter) == before


def test_a_small_landing_leaves_the_limit_alone(events: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from mixmesh.pymodels import landing

    events.write("models/copy.py", streamed_copy(10_000))
    context = events.context()
    before = memory_limit(context.engine_adapter)
    seen = limits_during_copy_writes(monkeypatch)
    monkeypatch.setattr(landing, "RELEASE_EVERY_BYTES", 16 * 2**20)  # the default; the rows are 1.2 MB
    context.plan(auto_apply=True, no_prompts=True)
    assert seen and set(seen) == {before}
    assert events.query("SELECT count(*) FROM analytics.copy") == [(ROWS,)]


def test_a_merged_kind_is_written_under_the_users_own_limit(events: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    events.write(
        "models/copy.py",
        streamed_copy(10_000, extra=', kind="INCREMENTAL_BY_UNIQUE_KEY", unique_key=["id"]'),
    )
    context = events.context()
    before = memory_limit(context.engine_adapter)
    seen = limits_during_copy_writes(monkeypatch)
    context.plan(auto_apply=True, no_prompts=True)
    assert seen and set(seen) == {before}
    assert events.query("SELECT count(*) FROM analytics.copy") == [(ROWS,)]


def test_a_user_limit_is_lowered_for_the_write_then_put_back(events: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = "      connector_config:\n        memory_limit: 1GB\n"
    events.write("config.yaml", config(str(events.root / "db.duckdb")).replace("      database:", connection + "      database:"))
    events.write("models/copy.py", streamed_copy(10_000))
    context = events.context()
    before = memory_limit(context.engine_adapter)
    seen = limits_during_copy_writes(monkeypatch)
    context.plan(auto_apply=True, no_prompts=True)
    assert before == "953.6 MiB" and seen and before not in seen
    assert memory_limit(context.engine_adapter) == before
    assert events.query("SELECT count(*) FROM analytics.copy") == [(ROWS,)]


def test_with_concurrent_tasks_the_limit_is_left_alone(events: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another task may run beside the model, and a lower limit would be its limit too."""
    connection = "      concurrent_tasks: 2\n"
    events.write("config.yaml", config(str(events.root / "db.duckdb")).replace("      database:", connection + "      database:"))
    events.write("models/copy.py", streamed_copy(10_000))
    context = events.context()
    before = memory_limit(context.engine_adapter)
    seen = limits_during_copy_writes(monkeypatch)
    context.plan(auto_apply=True, no_prompts=True)
    assert seen and set(seen) == {before}
    assert events.query("SELECT count(*) FROM analytics.copy") == [(ROWS,)]


def test_an_in_memory_database_keeps_its_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Evicting an in-memory database would write it to temporary files: no budget there."""
    memory = Project(tmp_path / "memory")
    memory.write("config.yaml", config("':memory:'"))
    memory.write("models/events.sql", EVENTS)
    memory.write("models/copy.py", streamed_copy(10_000))
    try:
        context = memory.context()
        before = memory_limit(context.engine_adapter)
        seen = limits_during_copy_writes(monkeypatch)
        context.plan(auto_apply=True, no_prompts=True)
        assert seen and set(seen) == {before}
        assert context.engine_adapter.fetchone("SELECT count(*), sum(amount) FROM analytics.copy") == (
            context.engine_adapter.fetchone("SELECT count(*), sum(amount) FROM raw.events")
        )
    finally:
        memory.close()


# --- failures -----------------------------------------------------------------------------


def test_a_stream_failing_midway_leaves_the_table_and_the_limit_as_they_were(events: Project) -> None:
    events.write("models/copy.py", streamed_copy(10_000))
    events.plan()
    before_rows = events.query("SELECT count(*), sum(amount) FROM analytics.copy")
    events.write("models/events.sql", EVENTS.replace("% 400", "% 401"))  # new amounts upstream
    events.write("models/copy.py", FAILING_COPY)
    context = events.context()
    limit = memory_limit(context.engine_adapter)
    from sqlmesh.utils.errors import PlanError

    with pytest.raises(PlanError):
        context.plan(auto_apply=True, no_prompts=True)
    assert memory_limit(context.engine_adapter) == limit
    assert events.query("SELECT count(*), sum(amount) FROM analytics.copy") == before_rows
    assert events.query("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'mixmesh_staging'") == [(0,)]


# --- the engine's functions on their own --------------------------------------------------


@pytest.fixture
def adapter(tmp_path: Path) -> t.Iterator[t.Any]:
    from sqlmesh.core.config.connection import DuckDBConnectionConfig

    created = DuckDBConnectionConfig(database=str(tmp_path / "db.duckdb")).create_engine_adapter()
    yield created
    created.close()


@pytest.fixture
def staging(adapter: t.Any) -> t.Iterator[str]:
    """A landing's staging table; dropping it ends the landing."""
    from sqlglot import exp

    engine = engines.engine("duckdb")
    name = engine.create_staging(adapter, {"n": exp.DataType.build("BIGINT")})
    yield name
    engine.drop_staging(adapter, name)


@pytest.mark.parametrize("limit", ["1GB", "4GB", "1.2GiB", "999MB", "-1", None])
def test_a_landing_puts_the_users_limit_back_without_drifting(adapter: t.Any, limit: t.Optional[str]) -> None:
    """DuckDB shows a limit cut to one decimal; what comes back shows the same, every time."""
    from sqlglot import exp

    engine = engines.engine("duckdb")
    adapter.execute("SET threads = 2")  # a budget of 128 MiB, below every limit here
    if limit is not None:
        adapter.execute(f"SET memory_limit = '{limit}'")
    before = memory_limit(adapter)
    for _ in range(3):  # three landings, each from the limit the last one put back
        staging = engine.create_staging(adapter, {"n": exp.DataType.build("BIGINT")})
        engine.release_memory(adapter, staging)
        with engine.write_budget(adapter, staging):
            assert memory_limit(adapter) != before
        assert memory_limit(adapter) == before
        engine.drop_staging(adapter, staging)
        assert memory_limit(adapter) == before


def test_a_user_limit_below_the_budget_is_never_raised(adapter: t.Any, staging: str) -> None:
    engine = engines.engine("duckdb")
    adapter.execute("SET memory_limit = '20MB'")
    before = memory_limit(adapter)
    with engine.write_budget(adapter, staging):
        assert memory_limit(adapter) == before
    engine.release_memory(adapter, staging)
    assert memory_limit(adapter) == before


def test_releasing_memory_keeps_every_table_readable(adapter: t.Any, staging: str) -> None:
    """Evicted blocks of a database file come back from disk when read again."""
    engine = engines.engine("duckdb")
    adapter.execute("CREATE TABLE numbers AS SELECT range AS n FROM range(2000000)")
    adapter.execute(f"INSERT INTO {staging} SELECT n FROM numbers")
    expected = adapter.fetchone("SELECT count(*), sum(n) FROM numbers")
    engine.release_memory(adapter, staging)
    assert adapter.fetchone("SELECT count(*), sum(n) FROM numbers") == expected
    with engine.write_budget(adapter, staging):
        adapter.execute(f"CREATE TABLE copied AS SELECT n FROM {staging}")
    assert adapter.fetchone("SELECT count(*), sum(n) FROM copied") == expected
