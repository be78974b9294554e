"""The hybrid model's Python functions: engagement scoring and content recommendations.

The seed calls ``@python_engagement_score`` and ``@python_content_recommendations`` without
defining them; these are small, deterministic versions with the seed's arguments.
"""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import udf

# Two scoring variants, chosen per user (the seed passes user_id "for personalized model
# selection"): a stable hash, so a user always gets the same one. Plain tuples: SQLMesh
# stores module values as their repr, which for numpy arrays does not read back.
_WEIGHTS = (
    (0.10, 0.20, 0.25, 1.00, -0.0020),
    (0.15, 0.15, 0.30, 0.90, -0.0015),
)
_BIAS = -2.0


@udf(
    vectorized=True,
    # Counts as DOUBLE: COUNTIF is a SUM in DuckDB, a HUGEINT, which does not narrow to BIGINT.
    args=["DOUBLE", "DOUBLE", "DOUBLE", "DOUBLE", "DOUBLE", "VARCHAR"],
    returns="DOUBLE",
    null_handling="call",
)
def python_engagement_score(total_events, pages_visited, products_viewed, cart_additions, avg_time_between_events, user_id):
    """Engagement between 0 and 1 for each session: a logistic score of its activity."""
    # NULLs count as 0. avg_time_between_events is NULL for a one-event session, which has no
    # gap: its (negative) weight then adds nothing, neither reward nor penalty.
    features = np.column_stack([
        pc.fill_null(column, 0).to_numpy(zero_copy_only=False).astype(float)
        for column in (total_events, pages_visited, products_viewed, cart_additions, avg_time_between_events)
    ])
    variants = np.array([zlib.crc32((user or "").encode()) % 2 for user in user_id.to_pylist()])
    weights = np.where(variants[:, None] == 0, np.array(_WEIGHTS[0]), np.array(_WEIGHTS[1]))
    scores = 1.0 / (1.0 + np.exp(-(_BIAS + (features * weights).sum(axis=1))))
    return pa.array(np.round(scores, 6), type=pa.float64())


# An anonymous session (NULL user_id) gets content too. A session whose call fails gets NULL
# content rather than failing the hourly model; the failed row is quarantined with its arguments
# (mixmesh quarantine) and the model's quarantined_rows audit fails the hour if any was.
@udf(null_handling="call", on_error="null")
def python_content_recommendations(user_id: str | None, session_type: str, ml_engagement_score: float, products_viewed: int) -> list[str]:
    """Content to show next, by what the session did and how engaged it was."""
    content = {
        "converter": ["order_follow_up", "cross_sell"],
        "interested": ["cart_reminder", "limited_discount"],
        "browsing": ["top_products", "category_guides"],
        "casual": ["welcome_content"],
    }.get(session_type, ["welcome_content"])
    if ml_engagement_score > 0.8:
        content = content + ["premium_offer"]
    if products_viewed >= 3:
        content = content + ["similar_products"]
    return content
