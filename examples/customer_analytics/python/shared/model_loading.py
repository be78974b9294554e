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


class OneThread:
    """A trained model whose predictions run on one OpenMP thread.

    The engine calls the functions from its own threads on batches of a few thousand rows;
    the model's OpenMP threads would only compete with them for the cores, and spin while
    they wait for one (predictions many times slower on a busy machine).
    """

    def __init__(self, model):
        self.model = model

    def predict(self, features):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="openmp"):
            return self.model.predict(features)

    def predict_proba(self, features):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="openmp"):
            return self.model.predict_proba(features)

    def __getattr__(self, name):  # the model's other attributes (classes_, n_features_in_...)
        return getattr(self.model, name)


def trained(path: str, fallback=None):
    """A pinned, trained model from ``path``, predicting on one thread; ``fallback`` otherwise."""
    model = load_artifact(path, pins=ARTIFACT_PINS, fallback=lambda: None)
    if model is None:  # missing or refused: load_artifact has warned and counted it
        return fallback() if fallback is not None else None
    return OneThread(model)


@resource(watch=(RISK_MODEL, ARTIFACT_PINS))
def load_risk_model():
    """Load the trained risk model once per process; the rules when it is missing or refused."""
    return trained(RISK_MODEL, fallback=SimpleRiskModel)
