"""Provenance and its audits on Spark (local mode): the same project as tests/test_provenance.py,
its functions run on Spark's executors. Model rows record the pinned digest, fallback rows and
on_error rows say so; too many fallback rows fail the fallback_share audit."""

from __future__ import annotations

import pytest

from mixmesh.runtime.resources import file_sha256
from tests.spark.projects import SparkProject
from tests.test_provenance import ARTIFACT, FUNCTIONS, SCORED, train

pytestmark = pytest.mark.slow

EVENTS = """
MODEL (name raw.events, kind FULL, dialect spark);
SELECT CAST(id AS INT) AS id, CAST(id % 10 AS DOUBLE) AS amount FROM range(40)
"""


def write_project(project: SparkProject, max_share: float) -> None:
    project.write("models/events.sql", EVENTS)
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/scored.sql", SCORED.format(max_share=max_share))


def test_rows_record_their_provenance_and_too_many_fallbacks_fail_the_audit(spark_project: SparkProject) -> None:
    from sqlmesh.utils.errors import PlanError

    train(spark_project)
    write_project(spark_project, max_share=0.0)
    spark_project.plan()

    digest = file_sha256(spark_project.root / ARTIFACT)
    rows = spark_project.fetch(
        "SELECT score_provenance.source, score_provenance.artifact, score_provenance.artifact_digest, "
        "guarded_provenance.source, checked_provenance.source, score = scored "
        "FROM analytics.scored WHERE id IN (1, 7, 9) ORDER BY id"
    )
    assert rows == [
        ["function", ARTIFACT, digest, "function", "function", True],
        ["function", ARTIFACT, digest, "function", "on_error", True],
        ["function", ARTIFACT, digest, "fallback", "function", True],
    ]

    # 8 and 9 of every ten rows got guarded's fallback: 20%, over a limit of 10%. A new model,
    # so that the next plan evaluates it and runs its audit on Spark.
    spark_project.write("models/guarded.sql", GUARDED)
    with pytest.raises(PlanError, match="Plan application failed"):
        spark_project.plan()


GUARDED = """
MODEL (name analytics.guarded, kind FULL, audits (fallback_share(column := guarded_provenance, max_share := 0.1)));
SELECT id, guarded_provenance FROM analytics.scored
"""


def test_a_missing_model_file_makes_every_row_a_fallback_and_fails_the_audit_naming_model_function_artifact(
    spark_project: SparkProject, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The executors' Python workers outlive this project: they scored rows with the same code
    # for the test above, whose model file existed. None of that may answer here.
    from sqlmesh.utils.errors import PlanError

    train(spark_project)
    write_project(spark_project, max_share=0.0)
    (spark_project.root / ARTIFACT).unlink()  # the pins still name it: the plan is the same, the file is gone

    context = spark_project.context()
    failed: list = []
    monkeypatch.setattr(context.console, "log_failed_models", failed.extend)  # what the console shows
    with pytest.raises(PlanError):
        context.plan(auto_apply=True, no_prompts=True)

    table = context.get_snapshot("analytics.scored").table_name()
    assert context.engine_adapter.fetchall(
        f"SELECT score_provenance.source, score_provenance.artifact, score_provenance.artifact_digest, COUNT(*) "
        f"FROM {table} GROUP BY ALL"
    ) == [("fallback", ARTIFACT, None, 40)]
    [audit_error] = [error for failure in failed for error in failure.__cause__.errors]
    assert audit_error.audit_name == "fallback_share"
    assert audit_error.audit_args["found"].this == (
        f"model analytics.scored: function score: 40 of 40 rows of this interval came from a fallback or an "
        f"on_error value, more than max_share 0.0; artifact {ARTIFACT} did not load: its fallback answered"
    )


def test_a_retrained_model_re_pinned_gives_its_values_in_the_same_spark_session(spark_project: SparkProject) -> None:
    train(spark_project)
    write_project(spark_project, max_share=0.0)
    spark_project.plan()

    train(spark_project, factor=3.0)  # retrained and re-pinned while the executors' workers live on
    spark_project.plan()

    digest = file_sha256(spark_project.root / ARTIFACT)
    assert spark_project.fetch(
        "SELECT DISTINCT scored / amount, score_provenance.artifact_digest FROM analytics.scored "
        "JOIN raw.events USING (id) WHERE amount > 0"
    ) == [[3.0, digest]]
