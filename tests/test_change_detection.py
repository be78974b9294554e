"""Editing a function changes exactly the models that call it, as editing a macro does."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.projects import Project, forget_project_modules

FUNCTIONS = '''
from mixmesh import udf
from python.shared.helpers import scale


@udf
def double_it(x: float) -> float:
    return scale(x)


@udf
def label(x: float) -> str:
    return "high" if x > 10 else "low"
'''

HELPERS = '''
def scale(x):
    return x * 2.0
'''

MODELS = {
    "models/doubles.sql": "MODEL (name analytics.doubles, kind FULL); SELECT @double_it(1.5) AS d",
    "models/labels.sql": "MODEL (name analytics.labels, kind FULL); SELECT @label(1.5) AS l",
    "models/plain.sql": "MODEL (name analytics.plain, kind FULL); SELECT 1.5 * 2 AS d",
}


@pytest.fixture
def planned(project: Project) -> Project:
    project.write("macros/functions.py", FUNCTIONS)
    project.write("python/shared/helpers.py", HELPERS)
    for path, sql in MODELS.items():
        project.write(path, sql)
    project.plan()
    return project


def changed_models(project: Project) -> set[str]:
    """The models a new plan lists as directly modified."""
    context = project.context()
    diff = context.plan(no_prompts=True, auto_apply=False).context_diff
    names = {context.get_model(n).fqn: n for n in ("analytics.doubles", "analytics.labels", "analytics.plain")}
    return {names[fqn] for fqn in diff.modified_snapshots if diff.directly_modified(fqn)}


@pytest.mark.slow
def test_editing_a_function_body_changes_only_its_callers(planned: Project) -> None:
    planned.write("macros/functions.py", FUNCTIONS.replace('"high" if x > 10', '"high" if x > 20'))
    assert changed_models(planned) == {"analytics.labels"}


@pytest.mark.slow
def test_editing_a_project_helper_changes_the_callers_of_the_function_using_it(planned: Project) -> None:
    planned.write("python/shared/helpers.py", HELPERS.replace("2.0", "3.0"))
    assert changed_models(planned) == {"analytics.doubles"}


@pytest.mark.slow
def test_editing_a_return_type_changes_the_callers(planned: Project) -> None:
    planned.write("macros/functions.py", FUNCTIONS.replace("def label(x: float) -> str", "def label(x: float) -> bytes"))
    assert changed_models(planned) == {"analytics.labels"}


@pytest.mark.slow
def test_unrelated_edits_change_nothing(planned: Project) -> None:
    planned.write("python/shared/unused.py", "def unused():\n    return 1\n")
    planned.write("macros/functions.py", FUNCTIONS + "\n\ndef not_a_function_of_any_model():\n    return 2\n")
    planned.write("macros/functions.py", FUNCTIONS.replace("from mixmesh import udf", "# a comment\nfrom mixmesh import udf"))
    assert changed_models(planned) == set()


@pytest.mark.slow
def test_a_fresh_sqlmesh_plan_sees_an_edited_helper_despite_its_model_cache(project: Project) -> None:
    """SQLMesh caches loaded models on disk keyed on macros/ only; helpers must count too."""
    project.write("macros/functions.py", FUNCTIONS)
    project.write("python/shared/helpers.py", HELPERS)
    for path, sql in MODELS.items():
        project.write(path, sql)
    project.cli("plan", "--auto-apply", "--no-prompts")

    project.write("python/shared/helpers.py", HELPERS.replace("2.0", "3.0") + "\n")
    output = project.cli("plan", "--no-prompts", "--auto-apply").stdout
    assert "Directly Modified" in output and "analytics.doubles" in output
    assert "analytics.labels" not in output and "analytics.plain" not in output
    assert project.query("SELECT d FROM analytics.doubles") == [(4.5,)]


def test_a_script_read_from_stdin_inside_the_project_loads_it(planned: Project) -> None:
    # Its __main__ module's file is "<stdin>", inside the project folder by path but not a file.
    import subprocess
    import sys

    script = "from sqlmesh import Context; print(sorted(Context(paths='.').models)[0])"
    result = subprocess.run([sys.executable, "-"], input=script, cwd=planned.root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # a model name


PYTHON_MODEL = '''
import pandas as pd
from mixmesh import python_model


@python_model(name="analytics.described", columns={{"id": "BIGINT"}}, owner="{owner}", description="{description}", tags=["{tag}"])
def described(context, **kwargs) -> pd.DataFrame:
    return pd.DataFrame({{"id": [1, 2]}})
'''


def test_editing_a_python_model_s_description_owner_or_tags_rebuilds_nothing(project: Project) -> None:
    # Owners are e-mail addresses, as in the seed: SQLMesh alone would read "@x" as a macro.
    def hashes() -> tuple:
        model = project.context().get_model("analytics.described")
        return model.data_hash, model.metadata_hash, model.description, model.owner, model.tags

    project.write("models/described.py", PYTHON_MODEL.format(owner="team-a@x.io", description="First words.", tag="ltv"))
    data, metadata, *_ = hashes()
    project.write("models/described.py", PYTHON_MODEL.format(owner="team-b@x.io", description="Better words.", tag="core"))
    edited_data, edited_metadata, description, owner, tags = hashes()
    assert edited_data == data and edited_metadata != metadata
    assert (description, owner, tags) == ("Better words.", "team-b@x.io", ["core"])
    project.plan()
    project.cli("run")  # the stored source, without them, still re-creates the model in a fresh process
    assert project.query("SELECT count(*) FROM analytics.described") == [(2,)]


# --- argument types from the call site: an upstream type change re-plans the caller -----------

TYPED_FUNCTIONS = '''
from typing import Any
from mixmesh import udf


@udf
def describe(x: Any) -> str:
    return f"{type(x).__name__}:{x}"
'''
UPSTREAM = "MODEL (name raw.amounts, kind FULL); SELECT 1 AS id, {amount} AS amount{extra}"
CALLER = "MODEL (name analytics.described, kind FULL); SELECT id, @describe(amount) AS d FROM raw.amounts"


def _rebuilt(project: Project) -> set[str]:
    """The models a new plan would rebuild (backfill), by name."""
    from mixmesh.advice.structure import short_name

    plan = project.context().plan(no_prompts=True, auto_apply=False)
    return {short_name(missing.snapshot_id.name) for missing in plan.missing_intervals}


@pytest.mark.slow
def test_an_upstream_type_change_rebuilds_the_caller_and_an_unrelated_change_does_not(project: Project) -> None:
    """The types a call site passes come from the upstream columns: changing one changes what
    the function receives, so SQLMesh rebuilds the caller (a breaking change of its parent);
    a column the caller does not read leaves it as it is."""
    project.write("macros/functions.py", TYPED_FUNCTIONS)
    project.write("models/amounts.sql", UPSTREAM.format(amount="2.5::DOUBLE", extra=""))
    project.write("models/described.sql", CALLER)
    project.plan()
    assert project.query("SELECT d FROM analytics.described") == [("float:2.5",)]

    project.write("models/amounts.sql", UPSTREAM.format(amount="2.5::DECIMAL(10, 2)", extra=""))
    assert _rebuilt(project) == {"raw.amounts", "analytics.described"}
    project.plan()
    assert project.query("SELECT d FROM analytics.described") == [("Decimal:2.50",)]

    project.write("models/amounts.sql", UPSTREAM.format(amount="2.5::DECIMAL(10, 2)", extra=", 'x' AS note"))
    assert _rebuilt(project) == {"raw.amounts"}


def test_a_second_project_in_the_process_reads_its_own_helper_modules(tmp_path) -> None:
    """Two projects (a copy, say) whose functions import python.shared.helpers: loading the
    second must not run the first one's cached helper."""
    first, second = Project(tmp_path / "first"), Project(tmp_path / "second")
    try:
        for project, factor in ((first, "2.0"), (second, "3.0")):
            project.write("macros/functions.py", FUNCTIONS)
            project.write("python/shared/helpers.py", HELPERS.replace("2.0", factor))
            project.write("models/doubles.sql", MODELS["models/doubles.sql"])
        first.plan()
        assert first.query("SELECT d FROM analytics.doubles") == [(3.0,)]
        second.plan()
        assert second.query("SELECT d FROM analytics.doubles") == [(4.5,)]
    finally:
        first.close()
        second.close()


def test_grain_written_as_a_list_is_one_array_grain_and_is_said_once(project: Project, capfd) -> None:
    project.write("models/scores.sql", "MODEL (name analytics.scores, kind FULL, grain [id, day]); SELECT 1 AS id, DATE '2024-01-01' AS day")
    project.write("models/fine.sql", "MODEL (name analytics.fine, kind FULL, grain (id, day)); SELECT 1 AS id, DATE '2024-01-01' AS day")
    context = project.context()
    assert context.get_model("analytics.fine").on == ["id", "day"]
    project.context()  # a second load says nothing more
    said = [line for line in capfd.readouterr().err.splitlines() if "grain" in line]
    assert said == [
        "mixmesh: model analytics.scores: `grain [id, day]` is one grain to SQLMesh, the array ARRAY(id, day), "
        "so table_diff cannot match rows on it; write `grain (id, day)` (or `grains [id, day]`) for a grain of 2 column(s)"
    ]


def test_loading_a_project_keeps_modules_it_has_no_file_for(project: Project) -> None:
    """The test suite's own package is named like the project's tests/ folder; only modules the
    project has a file for are dropped (type hints of this module's classes read its globals)."""
    import sys

    project.write("models/plain.sql", MODELS["models/plain.sql"])
    project.context()
    assert __name__ in sys.modules


def test_a_helper_imported_from_another_copy_is_not_the_one_a_copy_loads(tmp_path: Path) -> None:
    """A test imports ``python.shared.rules`` from the project it was written for, then loads
    a copy whose file differs: the copy's models get the copy's helper."""
    import importlib
    import sys

    original, copy = Project(tmp_path / "original"), Project(tmp_path / "copy")
    for project, factor in ((original, 2), (copy, 3)):
        project.write("python/__init__.py", "")
        project.write("python/shared/__init__.py", "")
        project.write("python/shared/rules.py", f"FACTOR = {factor}\n")
        project.write("macros/functions.py", """
            from mixmesh import udf
            from python.shared.rules import FACTOR

            @udf
            def scaled(x: float) -> float:
                return FACTOR * x
        """)
        project.write("models/scaled.sql", """
            MODEL (name analytics.scaled, kind FULL);
            SELECT @scaled(1.0) AS y
        """)
    forget_project_modules()  # another test's project may have left its own
    sys.path.insert(0, str(original.root))
    try:
        assert importlib.import_module("python.shared.rules").FACTOR == 2  # no project load found it
        copy.plan()
        assert copy.query("SELECT y FROM analytics.scaled") == [(3.0,)]
    finally:
        sys.path.remove(str(original.root))
        forget_project_modules()
        original.close()
        copy.close()
