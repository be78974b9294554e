"""The trend rule: whether a series of runs' figures is degrading, improving or stable.

**Trend rule** (``trend``): over a model's last ``TREND_WINDOW`` (100) successful runs in
time order, with at least ``MIN_RUNS`` (6) values, a series is *degrading* (for time and
memory: rising; for rows/s: falling) when

- the Mann–Kendall test rejects "no monotonic trend": two-sided p < ``ALPHA`` (0.05),
  normal approximation with tie correction and continuity correction; and
- the change it amounts to matters: the Theil–Sen slope (median of pairwise slopes, per
  run) times (n − 1), relative to the series' median, is at least ``MIN_CHANGE`` (10 %) in
  absolute value; and, for run times, the same change in a run of the median size is at
  least ``MIN_CHANGE_S`` (0.05 s, 50 ms);

*improving* when all hold with a falling series, *stable* otherwise, and *unknown* with
fewer than ``MIN_RUNS`` values. The size conditions keep a tiny but steady drift, which a
long series makes "significant", from being called a degradation, and keep the jitter of
a busy machine (a 100 ms model taking 98 to 118 ms) from being called one either.

**Run times are compared per unit of work** (``time_trend``): seconds per row written
where every run reports its rows, else seconds per day of the interval it built where
every run has one, else seconds per run. A run that built 7 days is not compared with
one that built 1 day as if they were equal. ``Trend.basis`` says which was used.

The thresholds are settings (``TrendThresholds.from_settings``):
``MIXMESH_TREND_MIN_CHANGE`` (relative, "10%" or 0.1) and ``MIXMESH_TREND_MIN_CHANGE_MS``.
"""

from __future__ import annotations

import dataclasses
import math
import typing as t

ALPHA = 0.05
MIN_RUNS = 6
TREND_WINDOW = 100
MIN_CHANGE = 0.10
MIN_CHANGE_S = 0.050

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
    absolute: t.Optional[float] = None  # slope × (n − 1) × scale: in the figure's units, for a median-sized run
    basis: str = "run"  # what one value is per: run, row or interval day

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
    min_absolute: t.Optional[float] = None,
    scale: float = 1.0,
    basis: str = "run",
) -> Trend:
    """The direction of ``values`` (oldest first) by the trend rule of this module.

    ``min_absolute`` is the smallest change that counts, in the units of ``values`` times
    ``scale`` (the size of a typical run when values are per row or per day)."""
    values = [float(value) for value in values if value is not None and not math.isnan(value)]
    n = len(values)
    if n < min_runs:
        return Trend(UNKNOWN, n, basis=basis)
    s, _, z, p = mann_kendall(values)
    slope = theil_sen_slope(values)
    median = abs(_median(sorted(values)))
    change = slope * (n - 1) / median if median else (0.0 if slope == 0 else math.copysign(math.inf, slope))
    absolute = slope * (n - 1) * scale
    large = abs(change) >= min_change and (min_absolute is None or abs(absolute) >= min_absolute)
    direction = STABLE
    if p < alpha and large and _sign(slope) == _sign(s):
        direction = DEGRADING if (slope > 0) == higher_is_worse else IMPROVING
    return Trend(direction, n, s, z, p, slope, change, absolute, basis)


@dataclasses.dataclass(frozen=True)
class TrendThresholds:
    """How large a significant change must be to count: relative, and in seconds per run."""

    alpha: float = ALPHA
    min_change: float = MIN_CHANGE
    min_change_s: float = MIN_CHANGE_S

    @classmethod
    def from_settings(cls) -> "TrendThresholds":
        """``MIXMESH_TREND_MIN_CHANGE`` and ``MIXMESH_TREND_MIN_CHANGE_MS``, where set."""
        from mixmesh.core import settings

        return cls(
            min_change=settings.number("MIXMESH_TREND_MIN_CHANGE", MIN_CHANGE, percent=True),
            min_change_s=settings.number("MIXMESH_TREND_MIN_CHANGE_MS", MIN_CHANGE_S * 1000) / 1000,
        )


def time_trend(
    seconds: t.Sequence[float],
    *,
    rows: t.Optional[t.Sequence[t.Optional[float]]] = None,
    interval_days: t.Optional[t.Sequence[t.Optional[float]]] = None,
    thresholds: TrendThresholds = TrendThresholds(),
) -> Trend:
    """The trend of run times, per row or per interval day where every run says (see the module)."""
    basis, sizes = _work(len(seconds), rows, interval_days)
    per_unit = [value / size for value, size in zip(seconds, sizes)]
    return trend(
        per_unit, alpha=thresholds.alpha, min_change=thresholds.min_change, min_absolute=thresholds.min_change_s,
        scale=_median(sorted(sizes)) if sizes else 1.0, basis=basis,
    )


def _work(
    n: int, rows: t.Optional[t.Sequence[t.Optional[float]]], days: t.Optional[t.Sequence[t.Optional[float]]]
) -> t.Tuple[str, t.List[float]]:
    """What each run's time is divided by: its rows, its interval's days, or nothing."""
    for basis, sizes in (("row", rows), ("interval day", days)):
        if sizes is not None and len(sizes) == n and all(_positive(size) for size in sizes):
            return basis, [float(t.cast(float, size)) for size in sizes]
    return "run", [1.0] * n


def _positive(value: t.Optional[float]) -> bool:
    return value is not None and not math.isnan(value) and value > 0


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _median(ordered: t.Sequence[float]) -> float:
    n = len(ordered)
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
