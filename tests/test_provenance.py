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
import typing as t

import pytest

from mixmesh.runtime.resources import file_sha256, write_pins
from tests.projects import Project, forget_project_modules

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


@udf(cache=True)
def remembered(amount: float) -> float:
    return amount + 1


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
          fallback_share(column := checked_provenance, max_share := 0.5),
          pinned_artifact(column := score_provenance))
);
SELECT id, score, scored.value AS scored, scored.provenance AS score_provenance,
       guarded.value AS guarded, guarded.provenance AS guarded_provenance,
       checked.value AS checked, checked.provenance AS checked_provenance
FROM (
  SELECT id, @score(amount) AS score, @with_provenance(@score(amount)) AS scored,
         @with_provenance(@guarded(amount)) AS guarded, @with_provenance(@checked(amount)) AS checked
  FROM raw.events
) AS s
"""

# Two models calling a cached function with the same arguments: the second one's rows come
# from the cache the first one filled.
CACHED = """
MODEL (name analytics.cached_{n}, kind FULL{depends});
SELECT id, @with_provenance(@remembered(amount)) AS remembered FROM raw.events
"""

class Scorer:
    factor = 2.0


def train(project: Project, factor: float = Scorer.factor) -> None:
    """The trained scorer, pinned as a training run pins it."""
    path = project.root / ARTIFACT
    path.parent.mkdir(parents=True, exist_ok=True)
    scorer = Scorer()
    if factor != Scorer.factor:
        scorer.factor = factor  # another training run: other bytes
    # Pickled by reference to this test module, importable wherever the tests run.
    path.write_bytes(pickle.dumps(scorer))
    write_pins(project.root / "artifacts/SHA256SUMS", [path])


def write_project(project: Project, *, max_share: float = 0.0) -> None:
    project.write("models/events.sql", EVENTS)
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/scored.sql", SCORED.format(max_share=max_share))
    project.write("models/cached_1.sql", CACHED.format(n=1, depends=""))
    project.write("models/cached_2.sql", CACHED.format(n=2, depends=", depends_on (analytics.cached_1)"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Project]:
    """The project, trained and planned once for the tests that read what it built."""
    project = Project(tmp_path_factory.mktemp("provenance") / "project")
    train(project)
    write_project(project)
    project.plan()
    yield project
    project.close()
    forget_project_modules()


def provenance_of(project: Project, table: str = "analytics.scored", column: str = "score_provenance") -> list:
    return project.query(
        f"SELECT {column}.source, {column}.function, {column}.artifact, {column}.artifact_digest, "
        f"{column}.code_fingerprint, {column}.mixmesh_version, COUNT(*) FROM {table} GROUP BY ALL ORDER BY 1"
    )


@pytest.mark.slow
def test_model_rows_record_the_function_and_the_pinned_digest_and_the_audits_pass(built: Project) -> None:
    digest = file_sha256(built.root / ARTIFACT)
    [(source, function, artifact, recorded, fingerprint, version, rows)] = provenance_of(built)
    assert (source, function, artifact, recorded, rows) == ("function", "score", ARTIFACT, digest, 40)
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint) and version


@pytest.mark.slow
def test_the_values_are_the_same_with_and_without_provenance_recorded(built: Project) -> None:
    rows = built.query("SELECT score, scored FROM analytics.scored ORDER BY id")
    assert [score for score, _ in rows] == [2.0 * (i % 10) for i in range(40)]
    assert all(score == scored for score, scored in rows)


@pytest.mark.slow
def test_a_fallback_row_and_a_function_row_differ_in_their_provenance(built: Project) -> None:
    rows = built.query(
        "SELECT guarded, guarded_provenance.source, guarded_provenance.artifact FROM analytics.scored "
        "WHERE id IN (1, 9) ORDER BY id"
    )
    assert rows == [(1.0, "function", None), (0.09, "fallback", None)]  # 9 is too large: rule_of_thumb's


@pytest.mark.slow
def test_the_on_error_constant_rows_say_on_error(built: Project) -> None:
    rows = built.query(
        "SELECT checked_provenance.source, MIN(checked), COUNT(*) FROM analytics.scored GROUP BY 1 ORDER BY 1"
    )
    assert rows == [("function", 0.0, 36), ("on_error", -1.0, 4)]  # 7, 17, 27, 37


@pytest.mark.slow
def test_rows_the_cache_answered_say_cache(built: Project) -> None:
    first = provenance_of(built, "analytics.cached_1", "remembered.provenance")
    second = provenance_of(built, "analytics.cached_2", "remembered.provenance")
    assert [(row[0], row[-1]) for row in first] == [("function", 40)]
    assert [(row[0], row[-1]) for row in second] == [("cache", 40)]
    values = built.query("SELECT a.remembered.value = b.remembered.value FROM analytics.cached_1 a "
                         "JOIN analytics.cached_2 b USING (id)")
    assert values and all(same for (same,) in values)


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
