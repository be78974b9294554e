"""The example project on a Spark standalone cluster (``tests/spark/cluster.py``): a master and
two workers, each its own JVM, whose executors run from their own folders with no copy of the
project. The project is planned by a driver in a fresh process, from the project's folder, as
a user runs `sqlmesh plan` there; its three tables equal the DuckDB build's (``tests/parity``).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pyarrow.feather as feather
import pytest

from mixmesh import load_artifact, resource
from mixmesh.runtime.resources import write_pins
from mixmesh.engines.spark import shipping
from mixmesh.runtime import resources
from tests.parity import builds
from tests.parity.comparison import differences, report
from tests.spark import reference
from tests.spark.cluster import Cluster

# The cluster's tests share one xdist group, so that one cluster serves the whole run
# (`make test` runs pytest with --dist loadgroup).

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh process from the project's folder: loads the raw rows into the cluster's
# catalog, plans the project on a gateway whose spark.master is the cluster, writes its
# tables as Arrow files, then asks the executors where they run (through a mixmesh @udf).
DRIVER = '''
import json, os, sys
from pathlib import Path

import pyarrow.feather as feather

from mixmesh import udf
from mixmesh.engines import spark as spark_engine
from mixmesh import load_artifact, resource
from mixmesh.runtime.resources import write_pins
from mixmesh.engines.spark import shipping
from mixmesh.runtime import resources
from tests.parity import builds
from tests.parity.test_example_parity import naive_where_duckdb_is
from tests.spark import session
from tests.spark.projects import SparkProject

project, raw_rows, master, output = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])


@udf
def where_am_i(n: int) -> str:
    import importlib.util, os, sys
    from pyspark.files import SparkFiles

    scratch = Path(SparkFiles.getRootDirectory())
    return json.dumps({
        "cwd": os.getcwd(),
        "cwd_entries": sorted(os.listdir(".")),
        "sys_path": sys.path,
        "project_package": importlib.util.find_spec("python") is not None,
        "mixmesh": __import__("mixmesh").__file__,
        "copies": sorted(str(p.relative_to(scratch)) for p in scratch.glob("mixmesh-project-*/**/*") if p.is_file()),
        "pid": os.getpid(),
    })


def configured(settings):
    return {**settings, "spark.master": master, "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1", "spark.executor.memory": "512m",
            "spark.executor.extraJavaOptions": session.JVM_OPTIONS}


with builds.inside(project):
    spark_project = SparkProject(project)  # its config.yaml: a spark gateway...
    config = json.loads((project / "config.yaml").read_text())
    settings = config["gateways"]["spark"]["connection"]["config"] = configured(
        config["gateways"]["spark"]["connection"]["config"])
    (project / "config.yaml").write_text(json.dumps(config))  # ... on the cluster
    session.worker_environment()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.enableHiveSupport()
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()  # the session SQLMesh's gateway gets
    spark.sparkContext.setLogLevel("ERROR")
    builds.load_raw_tables(spark, raw_rows, project / "external_models.yaml")
    try:
        spark_project.plan(execution_time=builds.CLOCK)
    finally:
        spark_project.close()
    for model in builds.MODELS:  # as the parity test reads them: naive times where DuckDB's are
        duckdb_schema = builds.duckdb_table(raw_rows.parent, model).schema
        table = naive_where_duckdb_is(builds.spark_table(spark, model), duckdb_schema, spark)
        feather.write_feather(table, str(output / f"{model}.arrow"))
    name = spark_engine.register(spark, where_am_i)
    rows = spark.sql(f"SELECT {name}(id) FROM range(0, 8, 1, 4)").collect()
    (output / "executors.json").write_text(json.dumps([json.loads(row[0]) for row in rows]))
'''


class Built(t.NamedTuple):
    duckdb: Path  # the example built on DuckDB
    tables: Path  # the cluster build's tables (<model>.arrow) and what its executors reported
    project: Path  # the copy built on the cluster
    cluster: Cluster


@pytest.fixture(scope="module")
def built(spark_cluster: Cluster, example_on_duckdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    folder = tmp_path_factory.mktemp("cluster-parity")
    on_duckdb = example_on_duckdb  # the run's DuckDB build
    on_cluster = builds.copy_example(folder / "on_cluster")
    reference.copy_artifacts(on_duckdb, on_cluster)  # the same model bytes, the same pins
    tables = folder / "tables"
    tables.mkdir()
    run_driver(on_cluster, on_duckdb / builds.DATABASE, spark_cluster.master_url, tables)
    return Built(on_duckdb, tables, on_cluster, spark_cluster)


def run_driver(project: Path, raw_rows: Path, master: str, output: Path) -> None:
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "NO_COLOR": "1",
    }
    command = [sys.executable, "-c", DRIVER, str(project), str(raw_rows), master, str(output)]
    result = subprocess.run(command, cwd=project, env=environment, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"the cluster build failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"


@pytest.mark.slow
@pytest.mark.xdist_group("spark-cluster")
@pytest.mark.parametrize("model", builds.MODELS)
def test_the_example_built_on_a_cluster_equals_the_duckdb_build(built: Built, model: str) -> None:
    on_duckdb = builds.duckdb_table(built.duckdb, model)
    on_cluster = feather.read_table(str(built.tables / f"{model}.arrow"))
    assert on_duckdb.num_rows > 0
    if "ml_risk_score" in on_duckdb.column_names:  # the trained model scored on the executors, not the rules
        assert len(set(on_duckdb.column("ml_risk_score").to_pylist())) > 50
    found = differences(on_duckdb, on_cluster)
    assert not found, report(model, found)


@pytest.mark.slow
@pytest.mark.xdist_group("spark-cluster")
def test_executors_run_from_their_own_folders_without_the_project(built: Built) -> None:
    reports = json.loads((built.tables / "executors.json").read_text())
    worker_dirs = [str(folder) for folder in built.cluster.worker_dirs()]
    project = str(built.project)
    assert len(reports) == 8
    for seen in reports:
        # Each executor's own folder under its worker's (work/worker-N/app-.../<executor id>).
        assert any(seen["cwd"].startswith(folder + os.sep) for folder in worker_dirs), seen["cwd"]
        assert not {"config.yaml", "models", "macros", "python", "artifacts"} & set(seen["cwd_entries"]), seen
        assert not seen["project_package"], "the project's `python` package is importable on an executor"
        assert not any(entry.startswith(project) for entry in seen["sys_path"]), seen["sys_path"]
        assert seen["mixmesh"].startswith(str(ROOT / "src")), seen["mixmesh"]  # installed there, as the README says
    # The trained models reached the executors as bytes, with their pins, through @resource.
    copies = {Path(name).relative_to(Path(name).parts[0]).as_posix() for seen in reports for name in seen["copies"]}
    assert {"artifacts/SHA256SUMS", "artifacts/customer_risk_model.joblib"} <= copies, copies


def test_a_resource_s_watched_files_reach_an_executor_without_the_project_and_keep_their_pins(tmp_path: Path) -> None:
    """What the cluster test relies on, piece by piece: a resource pickled as Spark pickles it,
    unpickled where the project folder does not exist, loads its artifact from the copy its
    bytes made, and the pinned hash is checked there."""
    from pyspark import cloudpickle

    project = tmp_path / "project"
    (project / "artifacts").mkdir(parents=True)
    artifact, pins = project / "artifacts" / "model.pkl", project / "artifacts" / "SHA256SUMS"
    artifact.write_bytes(pickle.dumps({"weights": [1.5, 2.5]}))
    write_pins(pins, [artifact])
    before = resources.project_root()
    resources.set_project_root(project)
    try:
        model = resource(watch=(artifact, pins))(_load_model)
        shipping.ship_project_modules()  # as binding a function does: resources travel as builders
        sent = cloudpickle.dumps(model)
        shutil.rmtree(project)  # the executor's machine has no copy of the project
        arrived = cloudpickle.loads(sent)
        copy = shipping.project_copy(str(project))
        assert copy is not None and sorted(p.name for p in (copy / "artifacts").iterdir()) == ["SHA256SUMS", "model.pkl"]
        resources.set_project_root(copy)
        assert arrived() == {"weights": [1.5, 2.5]}
        (copy / "artifacts" / "model.pkl").write_bytes(pickle.dumps("tampered"))
        with pytest.raises(resources.ArtifactError, match="failed its hash check"):
            load_artifact("artifacts/model.pkl", pins="artifacts/SHA256SUMS")
    finally:
        resources.set_project_root(before)


def _load_model() -> t.Any:
    return load_artifact("artifacts/model.pkl", pins="artifacts/SHA256SUMS")


# Regression: mixmesh's ordered ARRAY_AGG for Spark went unused when Spark SQL had been generated
# before SQLMesh was imported (sqlglot keeps each generator class's table of methods): the
# cluster driver, which loads its raw tables first, had its lists in Spark's order.
ORDER_AFTER_EARLY_SPARK_SQL = """
import sqlglot
from sqlglot import exp

import mixmesh
exp.Create(kind="SCHEMA", this=exp.to_identifier("raw"), exists=True).sql("spark")  # Spark SQL first
import sqlmesh  # then SQLMesh, and with it mixmesh's patches
print(sqlglot.transpile("SELECT ARRAY_AGG(x ORDER BY t) FROM y", read="duckdb", write="spark")[0])
"""


def test_lists_keep_their_order_on_spark_when_spark_sql_was_generated_before_sqlmesh_was_imported() -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-c", ORDER_AFTER_EARLY_SPARK_SQL], env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "ARRAY_SORT(" in result.stdout and not result.stdout.startswith("SELECT COLLECT_LIST(x)"), result.stdout
