"""The packages a model's code and artifacts need are in its fingerprint, at their significant
version: a new major version re-plans exactly the models using the package."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from mixmesh.errors import SettingError
from mixmesh.runtime.package_versions import imported_modules, packages_used, pickled_modules, significant
from tests.projects import Project

FUNCTIONS = '''
from mixmesh import udf


@udf
def scaled(x: float) -> float:
    import fakescore  # imported inside the function: SQLMesh's own requirements miss it

    return fakescore.SCALE * x
'''


def install_fake(site: Path, version: str) -> None:
    """A real installed distribution, as pip leaves one: the package and its dist-info."""
    for old in site.glob("fakescore-*.dist-info"):
        shutil.rmtree(old)
    (site / "fakescore").mkdir(parents=True, exist_ok=True)
    (site / "fakescore" / "__init__.py").write_text("SCALE = 2.0\n")
    info = site / f"fakescore-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakescore\nVersion: {version}\n")
    (info / "top_level.txt").write_text("fakescore\n")


def plan_shown(project: Project) -> str:
    result = project.cli("plan", "--no-prompts", check=False)
    assert result.returncode == 0 or "Aborted!" in result.stderr, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def versioned(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    site = tmp_path / "site"
    install_fake(site, "1.4.0")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("COLUMNS", "200")
    project.site = site  # type: ignore[attr-defined]
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/scaled.sql", """
        MODEL (name analytics.scaled, kind FULL);
        SELECT @scaled(x) AS y FROM (SELECT range::DOUBLE AS x FROM range(3))
    """)
    project.write("models/plain.sql", """
        MODEL (name analytics.plain, kind FULL);
        SELECT 1 AS x
    """)
    project.cli("plan", "--auto-apply", "--no-prompts")
    return project


def test_a_new_major_version_replans_the_models_using_the_package(versioned: Project) -> None:
    install_fake(versioned.site, "2.0.0")  # type: ignore[attr-defined]
    shown = plan_shown(versioned)
    assert "analytics.scaled" in shown and "analytics.plain" not in shown
    assert "-__mixmesh_packages__ = {'fakescore': '1'" in shown
    assert "+__mixmesh_packages__ = {'fakescore': '2'" in shown


def test_a_new_minor_version_changes_nothing_unless_asked(versioned: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake(versioned.site, "1.5.0")  # type: ignore[attr-defined]
    assert "No changes to plan" in plan_shown(versioned)
    monkeypatch.setenv("MIXMESH_PACKAGE_VERSIONS", "fakescore=minor")
    assert "+__mixmesh_packages__ = {'fakescore': '1.5'" in plan_shown(versioned)


def test_imports_anywhere_in_the_code_count() -> None:
    source = "import numpy as np\nfrom a.b import c\n\ndef f():\n    from sklearn.ensemble import X\n    from . import rel\n"
    assert imported_modules(source) == {"numpy", "a.b", "sklearn.ensemble"}
    assert imported_modules("def broken(:") == set()


class Scaler:  # pickled by reference to this module's name, as a trained model's class is
    pass


def test_a_pickles_classes_name_their_modules_without_unpickling(tmp_path: Path) -> None:
    import numpy as np

    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        path = tmp_path / f"model-{protocol}.pkl"
        path.write_bytes(pickle.dumps({"scaler": Scaler(), "weights": np.arange(3)}, protocol=protocol))
        found = pickled_modules(path)
        assert __name__ in found and any(module.startswith("numpy") for module in found)
    assert "numpy" in packages_used([], [tmp_path / f"model-{pickle.HIGHEST_PROTOCOL}.pkl"])
    (tmp_path / "not.pkl").write_bytes(b"not a pickle at all")
    assert pickled_modules(tmp_path / "not.pkl") == set() and pickled_modules(tmp_path / "absent.pkl") == set()


@pytest.mark.parametrize("version, precision, expected", [
    ("2.1.3", "auto", "2"), ("0.24.1", "auto", "0.24"), ("1.5.2+cpu", "auto", "1"),
    ("2.1.3", "minor", "2.1"), ("2.1.3", "patch", "2.1.3"), ("2.1.3rc1", "exact", "2.1.3rc1"),
])
def test_the_significant_version(version: str, precision: str, expected: str) -> None:
    assert significant(version, precision) == expected


def test_tools_and_ignored_packages_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    assert packages_used(["import sqlmesh\nimport mixmesh\nimport sqlglot"]) == {}
    assert "numpy" in packages_used(["import numpy"])
    monkeypatch.setenv("MIXMESH_PACKAGE_VERSIONS", "numpy=ignore")
    assert "numpy" not in packages_used(["import numpy"])
    monkeypatch.setenv("MIXMESH_PACKAGE_VERSIONS", "numpy=newest")
    with pytest.raises(SettingError, match=r"MIXMESH_PACKAGE_VERSIONS='numpy=newest': each item is package=precision"):
        packages_used(["import numpy"])


def test_installed_versions_differing_from_the_lock_are_told(versioned: Project) -> None:
    versioned.write("sqlmesh-requirements.lock", "fakescore==1.3.0\nno-such-package-xyz==1.0\n")
    result = versioned.cli("plan", "--no-prompts", check=False)
    told = " ".join(result.stderr.split())
    assert ("mixmesh: fakescore 1.4.0 is installed, where sqlmesh-requirements.lock locks fakescore==1.3.0: results "
            "may differ from those of the locked environment") in told
    assert "no-such-package-xyz is not installed, where sqlmesh-requirements.lock locks no-such-package-xyz==1.0" in told
    versioned.write("sqlmesh-requirements.lock", "fakescore==1.4.0\n")
    assert "sqlmesh-requirements.lock locks" not in versioned.cli("plan", "--no-prompts", check=False).stderr


def test_the_example_lock_is_what_is_installed() -> None:
    from mixmesh.runtime.package_versions import lock_differences

    example = Path(__file__).resolve().parents[1] / "examples" / "customer_analytics"
    # `make` installs with the lock as constraints: a difference means the lock is stale.
    assert lock_differences(example) == []


def test_init_locks_the_installed_versions_of_what_the_template_imports(tmp_path: Path) -> None:
    from importlib import metadata

    from mixmesh.cli.scaffold import init_project
    from mixmesh.runtime.package_versions import LOCK_FILE, lock_differences

    written = init_project(tmp_path / "new")
    lock = tmp_path / "new" / LOCK_FILE
    assert lock in written
    locked = dict(line.split("==") for line in lock.read_text().splitlines())
    assert {"numpy", "pandas", "pyarrow"} <= set(locked) and not {"mixmesh", "sqlmesh"} & set(locked)
    assert locked["numpy"] == metadata.version("numpy") and lock_differences(tmp_path / "new") == []
