"""``MIXMESH_*`` settings: read from the environment, the SQLMesh config or pyproject.toml, in
that order; a value it cannot mean fails the command, naming the setting and where it is set."""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

import pytest

from mixmesh.core import settings
from mixmesh.errors import SettingError
from tests.projects import Project


@pytest.mark.parametrize("given, expected", [("on", True), ("TRUE", True), (" 1 ", True), ("no", False),
                                             ("Off", False), ("", True)])
def test_a_switch_reads_the_usual_spellings(given: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXMESH_MONITOR", given)
    assert settings.switch("MIXMESH_MONITOR", default=True) is expected


def test_an_unset_switch_is_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIXMESH_MONITOR_TESTS", raising=False)
    assert settings.switch("MIXMESH_MONITOR_TESTS", default=False) is False


def test_a_run_with_a_meaningless_monitor_switch_fails_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(tmp_path)
    project.write("macros/functions.py", """
        from mixmesh import udf

        @udf
        def twice(x: float) -> float:
            return 2 * x
    """)
    project.write("models/one.sql", """
        MODEL (name analytics.one, kind FULL);
        SELECT @twice(1.0) AS x
    """)
    monkeypatch.setenv("MIXMESH_MONITOR", "maybe")
    run = project.cli("plan", "--auto-apply", "--no-prompts", check=False)
    assert run.returncode != 0
    assert "MIXMESH_MONITOR='maybe' is not a switch" in run.stdout + run.stderr


def test_a_meaningless_switch_raises_a_setting_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXMESH_MONITOR_TESTS", "sometimes")
    with pytest.raises(SettingError, match="MIXMESH_MONITOR_TESTS='sometimes' is not a switch"):
        settings.switch("MIXMESH_MONITOR_TESTS", default=False)


# ------------------------------------------------------------------ where a setting is read from


@pytest.fixture
def forget_the_project() -> t.Iterator[None]:
    settings.use_project(None)
    yield
    settings.use_project(None)


def _pyproject(root: Path, table: str) -> None:
    (root / "pyproject.toml").write_text(f"[project]\nname = 'p'\n\n[tool.mixmesh]\n{table}\n")


@pytest.mark.usefixtures("forget_the_project")
def test_the_environment_wins_over_the_sqlmesh_config_over_pyproject_over_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIXMESH_PARALLEL", raising=False)
    settings.use_project(tmp_path)
    assert settings.get("MIXMESH_PARALLEL", "auto") == "auto" and settings.named("MIXMESH_PARALLEL") == "MIXMESH_PARALLEL"
    _pyproject(tmp_path, 'parallel = "threads"\nmonitor_tests = true\nartifact_dirs = ["a", "b"]')
    assert settings.get("MIXMESH_PARALLEL") == "threads"
    assert settings.named("MIXMESH_PARALLEL") == f"parallel in [tool.mixmesh] of {tmp_path / 'pyproject.toml'}"
    assert settings.switch("MIXMESH_MONITOR_TESTS", default=False) is True  # TOML's true is on
    assert settings.get("MIXMESH_ARTIFACT_DIRS") == os.pathsep.join(["a", "b"])
    settings.use_project(tmp_path, {"mixmesh": {"parallel": "auto"}})
    assert settings.get("MIXMESH_PARALLEL") == "auto"
    assert settings.named("MIXMESH_PARALLEL") == f"parallel in variables: mixmesh: of {tmp_path / 'config.yaml'}"
    monkeypatch.setenv("MIXMESH_PARALLEL", "threads")
    assert settings.get("MIXMESH_PARALLEL") == "threads" and settings.named("MIXMESH_PARALLEL") == "MIXMESH_PARALLEL"
    monkeypatch.setenv("MIXMESH_PARALLEL", "")  # empty is unset, as before
    assert settings.get("MIXMESH_PARALLEL") == "auto"
    listed = {setting.variable: (value, source) for setting, value, source in settings.resolved()}
    assert listed["MIXMESH_PARALLEL"][0] == "auto" and listed["MIXMESH_FAST_PATH"] == ("auto", "default")


@pytest.mark.usefixtures("forget_the_project")
def test_a_bad_value_in_a_file_names_the_key_and_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("MIXMESH_MONITOR", "MIXMESH_PARALLEL"):
        monkeypatch.delenv(variable, raising=False)
    _pyproject(tmp_path, 'monitor = "maybe"\nparallel = "thread"')
    settings.use_project(tmp_path)
    with pytest.raises(SettingError, match=r"monitor = 'maybe' in \[tool.mixmesh\] of .*pyproject.toml is not a switch"):
        settings.switch("MIXMESH_MONITOR", default=True)
    from mixmesh.runtime import parallel

    with pytest.raises(parallel.ParallelSettingError, match=r"parallel in \[tool.mixmesh\] of .*pyproject.toml must be one of"):
        parallel.setting()


@pytest.mark.usefixtures("forget_the_project")
def test_an_unknown_key_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    _pyproject(tmp_path, 'fastpath = "off"')
    settings.use_project(tmp_path)
    with pytest.raises(SettingError, match=r"fastpath in \[tool.mixmesh\] of .*: not a mixmesh setting; the settings are "
                                           r"artifact_dirs, fast_path,"):
        settings.get("MIXMESH_FAST_PATH")
    with pytest.raises(SettingError, match="metric in variables: mixmesh: of the SQLMesh config"):
        settings.use_project(tmp_path, {"mixmesh": {"metric": "off"}})
    with pytest.raises(SettingError, match="'mixmesh' of .* must be a mapping"):
        settings.use_project(tmp_path, {"mixmesh": "off"})


@pytest.mark.slow
@pytest.mark.usefixtures("forget_the_project")
def test_sqlmesh_loading_a_project_puts_its_settings_in_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIXMESH_QUARANTINE_MAX_ROWS", raising=False)
    project = Project(tmp_path)
    with (tmp_path / "config.yaml").open("a") as config:
        config.write("variables:\n  mixmesh:\n    quarantine_max_rows: 7\n")
    project.write("models/one.sql", "MODEL (name analytics.one, kind FULL); SELECT 1 AS x")
    project.context()
    project.close()
    from mixmesh.runtime import quarantine

    assert settings.project() == tmp_path.absolute() and quarantine.max_rows() == 7
