"""Scoring inside SQL: the trained model, loaded once per process only if its bytes match
their pin, applied to whole batches of events."""

from __future__ import annotations

import pyarrow as pa

from mixmesh import load_artifact, resource, udf
from python.features import feature_matrix

# Relative to the project: SQLMesh runs from there, and the fingerprint stays the same when
# the project moves.
MODEL_FILE = "artifacts/fraud_model.joblib"
PINS = "artifacts/SHA256SUMS"


@resource(watch=(MODEL_FILE, PINS))
def fraud_model():
    """The trained model; no fallback: scoring with no model, or with bytes that are not the
    ones training pinned, stops the run (an ArtifactError naming the file)."""
    return load_artifact(MODEL_FILE, pins=PINS)


@udf(vectorized=True)
def fraud_probability(amount: pa.Array, event_hour: pa.Array, merchant_risk: pa.Array) -> pa.Array:
    """The model's probability that each event is fraud."""
    features = feature_matrix(amount.to_numpy(zero_copy_only=False), event_hour.to_numpy(zero_copy_only=False),
                              merchant_risk.to_numpy(zero_copy_only=False))
    return pa.array(fraud_model().predict_proba(features)[:, 1], type=pa.float64())
