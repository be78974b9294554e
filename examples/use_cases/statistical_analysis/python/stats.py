"""Statistics SQL does not have, over lists SQL aggregates: vectorized functions.

Each function receives a batch of stores as one Arrow list array (one ``ARRAY_AGG`` list per
row) and returns one value per store, computed with numpy and scipy. NULL amounts inside a
list are skipped; a store with too few values for the statistic gets NULL.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from mixmesh import udf

# Below this, a normality test says nothing (scipy's Shapiro-Wilk needs 3 values).
MIN_VALUES_FOR_NORMALITY = 3


def value_groups(lists: pa.Array) -> list[np.ndarray]:
    """Each row's list as a numpy array of its non-NULL values."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(lists).cast(pa.float64()).to_numpy(zero_copy_only=False)  # NULL -> NaN
    return [group[~np.isnan(group)] for group in np.split(values, np.cumsum(lengths)[:-1])]


@udf(vectorized=True)
def median_abs_deviation(amounts: pa.Array) -> pa.Array:
    """The median absolute deviation of each list, scaled to estimate a normal standard
    deviation (x 1.4826), so it reads like one but one outlier cannot inflate it."""
    return pa.array(
        [float(stats.median_abs_deviation(group, scale="normal")) if len(group) else None for group in value_groups(amounts)],
        type=pa.float64(),
    )


@udf(vectorized=True)
def normality_p_value(amounts: pa.Array) -> pa.Array:
    """The Shapiro-Wilk p-value of each list: small when the values are not normally
    distributed (then mean and standard deviation describe them badly)."""
    return pa.array(
        [float(stats.shapiro(group).pvalue) if len(group) >= MIN_VALUES_FOR_NORMALITY else None for group in value_groups(amounts)],
        type=pa.float64(),
    )
