"""Batch training: fit the fraud model on the labelled events before a day, save it under
artifacts/ and pin its SHA-256 in artifacts/SHA256SUMS, which scoring checks before loading.

`python -m python.training [BEFORE_DAY]` from this folder (db.duckdb), after python.data.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import duckdb
import joblib
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from mixmesh.resources import write_pins
from python.features import feature_matrix

MODEL_FILE = "artifacts/fraud_model.joblib"
PINS = "artifacts/SHA256SUMS"


def train(connection: duckdb.DuckDBPyConnection, project: Path, before: date) -> dict:
    """Fit on events before `before`; returns the file, its rows and its training ROC AUC."""
    rows = connection.execute(
        "SELECT amount, hour(event_time) AS hour, merchant_risk, is_fraud FROM raw.card_events "
        "WHERE event_time < ? AND is_fraud IS NOT NULL ORDER BY event_id",
        [before],
    ).df()
    if rows["is_fraud"].nunique() < 2:
        raise ValueError(f"training: the events before {before} need both labels, got {rows['is_fraud'].unique().tolist()}")
    features = feature_matrix(rows["amount"], rows["hour"], rows["merchant_risk"])
    model = LogisticRegression(random_state=0).fit(features, rows["is_fraud"])
    path = project / MODEL_FILE
    path.parent.mkdir(exist_ok=True)
    joblib.dump(model, path)
    write_pins(project / PINS, [path])
    auc = roc_auc_score(rows["is_fraud"], model.predict_proba(features)[:, 1])
    return {"file": MODEL_FILE, "rows": len(rows), "roc_auc": round(float(auc), 3)}


if __name__ == "__main__":
    before = date.fromisoformat(sys.argv[1]) if len(sys.argv) > 1 else date.today()
    with duckdb.connect("db.duckdb", read_only=True) as connection:
        print(train(connection, Path.cwd(), before))
