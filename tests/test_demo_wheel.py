"""mixmesh from an installed wheel, away from any checkout: `mixmesh init`, then `sqlmesh plan`,
`sqlmesh test`, the project's pytest and `sqlmesh ui`; `mixmesh demo DIR`, whose example project
ships in the package.

By default the wheel goes into a venv of this interpreter that borrows this environment's
dependencies, which is cheap. With ``MIXMESH_WHEEL_PYTHON`` naming another interpreter (`make
smoke` names each Python it finds), the venv is made with that one and the wheel is installed
with its extras and their dependencies from the package index: a user's fresh install.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import duckdb
import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
LOCK = REPOSITORY / "examples" / "customer_analytics" / "sqlmesh-requirements.lock"
# The interpreter of a fresh install; unset, this one with borrowed dependencies.
FRESH_PYTHON = os.environ.get("MIXMESH_WHEEL_PYTHON")
SMALL = ["--customers", "100", "--transactions", "3000", "--events", "1000"]
# What a run leaves in the checkout's example: planted before the build, it must not ship.
LEFT_BEHIND = ("demo.duckdb", "demo.duckdb.wal", "artifacts/SHA256SUMS", ".cache/x", "logs/sqlmesh.log",
               ".mixmesh/metrics.duckdb", "python/__pycache__/training.cpython-311.pyc")  # fmt: skip
# Console scripts of the dependencies, which a venv borrowing them has not got (see `venv`).
SCRIPTS = {"sqlmesh": "sqlmesh.cli.main:cli", "pytest": "pytest:console_main"}
UI_START_SECONDS = 120  # the UI loads the project before it answers

# One worker builds the wheel and its venv once: tests/conftest.py groups the module's tests.
pytestmark = pytest.mark.slow


def run(command: list, cwd: Path) -> str:
    """A command run as a user runs it; fails with its output."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=user_environment())
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def user_environment() -> dict:
    # Without PYTHONPATH (the tests' own may point at the source tree, and mixmesh must come
    # from the wheel), nor this session's pytest variables (a project's pytest is its own run).
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PYTEST_")}
    return {**environment, "COLUMNS": "200", "NO_COLOR": "1"}


# Left out of the copy: anywhere, and at the top only (the template's and example's tests/ ship).
NOT_BUILT_FROM = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache")
NOT_BUILT_FROM_TOP = {"tests", "benchmarks", "docs"}


def not_built_from(folder: str, names: list) -> set:
    top = NOT_BUILT_FROM_TOP & set(names) if Path(folder) == REPOSITORY else set()
    return set(NOT_BUILT_FROM(folder, names)) | top


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built (as pip builds one) from a copy of the sources with a used example project."""
    source = tmp_path_factory.mktemp("source") / "mixmesh"
    shutil.copytree(REPOSITORY, source, ignore=not_built_from)
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
    """A fresh virtual environment with mixmesh installed from the wheel."""
    home = tmp_path_factory.mktemp("venv") / "env"
    if FRESH_PYTHON:
        install_fresh(Path(FRESH_PYTHON), wheel, home)
    else:
        install_borrowing_dependencies(wheel, home)
    return home


def install_fresh(python: Path, wheel: Path, home: Path) -> None:
    """The wheel with the extras a user installs, every dependency from the index (with the
    example's lock as constraints, as `make test` installs), and the example's test library."""
    run([str(python), "-m", "venv", str(home)], cwd=home.parent)
    run([str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{wheel}[demo,testing,web]",
         "hypothesis>=6.100,<7", "-c", str(LOCK)], cwd=home.parent)  # fmt: skip


def install_borrowing_dependencies(wheel: Path, home: Path) -> None:
    """The dependencies (SQLMesh, DuckDB, scikit-learn...) are this environment's: its
    site-packages is added as a plain path, so the editable mixmesh it may hold (a .pth file
    there) is not installed, and the wheel's mixmesh, earlier on the path, is the one."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True)
    python = home / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=home).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", str(wheel)], cwd=home)
    for name, target in SCRIPTS.items():
        module, function = target.split(":")
        script = home / "bin" / name
        script.write_text(f"#!{python}\nimport sys\nfrom {module} import {function}\nsys.exit({function}())\n")
        script.chmod(0o755)


@pytest.fixture(scope="module")
def new_project(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`mixmesh init shop` from the wheel, planned into db.duckdb, outside any checkout."""
    folder = tmp_path_factory.mktemp("init")
    created = run([str(venv / "bin" / "mixmesh"), "init", "shop"], cwd=folder)
    assert "Created a mixmesh project in shop" in created and "pip install 'mixmesh[testing]'" in created
    planned = run([str(venv / "bin" / "sqlmesh"), "plan", "--auto-apply", "--no-prompts"], cwd=folder / "shop")
    assert "audits passed 2" in planned  # audits/sql_logic.sql and the unique grains
    return folder / "shop"


def test_the_wheel_ships_the_example_project_without_what_a_run_leaves(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    example = "mixmesh/cli/examples/customer_analytics/"
    shipped = {name[len(example):] for name in names if name.startswith(example)}
    assert {"config.yaml", "external_models.yaml", "python/training.py", "models/analytics/customer_risk_scoring.sql"} <= shipped
    assert not [name for name in shipped if name.startswith(("artifacts/", ".cache/", "logs/", ".mixmesh/")) or "duckdb" in name or "__pycache__" in name]
    assert "mixmesh/cli/demo_project.py" in names and "mixmesh/cli/templates/project/config.yaml" in names
    assert "mixmesh/py.typed" in names and "sqlmesh-requirements.lock" in shipped  # typed; the example's lock


def test_the_wheel_states_its_python_versions_that_it_is_typed_and_its_extras(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "Classifier: Typing :: Typed" in metadata
    assert "Classifier: Programming Language :: Python :: 3.12" in metadata and "Requires-Python: >=3.10" in metadata
    requirements = [line.removeprefix("Requires-Dist: ") for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    # What `mixmesh init`'s projects tell users to install, and what `sqlmesh ui` needs.
    assert [r for r in requirements if r.startswith("pytest") and 'extra == "testing"' in r]
    assert [r for r in requirements if r.startswith("sqlmesh[web]") and 'extra == "web"' in r]


def test_the_wheel_holds_the_whole_template(venv: Path, tmp_path: Path) -> None:
    from mixmesh.cli.scaffold import TEMPLATE, template_files

    listing = "import mixmesh.cli.scaffold as s; print(s.__file__); print(*s.template_files(), sep='\\n')"
    module, *files = run([str(venv / "bin" / "python"), "-c", listing], cwd=tmp_path).splitlines()
    assert Path(module).is_relative_to(venv)  # the wheel's, not the source tree's
    packaged = {Path(file).relative_to(Path(module).parent / "templates" / "project").as_posix() for file in files}
    assert packaged == {path.relative_to(TEMPLATE).as_posix() for path in template_files()}


def test_the_new_project_plans_tests_and_passes_its_own_tests(venv: Path, new_project: Path) -> None:
    refused = subprocess.run([str(venv / "bin" / "mixmesh"), "init", "shop"], cwd=new_project.parent, capture_output=True, text=True)
    assert refused.returncode == 1 and "Error: shop is not empty" in refused.stderr

    tested = subprocess.run([str(venv / "bin" / "sqlmesh"), "test"], cwd=new_project, capture_output=True, text=True, env=user_environment())
    assert tested.returncode == 0 and "Successfully Ran `4` Tests" in tested.stdout + tested.stderr, tested.stdout + tested.stderr
    # `pytest`, the command the project's README gives (from the testing extra on a fresh install).
    pytested = run([str(venv / "bin" / "pytest"), "-p", "no:cacheprovider", "tests"], cwd=new_project)
    assert "18 passed" in pytested

    with duckdb.connect(str(new_project / "db.duckdb"), read_only=True) as connection:
        risk = connection.sql(
            "SELECT customer_id, score_date::VARCHAR, transaction_count, total_amount, ml_risk_score, risk_tier "
            "FROM analytics.customer_risk_scoring ORDER BY ALL"
        ).fetchall()
        ltv = connection.sql(
            "SELECT customer_id, transaction_count, predicted_ltv FROM analytics.customer_ltv_prediction ORDER BY ALL"
        ).fetchall()
        patterns = connection.sql(
            "SELECT spend_pattern, count(*), list(transaction_id ORDER BY transaction_id) "
            "FROM analytics.transaction_anomalies GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        sessions = connection.sql(
            "SELECT session_id, session_start::VARCHAR, total_events, session_type, ml_engagement_score, "
            "recommended_content, show_premium_offer FROM analytics.real_time_personalization ORDER BY ALL"
        ).fetchall()
    assert risk == [
        ("C001", "2024-01-01", 3, 137.75, 0.0, "LOW"),
        ("C001", "2024-01-02", 2, 73.0, 0.2, "LOW"),
        ("C002", "2024-01-01", 4, 2410.25, 0.8, "HIGH"),
        ("C003", "2024-01-02", 4, 6520.0, 0.5, "MEDIUM"),
        ("C004", "2024-01-03", 1, 65.0, 0.5, "MEDIUM"),
    ]
    assert ltv == [("C001", 5, 632.25), ("C002", 4, 7230.75), ("C003", 4, 26080.0), ("C004", 1, 130.0)]
    assert patterns == [
        ("no_history", 4, ["T001", "T004", "T010", "T014"]),
        ("normal", 9, ["T002", "T003", "T005", "T006", "T008", "T009", "T011", "T012", "T013"]),
        ("spike", 1, ["T007"]),
    ]
    assert sessions == [
        ("S001", "2024-01-01 09:00:00", 7, "interested", 0.961488,
         ["cart_reminder", "limited_discount", "premium_offer", "similar_products"], True),
        ("S002", "2024-01-01 09:30:00", 4, "converter", 0.539915, ["order_follow_up", "cross_sell"], False),
        # from 10:58 to 11:10: one session, in the hour it starts
        ("S003", "2024-01-01 10:58:00", 5, "browsing", 0.316479, ["top_products", "category_guides"], False),
        ("S004", "2024-01-02 14:00:00", 1, "casual", 0.154465, ["welcome_content"], False),
        ("S005", "2024-01-02 20:15:00", 2, "casual", 0.29111, ["welcome_content"], False),
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def wait_until_answering(server: subprocess.Popen, url: str) -> str:
    """The first answer of ``url``; fails with the server's output if it exits or never answers."""
    deadline = time.monotonic() + UI_START_SECONDS
    while time.monotonic() < deadline and server.poll() is None:
        try:
            return get(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    server.kill()
    output, _ = server.communicate()
    pytest.fail(f"sqlmesh ui never answered {url} (exit code {server.returncode}):\n{output}")


def test_sqlmesh_ui_starts_and_its_api_lists_the_project_s_models(venv: Path, new_project: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [str(venv / "bin" / "sqlmesh"), "ui", "--host", "127.0.0.1", "--port", str(port)],
        cwd=new_project, env=user_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert json.loads(wait_until_answering(server, f"http://127.0.0.1:{port}/health")) == "ok"
        # The API's models come from the project loaded with mixmesh: its Python model and the
        # SQL models calling @udf functions, the latter only loadable through mixmesh's macros.
        models = {model["name"]: model for model in json.loads(get(f"http://127.0.0.1:{port}/api/models"))}
        assert set(models) == {
            "analytics.customer_ltv_prediction", "analytics.customer_risk_scoring",
            "analytics.real_time_personalization", "analytics.transaction_anomalies", "raw.customers",
            "raw.events", "raw.transactions",  # external_models.yaml
        }  # fmt: skip
        assert models["analytics.customer_ltv_prediction"]["type"] == "python"
    finally:
        server.terminate()
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


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


@pytest.mark.skipif(not FRESH_PYTHON, reason="`make test` runs the example's tests from the checkout")
def test_the_shipped_example_project_passes_its_own_tests(venv: Path, tmp_path: Path) -> None:
    # A copy of the example as the package ships it: its tests expect no trained models, as
    # in the checkout, so not the folder the demo trained them in.
    shipped = run([str(venv / "bin" / "python"), "-c", "import mixmesh.cli as c, os; print(os.path.dirname(c.__file__))"], cwd=tmp_path)
    project = tmp_path / "customer_analytics"
    shutil.copytree(Path(shipped.strip()) / "examples" / "customer_analytics", project)
    tested = run([str(venv / "bin" / "pytest"), "-p", "no:cacheprovider", "-q", "tests"], cwd=project)
    assert " passed" in tested and " skipped" not in tested, tested
