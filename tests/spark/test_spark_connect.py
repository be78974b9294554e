"""The example project through Spark Connect: a SQLMesh gateway whose Spark is a ``spark.remote``
client of the run's Connect server (tests/spark/connect.py). The project is planned with
``sqlmesh plan`` in a fresh process, its functions run on the server's Python workers, and
every model holds the rows the same project gives on DuckDB. What cannot work over Connect
fails naming the feature and the alternative.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.parity import builds
from tests.parity.comparison import differences, report
from tests.parity.test_example_parity import naive_where_duckdb_is
from tests.spark import reference
from tests.spark.connect import connect_url  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh process as a Spark Connect client (pyspark lets a process hold one kind of session).
CLIENT = """
import sys
from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from sqlglot import exp

from tests.parity import builds

action, url, argument = sys.argv[1:4]
spark = SparkSession.builder.remote(url).getOrCreate()
if action == "load":  # the raw tables, from the DuckDB file the DuckDB copy was built from
    builds.load_raw_tables(spark, Path(argument), Path.cwd() / "external_models.yaml")
elif action == "read":  # every model's table, as Parquet files
    for model in builds.MODELS:
        table = spark.table(model).toArrow()
        pq.write_table(table, Path(argument) / f"{model}.parquet")
    (Path(argument) / "zone").write_text(spark.conf.get("spark.sql.session.timeZone"))
elif action == "drop":
    for database in spark.catalog.listDatabases():
        if database.name != "default":
            spark.sql(exp.Drop(kind="SCHEMA", this=exp.to_identifier(database.name), exists=True, cascade=True).sql("spark"))
elif action == "sql":
    print(spark.sql(argument).toArrow().to_pylist())
"""


def connect_config(project: Path, url: str) -> None:
    """The project's gateway: Spark through Spark Connect. SQLMesh sets dynamic partition
    overwrite on a classic session's SparkContext, which Connect lacks: it is set here."""
    config = {
        "gateways": {
            "connect": {
                "connection": {
                    "type": "spark",
                    "config": {"spark.remote": url, "spark.sql.sources.partitionOverwriteMode": "dynamic"},
                },
                "state_connection": {"type": "duckdb", "database": str(project / "state.duckdb")},
            }
        },
        "default_gateway": "connect",
        "model_defaults": {"dialect": "duckdb", "start": "2024-01-01"},
        "disable_anonymized_analytics": True,
    }
    (project / "config.yaml").write_text(json.dumps(config, indent=2))


def run(command: t.List[str], cwd: Path, what: str, check: bool = True) -> subprocess.CompletedProcess:
    environment = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"{what} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def client(action: str, url: str, argument: str, cwd: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-c", CLIENT, action, url, argument], cwd, f"Spark Connect client ({action})")


def sqlmesh(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("sqlmesh")), "--paths", str(project), *args]
    return run(command, project, "sqlmesh " + " ".join(args), check=check)


def test_the_example_planned_through_spark_connect_holds_the_rows_it_holds_on_duckdb(
    connect_url: str, example_on_duckdb: Path, tmp_path: Path  # noqa: F811
) -> None:
    """One test, so that one xdist worker builds the example: the server's catalog is shared."""
    on_duckdb = example_on_duckdb  # the run's DuckDB build
    on_connect = builds.copy_example(tmp_path / "on_connect")
    reference.copy_artifacts(on_duckdb, on_connect)  # the same model bytes, the same pins
    connect_config(on_connect, connect_url)
    try:
        client("load", connect_url, str(on_duckdb / builds.DATABASE), on_connect)
        sqlmesh(on_connect, "plan", "--auto-apply", "--no-prompts", "--execution-time", builds.CLOCK.isoformat())
        client("read", connect_url, str(tmp_path), on_connect)
    finally:
        client("drop", connect_url, "", on_connect)

    server_zone = _SessionZone((tmp_path / "zone").read_text())
    for model in builds.MODELS:
        expected = builds.duckdb_table(on_duckdb, model)
        through_connect = naive_where_duckdb_is(pq.read_table(tmp_path / f"{model}.parquet"), expected.schema, server_zone)
        assert expected.num_rows > 0
        found = differences(expected, through_connect, names=("duckdb", "spark connect"))
        assert not found, report(model, found)


class _SessionZone:
    """The server session's time zone as read through Connect, where ``naive_where_duckdb_is``
    reads it (``session.conf.get``)."""

    def __init__(self, zone: str) -> None:
        self.conf = self
        self.zone = zone

    def get(self, key: str) -> str:
        assert key == "spark.sql.session.timeZone"
        return self.zone


# Functions over Connect, registered as a plain session registers them (mixmesh.engines.spark.register).
FUNCTIONS_CLIENT = """
import logging
import sys

from pyspark.sql import SparkSession

from mixmesh import udf
from mixmesh.engines.spark import register

logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()


@udf(on_error="null")
def inverse(x: float) -> float:
    return 1 / x


@udf
def halve(x: float) -> float:
    if x == 3:
        raise ValueError("three")
    return x / 2


inverse_sql, halve_sql = register(spark, inverse), register(spark, halve)
print("ROWS", spark.sql(f"SELECT {inverse_sql}(CAST(id AS DOUBLE)) AS y FROM range(1, 3) ORDER BY id").toArrow().column("y").to_pylist())
for sql in (f"SELECT {inverse_sql}(CAST(id AS DOUBLE)) FROM range(0, 3)", f"SELECT {halve_sql}(CAST(id AS DOUBLE)) FROM range(0, 5)"):
    try:
        spark.sql(sql).toArrow()
    except Exception as error:
        from mixmesh.engines.spark.queries import SparkResult
        try:
            SparkResult._collect(lambda: spark.sql(sql).toArrow())
        except Exception as explained:
            print("ERROR", type(explained).__name__, str(explained).splitlines()[0])
"""


def test_functions_run_over_spark_connect_and_what_cannot_work_says_so(connect_url: str, tmp_path: Path) -> None:  # noqa: F811
    output = run([sys.executable, "-c", FUNCTIONS_CLIENT, connect_url], tmp_path, "Spark Connect client (functions)")
    lines = output.stdout.splitlines()
    assert "ROWS [1.0, 0.5]" in lines
    errors = [line for line in lines if line.startswith("ERROR")]
    assert len(errors) == 2, output.stdout + output.stderr[-3000:]
    # The row that would be quarantined fails, naming the function, Connect and the alternative.
    assert errors[0].startswith("ERROR FunctionRuntimeError function 'inverse': ZeroDivisionError")
    assert "Spark Connect cannot bring quarantined rows back" in errors[0]
    assert "classic Spark session (the gateway's spark.master, without spark.remote)" in errors[0]
    # A function's own error reads as on a classic session: the function and the row.
    assert errors[1].startswith("ERROR FunctionRuntimeError function 'halve'") and "three" in errors[1]
    # The figures that cannot come back are said to be missing, once.
    assert output.stderr.count("mixmesh.engines.spark.connect: Spark Connect: the figures of functions") == 1
