"""A ``MIXMESH_*`` switch holding a value it cannot mean fails the command, naming it."""

from __future__ import annotations

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
