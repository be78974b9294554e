"""`mixmesh demo DIR` from an installed wheel, away from any checkout: the example project ships in the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import duckdb
import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
SMALL = ["--customers", "100", "--transactions", "3000", "--events", "1000"]
# What a run leaves in the checkout's example: planted before the build, it must not ship.
LEFT_BEHIND = ("demo.duckdb", "demo.duckdb.wal", "artifacts/SHA256SUMS", ".cache/x", "logs/sqlmesh.log",
               ".mixmesh/metrics.duckdb", "python/__pycache__/training.cpython-311.pyc")  # fmt: skip

pytestmark = pytest.mark.slow


def run(command: list, cwd: Path) -> str:
    # Without PYTHONPATH: the tests' own may point at the source tree, and mixmesh must come from the wheel.
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env={**environment, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built (as pip builds one) from a copy of the sources with a used example project."""
    source = tmp_path_factory.mktemp("source") / "mixmesh"
    shutil.copytree(REPOSITORY, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "tests", "benchmarks", "docs",
    ))  # fmt: skip
    for name in LEFT_BEHIND:
        path = source / "examples" / "customer_analytics" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"left by a run")
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)], cwd=out)
    (built,) = out.glob("mixmesh-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with mixmesh installed from the wheel, its dependencies borrowed."""
    home = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True)
    python = home / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=home).strip())
    # The dependencies (SQLMesh, DuckDB, scikit-learn...) are this environment's: its
    # site-packages is added as a plain path, so the editable mixmesh it may hold (a .pth
    # file there) is not installed, and the wheel's mixmesh, earlier on the path, is the one.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", str(wheel)], cwd=home)
    return home


def test_the_wheel_ships_the_example_project_without_what_a_run_leaves(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    example = "mixmesh/cli/examples/customer_analytics/"
    shipped = {name[len(example):] for name in names if name.startswith(example)}
    assert {"config.yaml", "external_models.yaml", "python/training.py", "models/analytics/customer_risk_scoring.sql"} <= shipped
    assert not [name for name in shipped if name.startswith(("artifacts/", ".cache/", "logs/", ".mixmesh/")) or "duckdb" in name or "__pycache__" in name]
    assert "mixmesh/cli/demo_project.py" in names and "mixmesh/cli/templates/project/config.yaml" in names
    assert "mixmesh/py.typed" in names and "sqlmesh-requirements.lock" in shipped  # typed; the example's lock


def test_the_wheel_states_its_python_versions_and_that_it_is_typed(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "Classifier: Typing :: Typed" in metadata
    assert "Classifier: Programming Language :: Python :: 3.12" in metadata and "Requires-Python: >=3.10" in metadata


def test_mixmesh_demo_dir_copies_the_example_out_of_the_installed_package_and_builds_it(venv: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"  # outside the checkout, no examples/ beneath it
    elsewhere.mkdir()
    where = run([str(venv / "bin" / "python"), "-c", "import mixmesh; print(mixmesh.__file__)"], cwd=elsewhere)
    assert Path(where.strip()).is_relative_to(venv), where

    first = run([str(venv / "bin" / "mixmesh"), "demo", "shop", *SMALL, "--days", "3"], cwd=elsewhere)
    project = elsewhere / "shop"
    assert "Example project: copied into shop" in first
    assert "100 customers, 3,000 transactions, 1,000 web events over 3 days (2024-01-01 to 2024-01-03)" in first
    assert first.count("1 batch(es)") == 3 and "ML models: trained in this run and pinned." in first
    assert f"Database: {project.resolve() / 'demo.duckdb'}" in first
    for name in ("config.yaml", "python/training.py", "models/analytics/customer_ltv_prediction.py", "demo.duckdb", "artifacts/SHA256SUMS"):
        assert (project / name).is_file(), name
    with duckdb.connect(str(project / "demo.duckdb"), read_only=True) as connection:
        assert connection.execute("SELECT max(score_date) FROM analytics.customer_risk_scoring").fetchone()[0].isoformat() == "2024-01-03"

    # A second run finds the example there, copies nothing, and builds the day added.
    second = run([str(venv / "bin" / "mixmesh"), "demo", "shop", *SMALL, "--days", "4"], cwd=elsewhere)
    assert "copied" not in second and second.count("1 batch(es)") == 3
    assert "reusing the models pinned in artifacts/SHA256SUMS" in second
