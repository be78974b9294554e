"""The project's SQLMesh YAML tests (tests/**/test*.yaml), run by pytest through Context.test().

`sqlmesh test` runs them too; here each YAML test is one pytest test, so the example's pytest
run covers them and a failure shows SQLMesh's own diff of the rows.
"""

from __future__ import annotations

import io
import typing as t
from pathlib import Path

import pytest
from ruamel.yaml import YAML

PROJECT = Path(__file__).resolve().parents[2]
# SQLMesh's own discovery rule (sqlmesh/core/loader.py, load_model_tests); a file holds one
# or more tests, each a top-level key.
YAML_FILES = sorted([*PROJECT.glob("tests/**/test*.yaml"), *PROJECT.glob("tests/**/test*.yml")])
YAML_TESTS = [(path, name) for path in YAML_FILES for name in YAML(typ="safe").load(path)]


@pytest.fixture(scope="module")
def context() -> t.Iterator[t.Any]:
    from sqlmesh import Context

    context = Context(paths=str(PROJECT))
    yield context
    context.close()


def test_every_model_has_yaml_tests(context: t.Any) -> None:
    tested = {context.get_model(body["model"]).fqn for path in YAML_FILES for body in YAML(typ="safe").load(path).values()}
    models = {model.fqn for model in context.models.values() if not model.kind.is_external}
    assert models and models <= tested, f"models without a YAML test: {sorted(models - tested)}"


@pytest.mark.parametrize("path, name", YAML_TESTS, ids=[name for _, name in YAML_TESTS])
def test_yaml_test_passes(context: t.Any, path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT)  # the models find artifacts/ relative to the project, as under `sqlmesh test`
    result = context.test(tests=[f"{path}::{name}"], stream=io.StringIO())
    assert result.testsRun == 1, f"SQLMesh did not find {path.name}::{name}"
    problems = [text for _, text in (*result.failures, *result.errors)]
    assert result.wasSuccessful(), "\n".join(problems)
