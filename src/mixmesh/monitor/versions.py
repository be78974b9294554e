"""Runs grouped by model version: SQLMesh's snapshot fingerprint, recorded with every run.

A model's fingerprint changes with its code, its metadata or an upstream model's, so runs of
one version ran the same code on the same inputs' definitions; ``mixmesh stats`` and the
report compare like with like by keeping versions apart, and mark where the version changed.
Runs recorded before versions were kept have none: they count as one version, "not recorded".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing as t

if t.TYPE_CHECKING:
    import pandas as pd


@dataclasses.dataclass(frozen=True)
class VersionStats:
    """One model version's runs: SQLMesh's snapshot fingerprint and what its runs cost."""

    model: str
    version: t.Optional[str]  # the fingerprint; None for runs recorded before versions were kept
    snapshot_version: t.Optional[str]  # the snapshot's table version (latest run's)
    environments: t.List[str]  # where it ran (prod, dev...), in name order
    runs: int
    failed: int
    first_run_at: dt.datetime
    last_run_at: dt.datetime
    mean_s: t.Optional[float]  # over successful runs
    p95_s: t.Optional[float]
    peak_memory_mb: t.Optional[float]  # the process's highest peak
    added_memory_mb: t.Optional[float]  # the most one evaluation added
    version_changed: bool  # the model ran another version before this one (first runs, oldest first)


def version_keys(runs: "pd.DataFrame") -> "pd.Series":
    """Each run's model version as a key: its fingerprint, or "" where none was recorded."""
    import pandas as pd

    if "fingerprint" not in runs:
        return pd.Series("", index=runs.index, dtype=object)
    return runs["fingerprint"].map(lambda value: value if isinstance(value, str) else "")


def version_stats(model: str, runs: "pd.DataFrame") -> t.List[VersionStats]:
    """The model's runs grouped by model version, the version first run earliest first."""
    import numpy as np

    runs = runs.sort_values("started_at", kind="stable")
    keys = version_keys(runs)
    found = []
    for position, key in enumerate(dict.fromkeys(keys)):  # in order of first run
        group = runs[keys == key]
        times = group[group["status"] == "ok"]["total_s"].astype(float).tolist()
        tables = group["snapshot_version"].dropna() if "snapshot_version" in group else ()
        found.append(VersionStats(
            model=model,
            version=key or None,
            snapshot_version=str(tables.iloc[-1]) if len(tables) else None,
            environments=sorted({str(e) for e in group.get("environment", ()) if isinstance(e, str)}),
            runs=len(group),
            failed=int((group["status"] != "ok").sum()),
            first_run_at=group["started_at"].min().to_pydatetime(),
            last_run_at=group["started_at"].max().to_pydatetime(),
            mean_s=float(np.mean(times)) if times else None,
            p95_s=float(np.percentile(times, 95)) if times else None,
            peak_memory_mb=largest_number(group["peak_rss_mb"]),
            added_memory_mb=largest_number(group.get("added_rss_mb", ())),
            version_changed=position > 0,
        ))
    return found


def largest_number(values: t.Iterable[t.Any]) -> t.Optional[float]:
    import pandas as pd

    known = [float(value) for value in values if not pd.isna(value)]
    return max(known) if known else None
