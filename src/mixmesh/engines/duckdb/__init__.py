"""DuckDB, embedded: functions bound as Python UDFs on the connection SQLMesh runs queries on,
project SQL functions as TEMP macros, and the fast path that streams a statement's rows
through functions in large batches. See ``mixmesh.engines.protocol`` for what each name is.
"""

from __future__ import annotations

from mixmesh.engines.duckdb.dialect import NAME, render, sql_type_of
from mixmesh.engines.duckdb.errors import explain_error
from mixmesh.engines.duckdb.fast_path import execute_faster, execute_split, faster_statement, observe_statement
from mixmesh.engines.duckdb.functions import bind, bind_connection, describe, register
from mixmesh.engines.duckdb.queries import run
from mixmesh.engines.duckdb.sql_functions import (
    create_sql_functions,
    create_sql_functions_on,
    register_sql_functions,
)
from mixmesh.engines.duckdb.staging import (
    STAGING_SCHEMA,
    append_staging,
    create_staging,
    drop_dead_staging,
    drop_staging,
    drop_staging_table,
    release_memory,
    write_budget,
)

FAST_PATH = True
ENGINE_FRAMES = False
OVERWRITES_PARTITIONS = False

__all__ = [
    "NAME", "FAST_PATH", "ENGINE_FRAMES", "OVERWRITES_PARTITIONS", "STAGING_SCHEMA",
    "append_staging", "bind", "bind_connection", "create_sql_functions", "create_sql_functions_on",
    "create_staging", "describe", "drop_dead_staging", "drop_staging", "drop_staging_table",
    "execute_faster", "execute_split", "explain_error", "faster_statement", "observe_statement", "register", "register_sql_functions",
    "release_memory", "render", "run", "sql_type_of", "write_budget",
]
