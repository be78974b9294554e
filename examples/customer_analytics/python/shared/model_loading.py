"""ML model management: the trained risk model, or the seed's rule-based fallback."""

from __future__ import annotations

import logging

import numpy as np

from mixmesh import load_artifact, resource

logger = logging.getLogger(__name__)

# Relative to the project (SQLMesh runs from there): the same text on every machine, so
# moving the project does not change the fingerprints of the models using them.
RISK_MODEL = "artifacts/customer_risk_model.joblib"
# Written by the training (python/training.py): an artifact loads only if its bytes match.
ARTIFACT_PINS = "artifacts/SHA256SUMS"


class SimpleRiskModel:
    """Fallback rule-based risk model (the seed's thresholds).

    Corrected: the seed scored only the first row it was given; this scores every row.
    """

    def predict_proba(self, features):
        rows = np.asarray(features, dtype=float).reshape(-1, 6)
        night_ratio, amount_volatility, category_diversity = rows[:, 0], rows[:, 1], rows[:, 2]
        risk = 0.3 * (night_ratio > 0.3) + 0.4 * (amount_volatility > 2.0) + 0.3 * (category_diversity > 0.8)
        return np.column_stack([1.0 - risk, risk])


@resource(watch=(RISK_MODEL, ARTIFACT_PINS))
def load_risk_model():
    """Load the trained risk model once per process; the rules when it is missing or refused."""
    return load_artifact(RISK_MODEL, pins=ARTIFACT_PINS, fallback=SimpleRiskModel)
