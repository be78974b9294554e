"""A ``@resource`` shipped to Spark's executors, piece by piece and without a Spark session:
pickled as Spark pickles a function, unpickled as an executor does (in this process, which
plays the executor's long-lived Python worker). A worker that built the model before never
serves it once the driver's file went missing or was retrained and re-pinned."""

from __future__ import annotations

import pickle
import typing as t
from pathlib import Path

import pytest

from mixmesh import load_artifact, resource
from mixmesh.engines.spark import shipping
from mixmesh.runtime import resources
from mixmesh.runtime.resources import write_pins

pytest.importorskip("pyspark")  # mixmesh[spark]: the Spark tests need it installed

MODEL, PINS = "artifacts/model.pkl", "artifacts/SHA256SUMS"


class Rules:
    """The stand-in when the trained model does not load."""


def load_model() -> t.Any:
    return load_artifact(MODEL, pins=PINS, fallback=Rules)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> t.Iterator[Path]:
    """A project with a trained, pinned model, run as SQLMesh runs it (its root set)."""
    root = tmp_path / "project"
    train(root, {"weights": [1.5]})
    monkeypatch.setattr(shipping, "_scratch", lambda: tmp_path / "executor")  # the executor's own folder
    before = resources.project_root()
    resources.set_project_root(root)
    yield root
    resources.set_project_root(before)


def train(root: Path, model: t.Any) -> None:
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    (root / MODEL).write_bytes(pickle.dumps(model))
    write_pins(root / PINS, [root / MODEL])


def on_an_executor(sent: bytes, root: Path) -> t.Any:
    """What a task does: unpickle the function's resource, settle in the copy of the project
    the shipped files made (a cluster's executor has no other), call it."""
    from pyspark import cloudpickle

    arrived = cloudpickle.loads(sent)
    resources.set_project_root(shipping.project_copy(str(root)))
    try:
        return arrived()
    finally:
        resources.set_project_root(root)


def test_a_worker_that_built_the_model_falls_back_once_the_driver_s_file_is_gone_and_takes_a_retrained_one(
    project: Path,
) -> None:
    from pyspark import cloudpickle

    model = resource(watch=(MODEL, PINS))(load_model)
    shipping.ship_project_modules()  # as binding a function does: resources travel as builders
    with shipping.shipping() as shipped:
        sent = cloudpickle.dumps(model)
    assert on_an_executor(sent, project) == {"weights": [1.5]}
    assert shipped.current()

    (project / MODEL).unlink()  # pins unchanged: only the file is gone
    assert not shipped.current()  # so the function is registered (pickled) again
    assert isinstance(on_an_executor(cloudpickle.dumps(model), project), Rules)

    train(project, {"weights": [2.5]})
    assert on_an_executor(cloudpickle.dumps(model), project) == {"weights": [2.5]}


def test_a_function_shipped_for_another_project_is_not_current(project: Path, tmp_path: Path) -> None:
    from pyspark import cloudpickle

    model = resource(watch=(MODEL, PINS))(load_model)
    shipping.ship_project_modules()
    with shipping.shipping() as shipped:
        cloudpickle.dumps(model)
    assert shipped.current()
    resources.set_project_root(tmp_path / "another")
    assert not shipped.current()
