"""The trend rule: whether a series of runs' figures is degrading, improving or stable.

**Trend rule** (``trend``): over a model's last ``TREND_WINDOW`` (100) successful runs in
time order, with at least ``MIN_RUNS`` (6) values, a series is *degrading* (for time and
memory: rising; for rows/s: falling) when

- the Mann–Kendall test rejects "no monotonic trend": two-sided p < ``ALPHA`` (0.05),
  normal approximation with tie correction and continuity correction; and
- the change it amounts to matters: the Theil–Sen slope (median of pairwise slopes, per
  run) times (n − 1), relative to the series' median, is at least ``MIN_CHANGE`` (10 %) in
  absolute value;

*improving* when both hold with a falling series, *stable* otherwise, and *unknown* with
fewer than ``MIN_RUNS`` values. The second condition keeps a tiny but steady drift, which
a long series makes "significant", from being called a degradation.
"""

from __future__ import annotations

import dataclasses
import math
import typing as t

ALPHA = 0.05
MIN_RUNS = 6
TREND_WINDOW = 100
MIN_CHANGE = 0.10

IMPROVING, STABLE, DEGRADING, UNKNOWN = "improving", "stable", "degrading", "unknown"


@dataclasses.dataclass(frozen=True)
class Trend:
    """A series' direction by the trend rule, with the figures it was decided on."""

    direction: str  # improving, stable, degrading or unknown
    n: int
    s: int = 0  # Mann–Kendall S
    z: float = 0.0
    p_value: t.Optional[float] = None
    slope: t.Optional[float] = None  # Theil–Sen, units per run
    change: t.Optional[float] = None  # slope × (n − 1) / |median|

    @property
    def rising(self) -> bool:
        """Significantly up by the rule, whatever is better."""
        return self.direction != UNKNOWN and self.direction != STABLE and (self.slope or 0) > 0

    def to_dict(self) -> t.Dict[str, t.Any]:
        return dataclasses.asdict(self)


def mann_kendall(values: t.Sequence[float]) -> t.Tuple[int, float, float, float]:
    """Mann–Kendall S, Var(S) with tie correction, Z with continuity correction, two-sided p."""
    n = len(values)
    s = sum(_sign(values[j] - values[i]) for i in range(n) for j in range(i + 1, n))
    ties: t.Dict[float, int] = {}
    for value in values:
        ties[value] = ties.get(value, 0) + 1
    variance = (n * (n - 1) * (2 * n + 5) - sum(k * (k - 1) * (2 * k + 5) for k in ties.values())) / 18
    if variance <= 0 or s == 0:
        return s, variance, 0.0, 1.0
    z = (s - _sign(s)) / math.sqrt(variance)
    return s, variance, z, math.erfc(abs(z) / math.sqrt(2))


def theil_sen_slope(values: t.Sequence[float]) -> float:
    """The median of the slopes between every pair of points, per step."""
    n = len(values)
    slopes = sorted((values[j] - values[i]) / (j - i) for i in range(n) for j in range(i + 1, n))
    return _median(slopes) if slopes else 0.0


def trend(
    values: t.Sequence[float],
    *,
    higher_is_worse: bool = True,
    alpha: float = ALPHA,
    min_runs: int = MIN_RUNS,
    min_change: float = MIN_CHANGE,
) -> Trend:
    """The direction of ``values`` (oldest first) by the trend rule of this module."""
    values = [float(value) for value in values if value is not None and not math.isnan(value)]
    n = len(values)
    if n < min_runs:
        return Trend(UNKNOWN, n)
    s, _, z, p = mann_kendall(values)
    slope = theil_sen_slope(values)
    median = abs(_median(sorted(values)))
    change = slope * (n - 1) / median if median else (0.0 if slope == 0 else math.copysign(math.inf, slope))
    direction = STABLE
    if p < alpha and abs(change) >= min_change and _sign(slope) == _sign(s):
        direction = DEGRADING if (slope > 0) == higher_is_worse else IMPROVING
    return Trend(direction, n, s, z, p, slope, change)



def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _median(ordered: t.Sequence[float]) -> float:
    n = len(ordered)
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
