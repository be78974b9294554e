"""mixmesh init: a project in the seed's layout that plans, tests and passes its own tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import duckdb
import pytest

from mixmesh.core.errors import MixmeshError
from mixmesh.cli.scaffold import TEMPLATE, ProjectExistsError, init_project, template_files

BIN = Path(sys.executable).parent

LAYOUT = {
    "config.yaml",
    "external_models.yaml",
    "seeds/customers.csv",
    "data/transactions.csv",
    "data/events.csv",
    "models/raw/customers.sql",
    "models/analytics/customer_risk_scoring.sql",
    "models/analytics/customer_ltv_prediction.py",
    "models/analytics/transaction_anomalies.sql",
    "models/analytics/real_time_personalization.sql",
    "python/shared/feature_engineering.py",
    "python/shared/personalization.py",
    "python/shared/model_loading.py",
    "python/shared/data_validation.py",
    "python/models/ltv/features.py",
    "python/models/ltv/predictor.py",
    "macros/functions.py",
    "sql/udfs/risk_scoring_functions.sql",
    "sql/udfs/feature_extraction.sql",
    "audits/sql_logic.sql",
    "tests/unit/test_python_functions.py",
    "tests/unit/test_sql_functions.py",
    "tests/integration/test_mixed_models.py",
    "tests/test_customer_risk_scoring.yaml",
    "tests/test_customer_ltv_prediction.yaml",
    "tests/test_transaction_anomalies.yaml",
    "tests/test_real_time_personalization.yaml",
    "README.md",
    ".gitignore",
}


def relative(paths: list[Path], root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in paths}


def test_init_writes_the_seed_s_layout(tmp_path: Path) -> None:
    written = init_project(tmp_path / "new" / "shop")  # missing parents are made
    root = tmp_path / "new" / "shop"
    files = relative(written, root)
    assert LAYOUT <= files
    assert files == {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in files)
    assert "gitignore" not in files
    ignored = (root / ".gitignore").read_text().split()
    assert {"*.duckdb", "logs/", ".cache/"} <= set(ignored)
    config = (root / "config.yaml").read_text()
    assert "disable_anonymized_analytics: true" in config and "dialect: duckdb" in config


def test_template_files_survive_packaging() -> None:
    # setuptools' package-data globs skip dot-files: they must be stored under another name.
    names = [part for path in template_files() for part in path.relative_to(TEMPLATE).parts]
    assert names and not [name for name in names if name.startswith(".")]


def test_a_non_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ProjectExistsError) as refused:
        init_project(tmp_path)
    assert isinstance(refused.value, MixmeshError)
    assert str(refused.value) == (
        f"{tmp_path} is not empty (it holds notes.txt); to add the project's files to it anyway, use --force "
        "(force=True): existing files are never overwritten"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_force_adds_the_project_next_to_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    written = init_project(tmp_path, force=True)
    assert LAYOUT <= relative(written, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_force_never_overwrites_and_writes_nothing_when_a_file_exists(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("mine")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_customer_risk_scoring.yaml").write_text("mine too")
    with pytest.raises(ProjectExistsError) as refused:
        init_project(tmp_path, force=True)
    message = str(refused.value)
    assert message == (
        f"{tmp_path} already holds config.yaml, tests/test_customer_risk_scoring.yaml; nothing was written: "
        "move those away or choose another directory"
    )
    assert (tmp_path / "config.yaml").read_text() == "mine"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "config.yaml",
        "tests",
        "tests/test_customer_risk_scoring.yaml",
    ]


def test_a_file_where_a_folder_goes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "models").write_text("not a folder")
    with pytest.raises(ProjectExistsError, match="already holds .*models/analytics/customer_ltv_prediction.py"):
        init_project(tmp_path, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["models"]


def test_a_file_is_not_a_project_directory(tmp_path: Path) -> None:
    (tmp_path / "shop").write_text("")
    with pytest.raises(ProjectExistsError, match="exists and is not a directory"):
        init_project(tmp_path / "shop")


SOURCE = Path(__file__).resolve().parents[1]
# What a wheel is built from (pyproject.toml names README.md and LICENSE).
PACKAGED = ("pyproject.toml", "README.md", "LICENSE", "src")
# Console scripts of the dependencies, which the fresh venv borrows (see `installed`).
SCRIPTS = {"sqlmesh": "sqlmesh.cli.main:cli", "pytest": "pytest:console_main"}


def run(command: list[str], cwd: Path, bin: Path = BIN) -> subprocess.CompletedProcess:
    """A command of a venv run from the project folder, as a user would; fails with its output."""
    # Not this session's pytest variables (the project's pytest is a run of its own), nor its
    # import path (mixmesh must come from the venv's own install).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "PYTHONPATH"}
    result = subprocess.run(
        [str(bin / command[0]), *command[1:]], cwd=cwd, capture_output=True, text=True, env={**env, "NO_COLOR": "1", "COLUMNS": "200"}
    )
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def build_wheel(into: Path) -> Path:
    """A wheel of mixmesh built from a clean copy of this source tree (no caches, no build leftovers in it)."""
    tree = into / "tree"
    for name in PACKAGED:
        source = SOURCE / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
        else:
            tree.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, tree / name)
    run([Path(sys.executable).name, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(into / "dist"), str(tree)], into)
    [wheel] = (into / "dist").glob("mixmesh-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh venv where mixmesh is installed from its wheel.

    The dependencies are this test run's own, reached through a .pth file: `venv
    --system-site-packages` would reach the base interpreter's packages, not this venv's.
    The wheel is installed before that file exists, so pip sees no other mixmesh.
    """
    folder = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(folder)
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bin = venv / "bin"
    run([Path(sys.executable).name, "-m", "pip", "--python", str(bin / "python"), "install", "--no-deps", "--no-index", str(wheel)], folder)
    site_packages = Path(run(["python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], folder, bin).stdout.strip())
    (site_packages / "_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    for name, target in SCRIPTS.items():
        module, function = target.split(":")
        script = bin / name
        script.write_text(f"#!{bin / 'python'}\nimport sys\nfrom {module} import {function}\nsys.exit({function}())\n")
        script.chmod(0o755)
    return bin


@pytest.mark.slow
def test_the_wheel_holds_the_whole_template(installed: Path, tmp_path: Path) -> None:
    where = run(["python", "-c", "import mixmesh.cli.scaffold as s; print(s.__file__); print(*s.template_files(), sep='\\n')"], tmp_path, installed)
    module, *files = where.stdout.splitlines()
    assert Path(module).is_relative_to(installed.parent / "lib")  # the wheel's, not the source tree's
    packaged = {Path(file).relative_to(Path(module).parent / "templates" / "project").as_posix() for file in files}
    assert packaged == {path.relative_to(TEMPLATE).as_posix() for path in template_files()}


@pytest.mark.slow
def test_the_new_project_plans_tests_and_passes_its_own_tests(installed: Path, tmp_path: Path) -> None:
    # From the wheel, as users get mixmesh: what the project needs must be packaged.
    project = tmp_path / "shop"
    created = run(["mixmesh", "init", "shop"], tmp_path, installed)
    assert "Created a mixmesh project in shop" in created.stdout and "sqlmesh plan" in created.stdout
    refused = subprocess.run([str(installed / "mixmesh"), "init", "shop"], cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode == 1 and "Error: shop is not empty" in refused.stderr

    planned = run(["sqlmesh", "plan", "--auto-apply", "--no-prompts"], project, installed)
    assert "audits passed 2" in planned.stdout  # audits/sql_logic.sql and the unique grains
    tested = run(["sqlmesh", "test"], project, installed)
    assert "Successfully Ran `4` Tests" in tested.stdout + tested.stderr
    pytested = run(["python", "-m", "pytest", "-p", "no:cacheprovider", "tests"], project, installed)
    assert "18 passed" in pytested.stdout

    with duckdb.connect(str(project / "db.duckdb"), read_only=True) as connection:
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
    ]


def test_the_readme_counts_the_template_s_files() -> None:
    section = (SOURCE / "docs" / "quickstart.md").read_text().split("### A new project: `mixmesh init`")[1].split("\n## ")[0]
    assert f"({len(template_files())} files;" in section
