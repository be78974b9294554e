"""Provenance and its audits on Spark (local mode): the same project as tests/test_provenance.py,
its functions run on Spark's executors. Model rows record the pinned digest, fallback rows and
on_error rows say so; a missing model file fails the fallback_share audit."""

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


def test_rows_record_their_provenance_and_a_missing_model_file_fails_the_audit(spark_project: SparkProject) -> None:
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

    (spark_project.root / ARTIFACT).unlink()  # the model evaluated again, the file gone
    with pytest.raises(PlanError):
        spark_project.plan(restate_models=["analytics.scored"])
