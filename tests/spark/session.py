"""The Spark the tests run on: local mode, two executor threads, worker processes of our own
Python, nothing left behind (no UI, warehouse and metastore in a temporary folder)."""

from __future__ import annotations

import os
import shutil
import sys
import typing as t
from pathlib import Path

import pytest

MASTER = "local[2]"

# Every JVM of the tests (drivers, a cluster's daemons and executors, the Connect server) lives
# for seconds to minutes on small data, where the JIT's optimizing compiler costs far more CPU
# than it gives back: the client compiler alone halves a short Spark run's CPU time; one
# collector thread suits two shared cores.
JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def require_java() -> None:
    """Spark runs on a JVM: without one, fail saying so (never skip quietly)."""
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and (Path(java_home) / "bin" / "java").exists()):
        pytest.fail("the Spark tests need Java 17 or 21 (java on PATH, or JAVA_HOME); install a JDK", pytrace=False)


def settings(folder: Path) -> t.Dict[str, str]:
    """Spark settings for tests, with the warehouse (and Derby's files, if a Hive metastore
    is used) under ``folder``."""
    return {
        "spark.master": MASTER,
        "spark.app.name": "mixmesh-tests",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # SQLMesh's times are UTC; Spark's TIMESTAMP columns are read in the session's zone.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.warehouse.dir": str(folder / "warehouse"),
        "spark.driver.extraJavaOptions": f"{JVM_OPTIONS} -Dderby.system.home={folder}",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={folder / 'metastore_db'};create=true",
    }


def worker_environment() -> None:
    """Executors' Python workers run this interpreter (the one mixmesh is installed in)."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable


def start(folder: Path) -> t.Any:
    require_java()
    worker_environment()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in settings(folder).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def drop_databases(spark: t.Any) -> None:
    """What a project built in the shared SparkSession, dropped: the next starts from an empty catalog."""
    for database in spark.catalog.listDatabases():
        if database.name != "default":
            spark.sql(f"DROP DATABASE `{database.name}` CASCADE")  # names from Spark's own catalog
