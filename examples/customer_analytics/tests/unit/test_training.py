"""The project's ML models trained on generated data, pinned, loaded, and refused when tampered with."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from mixmesh.cli.demo_data import generate
from mixmesh.resources import artifact_events, reset_artifact_events
from python import training
from python.models.ltv.predictor import load_confidence_model, load_ltv_model
from python.shared.feature_engineering import python_risk_score, risk_score_row_by_row
from python.shared.model_loading import SimpleRiskModel, load_risk_model

START, END = dt.date(2024, 1, 1), dt.date(2024, 1, 10)
LOADERS = (load_risk_model, load_ltv_model, load_confidence_model)


@pytest.fixture(scope="module")
def warehouse():
    connection = duckdb.connect()
    generate(connection, customers=400, transactions=20_000, events=10, days=10, end_date=END)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def trained_once(warehouse, tmp_path_factory):
    directory = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        models = training.train_all(warehouse, START, END)
    return directory, models


@pytest.fixture
def trained(trained_once, tmp_path, monkeypatch):
    """The three models trained once, copied into tmp_path/artifacts: the working directory the loaders read."""
    import shutil

    directory, models = trained_once
    shutil.copytree(directory / "artifacts", tmp_path / "artifacts")
    monkeypatch.chdir(tmp_path)
    for loader in LOADERS:
        loader.reset()
    reset_artifact_events()
    yield models
    for loader in LOADERS:
        loader.reset()


def test_training_saves_and_pins_three_models_that_learn(trained, tmp_path) -> None:
    assert [model.name for model in trained] == ["risk model", "LTV regressor", "confidence classifier"]
    pins = (tmp_path / "artifacts" / "SHA256SUMS").read_text().split()
    assert pins[1::2] == ["confidence_model.joblib", "customer_risk_model.joblib", "ltv_model.joblib"]
    risk = trained[0]
    assert risk.metric == "held-out ROC AUC" and risk.score > 0.8  # the labels are learnable from one day
    assert hasattr(load_risk_model(), "predict_proba") and not isinstance(load_risk_model(), SimpleRiskModel)
    assert load_ltv_model().n_features_in_ == 6 and list(load_ltv_model().feature_names_in_)[0] == "total_spend"
    assert set(load_confidence_model().classes_) == {0, 1}
    assert artifact_events()["loaded"] == 3 and artifact_events()["fallback"] == 0


def test_training_is_deterministic(warehouse, trained, tmp_path) -> None:
    first = (tmp_path / "artifacts" / "SHA256SUMS").read_text()
    training.train_all(warehouse, START, END)
    assert (tmp_path / "artifacts" / "SHA256SUMS").read_text() == first


def test_vectorized_scores_equal_row_by_row_scores_with_the_trained_model(warehouse, trained) -> None:
    rows = warehouse.sql(
        """
        SELECT SUM(amount), COUNT(*),
               list({'amount': amount, 'merchant_category': merchant_category,
                     'transaction_time': transaction_time, 'payment_method': payment_method}
                    ORDER BY transaction_time)
        FROM raw.raw_transactions WHERE score_date <= DATE '2024-01-03' GROUP BY customer_id, score_date ORDER BY ALL
        """
    ).fetchall()
    details = pa.array([row[2] for row in rows])  # the call site's STRUCT, as Arrow reads it
    vectorized = python_risk_score.__wrapped__(details, pa.array([r[0] for r in rows]), pa.array([r[1] for r in rows]))
    literal = np.array([risk_score_row_by_row(row[2], row[0], row[1]) for row in rows])
    batch = np.array(vectorized.to_pylist())
    # The features agree to rounding (test_python_functions); a tree model turns a rounding
    # difference into a different score only where a feature sits on a split threshold.
    same = np.isclose(batch, literal, rtol=0, atol=1e-9)
    assert same.mean() > 0.97, f"{(~same).sum()} of {len(same)} scores differ"
    assert np.abs(batch - literal).max() < 0.05
    assert np.std(literal) > 0.1  # a trained model's spread, not the rules' few values


def test_a_tampered_model_is_refused_and_the_rules_take_over(trained, tmp_path) -> None:
    with open(tmp_path / "artifacts" / "customer_risk_model.joblib", "ab") as model:
        model.write(b"\0")
    load_risk_model.reset()
    assert isinstance(load_risk_model(), SimpleRiskModel)
    assert artifact_events()["refused_hash"] == 1 and artifact_events()["fallback"] == 1


def test_data_that_cannot_train_is_refused_by_name(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    connection = duckdb.connect()
    generate(connection, customers=3, transactions=20, events=0, days=2, end_date=dt.date(2024, 1, 2))
    with pytest.raises(training.TrainingError, match="needs at least 5 examples of each class"):
        training.train_all(connection, dt.date(2024, 1, 1), dt.date(2024, 1, 2))
    assert not (tmp_path / "artifacts" / "customer_risk_model.joblib").exists()
