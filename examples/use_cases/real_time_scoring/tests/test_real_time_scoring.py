"""Batch training, then incremental scoring with SQLMesh on DuckDB: probabilities checked
against the trained model called directly, only new rows scored, the pin enforced."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
from datetime import date
from pathlib import Path

import duckdb
import joblib
import numpy as np
import pytest

from mixmesh.resources import ArtifactError
from mixmesh.testing import ModelTest

PROJECT = Path(__file__).resolve().parents[1]


def copy_project(parent: Path) -> Path:
    copy = parent / PROJECT.name
    shutil.copytree(PROJECT, copy, ignore=shutil.ignore_patterns("*.duckdb*", ".cache", "logs", "__pycache__", "artifacts"))
    return copy


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """Events of 2024-01-01..08, a model trained on the first 7 days, the 8 days scored by a
    plan; then the events of 2024-01-09 arrive and a run scores them."""
    from sqlmesh import Context

    from python.data import append_events
    from python.training import train

    copy = copy_project(tmp_path_factory.mktemp("project"))
    previous = Path.cwd()
    os.chdir(copy)
    with duckdb.connect("db.duckdb") as connection:
        append_events(connection, date(2024, 1, 1), 8)
        trained = train(connection, copy, before=date(2024, 1, 8))
    context = Context(paths=str(copy))
    try:
        context.plan(auto_apply=True, no_prompts=True, execution_time="2024-01-09")
        before = context.fetchdf("SELECT * FROM analytics.scored_events")
        context.close()
        with duckdb.connect("db.duckdb") as connection:
            append_events(connection, date(2024, 1, 9), 1)
        context = Context(paths=str(copy))
        context.run(execution_time="2024-01-10")
        yield context, copy, trained, before
    finally:
        context.close()
        os.chdir(previous)


def test_training_pins_the_artifact_by_its_hash(built) -> None:
    _, copy, trained, _ = built
    digest = hashlib.sha256((copy / trained["file"]).read_bytes()).hexdigest()
    assert (copy / "artifacts/SHA256SUMS").read_text() == f"{digest}  fraud_model.joblib\n"
    assert trained["rows"] == 7 * 60 and trained["roc_auc"] > 0.7


def test_the_yaml_test_passes(built) -> None:
    context, *_ = built
    result = context.test(stream=io.StringIO())
    assert result.testsRun == 1 and result.wasSuccessful(), [text for _, text in result.failures + result.errors]


def test_probabilities_are_the_trained_model_s(built) -> None:
    context, copy, trained, _ = built
    model = joblib.load(copy / trained["file"])  # the test trusts the file it just trained
    rows = context.fetchdf("SELECT s.fraud_probability, s.decision, e.amount, hour(e.event_time) AS hour, e.merchant_risk "
                           "FROM analytics.scored_events s JOIN raw.card_events e USING (event_id) ORDER BY event_id")
    night = ((rows["hour"] >= 22) | (rows["hour"] < 6)).astype(float)
    features = np.column_stack([np.log(1 + rows["amount"]), night, rows["merchant_risk"]])
    assert rows["fraud_probability"].tolist() == pytest.approx(model.predict_proba(features)[:, 1].tolist())
    assert (rows["decision"] == np.where(rows["fraud_probability"] >= 0.5, "review", "approve")).all()


def test_a_run_scores_only_the_new_events(built) -> None:
    context, _, _, before = built
    after = context.fetchdf("SELECT * FROM analytics.scored_events")
    assert len(before) == 8 * 60 and len(after) == 9 * 60 and after["event_id"].is_unique
    kept = after.merge(before, on="event_id", suffixes=("", "_before"))
    assert len(kept) == len(before) and kept["fraud_probability"].equals(kept["fraud_probability_before"])


def test_without_a_trained_model_scoring_stops_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlmesh import Context

    copy = copy_project(tmp_path)
    monkeypatch.chdir(copy)
    # This process already imported python.scoring from the built copy, whose model is loaded
    # and cached; SQLMesh must import this copy's, as a fresh `sqlmesh plan` would.
    for name in [name for name in sys.modules if name == "python" or name.startswith("python.")]:
        monkeypatch.delitem(sys.modules, name)
    context = Context(paths=str(copy))
    test = ModelTest(model_name="analytics.scored_events", context=context, expected_outputs=[],
                     inputs={"raw.card_events": [{"event_id": "E1", "event_time": "2024-01-02 03:00:00", "amount": 1.0, "merchant_risk": 0.1}]},
                     vars={"start": "2024-01-02", "end": "2024-01-02"})
    try:
        with pytest.raises(Exception, match=r"raised ArtifactError: artifact artifacts/fraud_model\.joblib .*is missing"):
            test.actual_rows()
    finally:
        context.close()


def test_a_tampered_artifact_is_refused_before_unpickling(built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from python.scoring import fraud_model

    _, copy, _, _ = built
    tampered = tmp_path / "tampered"
    shutil.copytree(copy / "artifacts", tampered / "artifacts")
    with open(tampered / "artifacts/fraud_model.joblib", "ab") as file:
        file.write(b"\0")
    monkeypatch.chdir(tampered)
    with pytest.raises(ArtifactError, match=r"artifact artifacts/fraud_model\.joblib .*failed its hash check"):
        fraud_model.__wrapped__()  # the loader itself, without the per-process cache
