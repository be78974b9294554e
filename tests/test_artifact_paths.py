"""Artifacts trust the project, not the current directory (issue 16, defect 4): relative paths
and pins resolve against the project's root whatever folder a command starts in; an unpinned
pickle is refused unless the call opts in; a run whose rows came from a fallback says so on
the console and in the metrics."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from mixmesh import load_artifact
from mixmesh.runtime.resources import ArtifactError
from mixmesh.monitor.store import DEFAULT_PATH, MetricsStore
from mixmesh.runtime.resources import set_project_root, write_pins  # noqa: E402
from tests import fresh_process
from tests.projects import Project

FUNCTIONS = '''
from mixmesh import load_artifact, resource, udf


@resource
def weights():
    return load_artifact("artifacts/weights.pkl", pins="artifacts/SHA256SUMS", fallback=lambda: {{"scale": -1.0}})


@resource
def outside():
    return load_artifact({outside!r}, allow_unpinned=True, fallback=lambda: "refused")


@udf
def scaled(x: float) -> float:
    return x * weights()["scale"]


@udf
def outside_says(x: float) -> str:
    return str(outside())
'''

MODEL = "MODEL (name analytics.scaled, kind FULL); SELECT @scaled(2.0) AS s, @outside_says(1.0) AS o"


class Trap:
    """Unpickling it writes a marker file: proof that a pickle's code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path(self.marker).write_text, ("unpickled",))


def sqlmesh_from(folder: Path, project: Path, *args: str) -> fresh_process.Finished:
    """``sqlmesh -p PROJECT ...`` started in another folder, as a scheduler might."""
    return fresh_process.run_sqlmesh(["-p", str(project), *args], cwd=folder, env={**os.environ, "NO_COLOR": "1"})


@pytest.fixture
def artifacts_project(project: Project, tmp_path: Path) -> Project:
    root = project.root
    (root / "artifacts").mkdir()
    (root / "artifacts" / "weights.pkl").write_bytes(pickle.dumps({"scale": 10.0}))
    write_pins(root / "artifacts" / "SHA256SUMS", [root / "artifacts" / "weights.pkl"])
    evil = tmp_path / "outside" / "evil.pkl"
    evil.parent.mkdir()
    evil.write_bytes(pickle.dumps(Trap(str(tmp_path / "marker.txt"))))
    # Relative to the project, "../outside" leaves it; from the folder below, it is inside the cwd.
    project.write("macros/functions.py", FUNCTIONS.format(outside="../outside/evil.pkl"))
    project.write("models/scaled.sql", MODEL)
    return project


@pytest.mark.slow
def test_paths_resolve_against_the_project_not_the_current_directory(artifacts_project: Project, tmp_path: Path) -> None:
    # Started from the project's parent: "../outside/evil.pkl" from there would be inside the
    # current directory; from the project it is outside it, and refused.
    result = sqlmesh_from(tmp_path, artifacts_project.root, "plan", "--auto-apply", "--no-prompts")
    assert result.returncode == 0, result.stdout + result.stderr
    assert artifacts_project.query("SELECT s, o FROM analytics.scaled") == [(20.0, "refused")]  # the pinned weights
    assert not (tmp_path / "marker.txt").exists()
    assert "outside the allowed directories" in result.stderr and "using the fallback" in result.stderr


@pytest.mark.slow
def test_a_fallback_run_says_so_on_the_console_and_in_the_metrics(artifacts_project: Project, tmp_path: Path) -> None:
    (artifacts_project.root / "artifacts" / "weights.pkl").unlink()
    result = sqlmesh_from(tmp_path, artifacts_project.root, "plan", "--auto-apply", "--no-prompts")
    assert result.returncode == 0, result.stdout + result.stderr
    assert artifacts_project.query("SELECT s FROM analytics.scaled") == [(-2.0,)]
    console = result.stderr
    assert "artifacts/weights.pkl" in console and "is missing; using the fallback instead" in console
    runs = MetricsStore(artifacts_project.root / DEFAULT_PATH).model_runs("analytics.scaled")
    assert int(runs["fallbacks"].sum()) >= 1


def test_an_unpinned_pickle_is_refused_unless_the_call_opts_in(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(Trap(str(marker))))
    set_project_root(tmp_path)
    try:
        with pytest.raises(ArtifactError, match="allow_unpinned=True") as raised:
            load_artifact("model.pkl")
        assert raised.value.reason == "unpinned" and not marker.exists()
        load_artifact("model.pkl", allow_unpinned=True)
        assert marker.read_text() == "unpickled"
    finally:
        set_project_root(None)


def test_relative_paths_and_pins_resolve_against_the_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / "artifacts").mkdir(parents=True)
    (project / "artifacts" / "m.pkl").write_bytes(pickle.dumps("pinned"))
    write_pins(project / "artifacts" / "SHA256SUMS", [project / "artifacts" / "m.pkl"])
    monkeypatch.chdir(tmp_path)
    set_project_root(project)
    try:
        assert load_artifact("artifacts/m.pkl", pins="artifacts/SHA256SUMS") == "pinned"
    finally:
        set_project_root(None)
    with pytest.raises(ArtifactError, match="missing"):  # outside SQLMesh: the current directory
        load_artifact("artifacts/m.pkl", pins="artifacts/SHA256SUMS")
