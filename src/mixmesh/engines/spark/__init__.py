"""Apache Spark: functions bound as Arrow UDFs on the SparkSession SQLMesh runs queries on,
run on Spark's executors (``calls``, with the project's code shipped by ``shipping`` and their
figures sent back by ``figures``); project SQL functions as the session's temporary functions;
DataFrames a Python model returns kept in Spark. See ``mixmesh.engines.protocol``.
"""

from __future__ import annotations

from mixmesh.engines.spark.dialect import NAME, render, spark_type, sql_type_of
from mixmesh.engines.spark.errors import explain_error
from mixmesh.engines.spark.frames import conform_frame, is_engine_frame, materialized
from mixmesh.engines.spark.functions import arrow_udf, bind, bind_session, describe, register
from mixmesh.engines.spark.queries import SparkResult, dataframe, run
from mixmesh.engines.spark.sql_functions import create_sql_functions, create_sql_functions_in, temporary_function
from mixmesh.engines.spark.staging import (
    STAGING_SCHEMA,
    append_staging,
    create_staging,
    drop_staging,
    release_memory,
    write_budget,
)

FAST_PATH = False
ENGINE_FRAMES = True
OVERWRITES_PARTITIONS = True

__all__ = [
    "NAME", "FAST_PATH", "ENGINE_FRAMES", "OVERWRITES_PARTITIONS", "STAGING_SCHEMA", "SparkResult",
    "append_staging", "arrow_udf", "bind", "bind_session", "conform_frame", "create_sql_functions",
    "create_sql_functions_in", "create_staging", "dataframe", "describe", "drop_staging", "explain_error",
    "is_engine_frame", "materialized", "register", "release_memory", "render", "run", "spark_type",
    "sql_type_of", "temporary_function", "write_budget",
]
