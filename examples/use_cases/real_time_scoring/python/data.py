"""Sample card events, the same for the same day: `python -m python.data [FIRST_DAY DAYS]`
appends them to raw.card_events in db.duckdb (run it from this folder)."""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

EVENTS_PER_DAY = 60


def events_of(day: date) -> pd.DataFrame:
    """One day's events; fraud is likelier at night, for large amounts and risky merchants."""
    rng = np.random.default_rng(day.toordinal())
    seconds = np.sort(rng.integers(0, 86_400, EVENTS_PER_DAY))
    amount = np.round(rng.lognormal(3.5, 1.0, EVENTS_PER_DAY), 2)
    merchant_risk = np.round(rng.beta(2, 5, EVENTS_PER_DAY), 3)
    hour = seconds // 3600
    night = (hour >= 22) | (hour < 6)
    logit = -7.0 + 0.9 * np.log1p(amount) + 2.0 * night + 4.0 * merchant_risk
    is_fraud = rng.random(EVENTS_PER_DAY) < 1 / (1 + np.exp(-logit))
    start = datetime.combine(day, datetime.min.time())
    return pd.DataFrame({
        "event_id": [f"E{day:%Y%m%d}-{n:03d}" for n in range(EVENTS_PER_DAY)],
        "event_time": [start + timedelta(seconds=int(s)) for s in seconds],
        "amount": amount,
        "merchant_risk": merchant_risk,
        "is_fraud": is_fraud,
    })


def append_events(connection: duckdb.DuckDBPyConnection, first_day: date, days: int) -> int:
    """Append `days` days of events from `first_day` to raw.card_events (created if missing)."""
    frame = pd.concat([events_of(first_day + timedelta(days=n)) for n in range(days)], ignore_index=True)
    connection.execute("CREATE SCHEMA IF NOT EXISTS raw")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS raw.card_events (event_id VARCHAR PRIMARY KEY, event_time TIMESTAMP, "
        "amount DOUBLE, merchant_risk DOUBLE, is_fraud BOOLEAN)"
    )
    connection.register("new_events", frame)
    connection.execute("INSERT INTO raw.card_events SELECT * FROM new_events")
    connection.unregister("new_events")
    return len(frame)


if __name__ == "__main__":
    first, days = (date.fromisoformat(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (date(2024, 1, 1), 7)
    with duckdb.connect("db.duckdb") as connection:
        print(f"{append_events(connection, first, days)} events appended to raw.card_events")
