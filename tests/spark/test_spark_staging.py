"""A crashed Spark run of a Python model leaves its staging table in the catalog; the next run
of that model drops it, and leaves every other model's alone (that model may be running from
another driver right now), as well as those of a run of this model that is still alive."""

from __future__ import annotations

import os
import subprocess
import sys
import typing as t

import pytest

from mixmesh.engines.spark import staging
from tests.spark.projects import SparkProject

pytestmark = pytest.mark.slow

COPY = '''
import pandas as pd

from mixmesh import ModelKind, python_model


@python_model(name="analytics.copy", kind=ModelKind.FULL, columns={"n": "BIGINT"})
def copy(context, **kwargs):
    yield context.sql("SELECT n FROM (VALUES (0), (1), (2)) AS t(n)").to_pandas()
'''


def staging_tables(spark: t.Any) -> t.Set[str]:
    return {f"{staging.STAGING_SCHEMA}.{row[1]}" for row in spark.sql(f"SHOW TABLES IN {staging.STAGING_SCHEMA}").collect()}


def left_by(spark: t.Any, model: str, pid: int) -> str:
    """A staging table as a run of ``model`` in process ``pid`` names and creates it."""
    name = staging.staging_name(model, pid=pid)
    spark.sql(f"CREATE TABLE {name} (n BIGINT)")
    return name


def ended_process() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_the_next_run_of_a_model_drops_what_its_crashed_runs_left_and_nothing_else(
    spark: t.Any, spark_project: SparkProject
) -> None:
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {staging.STAGING_SCHEMA}")
    dead = ended_process()
    crashed = left_by(spark, "analytics.copy", dead)
    other_model = left_by(spark, "analytics.other", dead)
    still_running = left_by(spark, "analytics.copy", os.getppid())  # a live process: its run goes on
    unknown = f"{staging.STAGING_SCHEMA}.s_{dead}_{'0' * 32}"  # a plain session's: no model named
    spark.sql(f"CREATE TABLE {unknown} (n BIGINT)")
    try:
        spark_project.write("models/copy.py", COPY)
        spark_project.plan()
        assert spark_project.fetch("SELECT n FROM analytics.copy ORDER BY n") == [[0], [1], [2]]
        # Other tests share the session's staging schema: only the tables made here are judged.
        made_here = {crashed, other_model, still_running, unknown}
        assert staging_tables(spark) & made_here == {other_model, still_running, unknown}
    finally:
        for name in (other_model, still_running, unknown):
            spark.sql(f"DROP TABLE IF EXISTS {name}")


def test_only_names_mixmesh_gives_a_model_s_staging_tables_are_taken_for_dead(spark: t.Any) -> None:
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {staging.STAGING_SCHEMA}")
    prefix = staging.staging_name("analytics.mine").split(".")[1].rsplit("_", 2)[0]  # s_<model>_<host>
    users = f"{staging.STAGING_SCHEMA}.{prefix}_notapid_kept"
    spark.sql(f"CREATE TABLE {users} (n BIGINT)")
    try:
        assert staging.drop_dead_staging(spark, "analytics.mine") == []
        assert users in staging_tables(spark)
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {users}")
