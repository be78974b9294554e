"""LTV predictions: spend so far, scaled by segment, rewarded for coming back, capped per segment."""

from __future__ import annotations

import numpy as np
import pandas as pd

from python.shared.data_validation import require_between

# Plain dicts and numbers: SQLMesh stores module-level values a model uses as their repr.
SEGMENT_MULTIPLIER = {"consumer": 2.0, "smb": 3.0, "enterprise": 4.0}
SEGMENT_MAX_LTV = {"consumer": 5_000.0, "smb": 50_000.0, "enterprise": 500_000.0}
UNKNOWN_SEGMENT_MULTIPLIER = 1.0
REPEAT_BONUS = 1.5


def predict_ltv(features: pd.DataFrame) -> pd.DataFrame:
    """``features`` with ``predicted_ltv``, rounded to cents, within its segment's cap."""
    frame = features.copy()
    multiplier = frame["customer_segment"].map(SEGMENT_MULTIPLIER).fillna(UNKNOWN_SEGMENT_MULTIPLIER)
    bonus = np.where(frame["repeat_customer"], REPEAT_BONUS, 1.0)
    cap = frame["customer_segment"].map(SEGMENT_MAX_LTV).fillna(min(SEGMENT_MAX_LTV.values()))
    frame["predicted_ltv"] = np.minimum(frame["total_spend"] * multiplier * bonus, cap).round(2)
    return require_between(frame, "predicted_ltv", 0, max(SEGMENT_MAX_LTV.values()), where="LTV predictions")
