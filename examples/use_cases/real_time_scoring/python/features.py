"""The model's features, one definition for training and for scoring."""

from __future__ import annotations

import numpy as np

# Night is before 06:00 or from 22:00.
NIGHT_HOURS = (22, 6)


def feature_matrix(amount, hour, merchant_risk) -> np.ndarray:
    """[log(1 + amount), is night, merchant risk] per event, from array-likes."""
    amount = np.asarray(amount, dtype=float)
    hour = np.asarray(hour, dtype=float)
    night = (hour >= NIGHT_HOURS[0]) | (hour < NIGHT_HOURS[1])
    return np.column_stack([np.log1p(amount), night.astype(float), np.asarray(merchant_risk, dtype=float)])
