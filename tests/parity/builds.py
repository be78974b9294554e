"""The example project built twice from the same raw rows and the same trained models: once on
a DuckDB gateway, once on a Spark gateway (the tests' local[2] session).

Both copies are planned in this process with the same execution time, the day after the
period, as ``mixmesh demo`` plans (its clock); each from its own folder, the working directory
SQLMesh runs a project from (relative paths such as the ML artifacts' are taken against it).
"""

from __future__ import annotations

import contextlib
import datetime
import shutil
import sys
import typing as t
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlglot import exp

from mixmesh.cli import demo
from mixmesh.cli.demo_data import SEED, generate
from tests.projects import forget_project_modules
from tests.spark.projects import SparkProject

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "customer_analytics"
# Small, yet enough for the three ML models to train (each class of each label present).
SIZES = {"customers": 120, "transactions": 4_000, "events": 1_500, "days": 4}
START = demo.START
END = START + datetime.timedelta(days=SIZES["days"] - 1)
CLOCK = datetime.datetime.combine(END + datetime.timedelta(days=1), datetime.time())
MODELS = demo.MODELS
RAW = "raw"
DATABASE = demo.DATABASE  # the example's DuckDB file, relative to the project


def copy_example(destination: Path) -> Path:
    """The example as a fresh checkout holds it: no database, no artifacts, no tests."""
    ignored = shutil.ignore_patterns("*.duckdb*", "artifacts", ".cache", "logs", "__pycache__", "tests")
    shutil.copytree(EXAMPLE, destination, ignore=ignored)
    return destination


@contextlib.contextmanager
def inside(project: Path) -> t.Iterator[None]:
    """Run from the project's folder with its modules importable, as SQLMesh's CLI would; the
    project's modules and path entries are forgotten afterwards (the other copy has the same names)."""
    path = list(sys.path)
    sys.path.insert(0, str(project))
    try:
        with contextlib.chdir(project):
            yield
    finally:
        sys.path[:] = path
        forget_project_modules()


def generate_and_train(project: Path) -> None:
    """The raw tables in the project's DuckDB file, and the ML models trained and pinned on them."""
    with inside(project), duckdb.connect(DATABASE) as connection:
        generate(connection, end_date=END, seed=SEED, **SIZES)
        from python import training

        training.train_all(connection, START, END)


def build_on_duckdb(project: Path) -> None:
    from sqlmesh import Context

    with inside(project):
        context = Context(paths=str(project))
        try:
            context.plan(auto_apply=True, no_prompts=True, execution_time=CLOCK)
        finally:
            context.close()


def build_on_spark(project: Path, spark: t.Any, raw_rows: Path) -> None:
    """Load the raw rows of the DuckDB file ``raw_rows`` into Spark, then plan the project there."""
    load_raw_tables(spark, raw_rows, project / "external_models.yaml")
    spark_project = SparkProject(project)  # its config.yaml: a spark gateway, the same model defaults
    with inside(project):
        try:
            spark_project.plan(execution_time=CLOCK)
        finally:
            spark_project.close()


def load_raw_tables(spark: t.Any, raw_rows: Path, declarations: Path) -> None:
    """Each raw table in Spark with the columns external_models.yaml declares, in Spark's types
    (DuckDB's TIMESTAMP, a time without a zone, is Spark's TIMESTAMP_NTZ)."""
    spark.sql(exp.Create(kind="SCHEMA", this=exp.to_identifier(RAW), exists=True).sql("spark"))
    with duckdb.connect(str(raw_rows), read_only=True) as connection:
        for name, columns in declared_columns(declarations).items():
            rows = connection.sql(exp.select("*").from_(exp.to_table(name)).sql("duckdb")).to_arrow_table()
            frame = spark.createDataFrame(rows, schema=spark_schema(columns))
            frame.write.saveAsTable(name)


def declared_columns(declarations: Path) -> t.Dict[str, t.Dict[str, exp.DataType]]:
    from sqlmesh.utils.yaml import load

    return {
        table["name"]: {column: exp.DataType.build(kind, dialect="duckdb") for column, kind in table["columns"].items()}
        for table in load(declarations)
    }


def spark_schema(columns: t.Mapping[str, exp.DataType]) -> str:
    return ", ".join(f"`{name}` {kind.sql('spark')}" for name, kind in columns.items())


def duckdb_table(project: Path, model: str) -> pa.Table:
    with duckdb.connect(str(project / DATABASE), read_only=True) as connection:
        return connection.sql(exp.select("*").from_(exp.to_table(model)).sql("duckdb")).to_arrow_table()


def spark_table(spark: t.Any, model: str) -> pa.Table:
    return spark.table(model).toArrow()
