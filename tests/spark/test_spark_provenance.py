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
