"""mixmesh init: a project in the seed's layout that plans, tests and passes its own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixmesh.core.errors import MixmeshError
from mixmesh.cli.scaffold import TEMPLATE, ProjectExistsError, init_project, template_files

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
# From a wheel, as users get mixmesh: tests/test_demo_wheel.py (one wheel and venv for both).


def test_the_readme_counts_the_template_s_files() -> None:
    section = (SOURCE / "docs" / "quickstart.md").read_text().split("### A new project: `mixmesh init`")[1].split("\n## ")[0]
    assert f"({len(template_files())} files;" in section
