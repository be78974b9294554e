"""Train the project's three ML models on the warehouse's raw tables, and pin their hashes.

The models the seed loads but never trains:
- the risk model (``predict_proba``): from a customer-day's six behavioural features (the
  ones ``python_risk_score`` computes), is this one of the customers whose whole history is
  nocturnal or volatile? The label looks at the whole period; the features at one day.
- the LTV regressor: from the features the LTV model computes over the first part of the
  period, the customer's spend over the rest of it, annualized.
- the confidence classifier: from the same features, will the regressor's prediction land
  within 50% of what the customer actually spent? (cross-validated predictions, so it is
  not judged on customers it was fitted on.)

Each is saved with joblib under ``artifacts/`` and pinned in ``artifacts/SHA256SUMS``, which
``load_artifact(pins=...)`` checks before unpickling. Everything is seeded: the same data
gives the same models.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import typing as t
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from mixmesh.resources import write_pins
from python.models.ltv.features import TRANSACTION_QUERY, engineer_ltv_features
from python.models.ltv.predictor import CONFIDENCE_MODEL, LTV_MODEL, ML_FEATURES
from python.shared.feature_engineering import behavioral_features
from python.shared.model_loading import ARTIFACT_PINS, RISK_MODEL

logger = logging.getLogger(__name__)

SEED = 0
# Whole-history thresholds marking the customers the risk model learns to recognise.
RISKY_NIGHT_RATIO = 0.35
RISKY_AMOUNT_CV = 1.5
ACCURATE_WITHIN = 0.5  # relative error under which an LTV prediction counts as accurate
_FEATURES_DAYS_SHARE = 0.5  # LTV: features from the first half of the period, spend from the rest

_DAILY_TRANSACTIONS = """
SELECT
    customer_id,
    score_date,
    list({
        'amount': amount,
        'merchant_category': merchant_category,
        'transaction_time': transaction_time,
        'payment_method': payment_method
    } ORDER BY transaction_time, amount) AS transaction_details
FROM raw.raw_transactions
WHERE transaction_date BETWEEN $start_date AND $end_date
GROUP BY customer_id, score_date
ORDER BY customer_id, score_date  -- the same rows in the same order: the same model
"""

_SPEND = """
SELECT customer_id, sum(amount) AS spend
FROM raw.raw_transactions
WHERE transaction_date BETWEEN $start_date AND $end_date
GROUP BY customer_id
"""


class TrainingError(ValueError):
    """The data cannot train a model (too few rows, a single class)."""

    pass  # SQLMesh stores classes without their docstring: the body must not be empty


@dataclasses.dataclass(frozen=True)
class Trained:
    """One trained model: where it was saved, what it learned from, how well it does."""

    name: str
    path: str
    rows: int
    metric: str
    score: float


Step = t.Callable[[str], None]


def train_all(connection: t.Any, start: datetime.date, end: datetime.date, step: Step = lambda _: None) -> t.List[Trained]:
    """Train and save the three models from ``raw`` data between ``start`` and ``end``; pin them.

    A model whose data cannot train it is not saved, and one saved before from other data is
    removed, so the project's rule-based fallback runs instead; the error is raised after the
    others are saved.
    """
    trained: t.List[Trained] = []
    failures: t.List[str] = []
    # One engine thread while training: a parallel SUM adds in a varying order, and features
    # that differ in their last bits can move a tree's split, so the same data would not
    # always give the same model.
    threads = connection.execute("SELECT current_setting('threads')").fetchone()[0]
    connection.execute("SET threads = 1")
    try:
        _train_each(connection, start, end, step, trained, failures)
    finally:
        connection.execute(f"SET threads = {int(threads)}")
    if trained:
        write_pins(ARTIFACT_PINS, [model.path for model in trained])
    if failures:
        raise TrainingError("; ".join(failures))
    return trained


def _train_each(connection: t.Any, start: datetime.date, end: datetime.date, step: Step,
                trained: t.List[Trained], failures: t.List[str]) -> None:
    import sklearn.ensemble  # noqa: F401 - loads the OpenMP runtime, so that the limit below applies to it
    from threadpoolctl import threadpool_limits

    for name, train, paths in (
        ("risk model", train_risk_model, [RISK_MODEL]),
        ("LTV models", train_ltv_models, [LTV_MODEL, CONFIDENCE_MODEL]),
    ):
        step(name)
        try:
            # One thread: these models are small, OpenMP threads competing with DuckDB's and
            # other processes' for two cores made training several times slower, and a
            # histogram summed by more threads can differ in its last bits (another model).
            with threadpool_limits(limits=1):
                trained.extend(train(connection, start, end))
        except TrainingError as error:
            failures.append(str(error))
            for path in paths:
                Path(path).unlink(missing_ok=True)


def train_risk_model(connection: t.Any, start: datetime.date, end: datetime.date) -> t.List[Trained]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    days = connection.execute(_DAILY_TRANSACTIONS, {"start_date": start, "end_date": end}).to_arrow_table()
    details = days.column("transaction_details").combine_chunks()
    lengths = pc.list_value_length(details).to_numpy(zero_copy_only=False)
    features = behavioral_features(details, lengths)
    labels = _risky_customers(connection, start, end, days.column("customer_id").to_numpy(zero_copy_only=False))
    _check_classes("risk model", labels)
    fit_x, held_x, fit_y, held_y = train_test_split(features, labels, test_size=0.25, random_state=SEED, stratify=labels)
    model = HistGradientBoostingClassifier(max_iter=150, early_stopping=False, random_state=SEED)
    model.fit(fit_x, fit_y)
    auc = roc_auc_score(held_y, model.predict_proba(held_x)[:, 1])
    model.fit(features, labels)  # evaluated on held-out days; the saved model sees them all
    return [_save("risk model", model, RISK_MODEL, len(labels), "held-out ROC AUC", auc)]


def _risky_customers(connection: t.Any, start: datetime.date, end: datetime.date, customer_ids: np.ndarray) -> np.ndarray:
    history = connection.execute(
        """
        SELECT
            customer_id,
            avg(CASE WHEN hour(transaction_time) < 6 OR hour(transaction_time) > 22 THEN 1 ELSE 0 END) AS night_ratio,
            coalesce(stddev_samp(amount) / nullif(avg(amount), 0), 0) AS amount_cv
        FROM raw.raw_transactions
        WHERE transaction_date BETWEEN $start_date AND $end_date
        GROUP BY customer_id
        """,
        {"start_date": start, "end_date": end},
    ).df()
    risky = set(history.loc[(history.night_ratio >= RISKY_NIGHT_RATIO) | (history.amount_cv >= RISKY_AMOUNT_CV), "customer_id"])
    return np.array([customer in risky for customer in customer_ids], dtype=int)


def train_ltv_models(connection: t.Any, start: datetime.date, end: datetime.date) -> t.List[Trained]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import r2_score
    from sklearn.model_selection import cross_val_predict

    cutoff = start + datetime.timedelta(days=max(int((end - start).days * _FEATURES_DAYS_SHARE), 0))
    later_days = (end - cutoff).days
    if later_days < 1:
        raise TrainingError(f"needs at least 2 days of data to learn future spend, got {start} to {end}")
    features = engineer_ltv_features(_customer_features(connection, start, cutoff), as_of=cutoff)
    spend = connection.execute(_SPEND, {"start_date": cutoff + datetime.timedelta(days=1), "end_date": end}).df()
    # Sorted: the engine returns groups in any order, and the fit depends on the order.
    customers = features.merge(spend, on="customer_id", how="left").sort_values("customer_id", ignore_index=True)
    x = customers[ML_FEATURES].fillna(0).astype(float)  # named: the predictor passes the same frame
    future_ltv = customers["spend"].fillna(0).to_numpy(dtype=float) * 365.0 / later_days
    if len(x) < 10:
        raise TrainingError(f"needs at least 10 customers, got {len(x)}")

    regressor = HistGradientBoostingRegressor(max_iter=150, early_stopping=False, random_state=SEED)
    predicted = cross_val_predict(regressor, x, future_ltv, cv=5)
    accurate = (np.abs(predicted - future_ltv) <= ACCURATE_WITHIN * np.maximum(future_ltv, 1.0)).astype(int)
    _check_classes("confidence model", accurate)
    classifier = HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=SEED)
    confidence = cross_val_predict(classifier, x, accurate, cv=5, method="predict_proba")[:, 1]
    regressor.fit(x, future_ltv)
    classifier.fit(x, accurate)
    return [
        _save("LTV regressor", regressor, LTV_MODEL, len(x), "cross-validated R²", r2_score(future_ltv, predicted)),
        _save("confidence classifier", classifier, CONFIDENCE_MODEL, len(x), "cross-validated accuracy",
              float(np.mean((confidence > 0.5) == accurate))),
    ]


def _customer_features(connection: t.Any, start: datetime.date, end: datetime.date) -> pd.DataFrame:
    # The LTV model's own query: its $name parameters are DuckDB's too.
    return connection.execute(TRANSACTION_QUERY, {"start_date": start, "end_date": end}).df()


def _check_classes(name: str, labels: np.ndarray) -> None:
    counts = np.bincount(labels, minlength=2)
    if counts.min() < 5:
        raise TrainingError(f"{name}: needs at least 5 examples of each class, got {counts[0]} and {counts[1]}")


def _save(name: str, model: t.Any, path: str, rows: int, metric: str, score: float) -> Trained:
    import joblib

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    logger.info("Saved the %s to %s (%s rows, %s %.3f)", name, path, rows, metric, score)
    return Trained(name, path, rows, metric, float(score))
