"""Provenance on the row and the audits that read it, through real SQLMesh plans on DuckDB.

A project whose model scores rows with a trained model loaded from a pinned artifact
(``load_artifact`` in a ``@resource``), records ``@with_provenance(...)``, and carries the
``fallback_share`` and ``pinned_artifact`` audits. Model rows and fallback rows differ in the
provenance column; a run whose model file is missing fails its audit, naming the model, the
function and the artifact; cached rows say ``cache``, on_error rows ``on_error``; recording
provenance leaves the values as they were.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from mixmesh.runtime.resources import file_sha256, write_pins
from tests.projects import Project

ARTIFACT = "artifacts/scorer.pkl"

EVENTS = """
MODEL (name raw.events, kind FULL);
SELECT i AS id, (i % 10)::DOUBLE AS amount FROM range(40) AS t(i)
"""

FUNCTIONS = '''
from mixmesh import load_artifact, resource, udf

SCORER = "artifacts/scorer.pkl"
PINS = "artifacts/SHA256SUMS"


class Rules:
    """The stand-in when the trained scorer does not load."""

    factor = 0.0


@resource(watch=(SCORER, PINS))
def scorer():
    return load_artifact(SCORER, pins=PINS, fallback=Rules)


@udf
def score(amount: float) -> float:
    return amount * scorer().factor


@udf(vectorized=True)
def score_batch(amount):
    return amount * scorer().factor


@udf(on_error=-1.0)
def checked(amount: float) -> float:
    if amount == 7:
        raise ValueError("seven is refused")
    return amount


def rule_of_thumb(amount):
    return amount / 100


@udf(on_error=rule_of_thumb)
def guarded(amount: float) -> float:
    if amount >= 8:
        raise ValueError("too large")
    return amount
'''

SCORED = """
MODEL (
  name analytics.scored,
  kind FULL,
  audits (fallback_share(column := score_provenance, max_share := {max_share}),
          pinned_artifact(column := score_provenance))
);
SELECT id, scored.value AS score, scored.provenance AS score_provenance
FROM (SELECT id, @with_provenance(@score(amount)) AS scored FROM raw.events) AS s
"""

PLAIN = """
MODEL (name analytics.plain, kind FULL);
SELECT id, @score(amount) AS score FROM raw.events
"""


class Scorer:
    factor = 2.0


def train(project: Project) -> None:
    """The trained scorer, pinned as a training run pins it."""
    path = project.root / ARTIFACT
    path.parent.mkdir(parents=True, exist_ok=True)
    # Pickled by reference to this test module, importable wherever the tests run.
    path.write_bytes(pickle.dumps(Scorer()))
    write_pins(project.root / "artifacts/SHA256SUMS", [path])


def write_project(project: Project, *, max_share: float = 0.0, model: str = SCORED) -> None:
    project.write("models/events.sql", EVENTS)
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/scored.sql", model.format(max_share=max_share))


def provenance_of(project: Project, table: str = "analytics.scored", column: str = "score_provenance") -> list:
    return project.query(
        f"SELECT {column}.source, {column}.function, {column}.artifact, {column}.artifact_digest, "
        f"{column}.code_fingerprint, {column}.mixmesh_version, COUNT(*) FROM {table} GROUP BY ALL ORDER BY 1"
    )


@pytest.mark.slow
def test_model_rows_record_the_function_and_the_pinned_digest_and_the_audits_pass(project: Project) -> None:
    train(project)
    write_project(project)
    project.plan()

    digest = file_sha256(project.root / ARTIFACT)
    [(source, function, artifact, recorded, fingerprint, version, rows)] = provenance_of(project)
    assert (source, function, artifact, recorded, rows) == ("function", "score", ARTIFACT, digest, 40)
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint) and version
    assert project.query("SELECT SUM(score) FROM analytics.scored") == [(2.0 * 4 * 45,)]


@pytest.mark.slow
def test_a_missing_model_file_makes_every_row_a_fallback_and_fails_the_audit_naming_model_function_artifact(
    project: Project,
) -> None:
    train(project)
    write_project(project)
    (project.root / ARTIFACT).unlink()  # the pins still name it: the plan is the same, the file is gone

    result = project.cli("plan", "--auto-apply", "--no-prompts", check=False)

    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())  # the console wraps long lines
    assert "'fallback_share' audit error" in output
    assert re.search(
        r"model analytics.scored: function score: 40 of 40 rows of this interval came from a fallback or an "
        rf"on_error value, more than max_share 0\.0; artifact {ARTIFACT} did not load", output)


@pytest.mark.slow
def test_fallback_rows_and_model_rows_differ_in_their_provenance(project: Project) -> None:
    write_project(project, max_share=1.0)  # not trained: the stand-in answers, and the audit allows it
    project.plan()

    [(source, function, artifact, recorded, _, _, rows)] = provenance_of(project)
    assert (source, function, artifact, recorded, rows) == ("fallback", "score", ARTIFACT, None, 40)

    train(project)  # re-pinned: the plan sees a new artifact digest, and evaluates the model again
    project.plan()
    [(source, _, artifact, recorded, _, _, rows)] = provenance_of(project)
    assert (source, artifact, recorded, rows) == ("function", ARTIFACT, file_sha256(project.root / ARTIFACT), 40)
