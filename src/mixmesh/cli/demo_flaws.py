"""Flawed demo data (``generate(..., dirty=f)``, ``mixmesh demo --dirty f``): what real sources send.

``add_flaws`` rewrites the clean raw tables in place. In each table the rows get a fixed
position (ordered by their key), and flaws are drawn for exactly ``round(f * rows)``
positions per kind, each kind on its own seeded stream, so the same seed gives the same
flaws and the clean streams are untouched:

- every column of every table (none is declared NOT NULL, keys included) is NULL in
  ``round(f * rows)`` rows, drawn per column;
- ``raw_transactions``: late arrivals (``transaction_time`` 1 to 3 days earlier than the day
  the row is filed under, ``transaction_date`` = ``score_date``, which keep that day), zero
  amounts and negative ones (half each), and merchant names in Unicode in place of the
  ``merchant_category``;
- ``raw_transactions`` and ``raw_events``: exact duplicate rows, next to their original.

The value flaws come first, then the NULLs, then the duplicates, which copy a row with
whatever flaws it has.
"""

from __future__ import annotations

import typing as t

import numpy as np
import pyarrow as pa

if t.TYPE_CHECKING:
    import duckdb

# The order in which rows get their positions: each key is unique in the clean tables.
KEYS = {
    "dim_customers": "customer_id",
    "raw_transactions": "transaction_id",
    "raw_events": "session_id, event_timestamp",
}
DUPLICATED = ("raw_transactions", "raw_events")
LATE_DAYS = (1, 3)  # how much earlier than its filing day a late transaction happened

# Names a merchant feed really carries: accents, precomposed and decomposed (combining
# marks: the same words, other bytes), CJK, emoji (one a ZWJ sequence), right-to-left
# scripts, mixed directions, and a zero-width space.
MERCHANT_NAMES = (
    "Café Crème",
    "Cafe\u0301 Cre\u0300me",
    "Müller Bäckerei",
    "Señor Taco",
    "Zoe\u0308's Deli",
    "Łódź Księgarnia",
    "東京ラーメン",
    "北京烤鸭店",
    "서울 치킨",
    "🍕 Pizza Planet",
    "Coffee ☕ Corner",
    "👨\u200d👩\u200d👧 Family Mart",
    "مطعم القدس",
    "קפה טוב",
    "Shop שלום 24/7",
    "Zero\u200bWidth Books",
)

_ROW = "__mixmesh_row"
_FLAWS_VIEW = "__mixmesh_demo_flaws"
_STREAM = 3  # after the customers' (0), transactions' (1) and events' (2) streams
# Each kind of flaw draws from its own stream: a kind added later moves no other.
_DUPLICATES, _LATE, _AMOUNTS, _MERCHANTS = range(4)
_NULLS = 100  # + the column's index


def add_flaws(connection: "duckdb.DuckDBPyConnection", schema: str, fraction: float, seed: int) -> t.Dict[str, int]:
    """Put the flaws into the tables of ``schema``; return each table's rows afterwards."""
    return {
        table: _flaw_table(connection, schema, table, _Draws(fraction, seed, index))
        for index, table in enumerate(KEYS)
    }


class _Draws:
    """The positions of one table's flaws: ``round(fraction * rows)`` of them per kind."""

    def __init__(self, fraction: float, seed: int, table_index: int) -> None:
        self.fraction, self.seed, self.table_index = fraction, seed, table_index

    def rng(self, kind: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=(_STREAM, self.table_index, kind)))

    def positions(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        return rng.choice(rows, size=round(self.fraction * rows), replace=False)

    def mask(self, kind: int, rows: int) -> np.ndarray:
        chosen = np.zeros(rows, dtype=bool)
        chosen[self.positions(self.rng(kind), rows)] = True
        return chosen


def _flaw_table(connection: "duckdb.DuckDBPyConnection", schema: str, table: str, draws: _Draws) -> int:
    target = f"{_quote(schema)}.{_quote(table)}"
    rows = connection.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
    if rows == 0:
        return 0
    columns = [name for name, *_ in connection.execute(f"DESCRIBE {target}").fetchall()]
    flaws: t.Dict[str, t.Any] = {_ROW: np.arange(rows, dtype=np.int64)}
    values = {column: _quote(column) for column in columns}
    if table == "raw_transactions":
        values.update(_transaction_flaws(draws, rows, flaws))
    selected = []
    for index, column in enumerate(columns):
        flag = f"__null_{index}"
        flaws[flag] = draws.mask(_NULLS + index, rows)
        selected.append(f"CASE WHEN {flag} THEN NULL ELSE {values[column]} END AS {_quote(column)}")
    copies = np.ones(rows, dtype=np.int64)
    if table in DUPLICATED:
        copies += draws.mask(_DUPLICATES, rows)
    chosen = pa.table({name: _column(np.repeat(array, copies)) for name, array in flaws.items()})
    connection.register(_FLAWS_VIEW, chosen)
    try:
        connection.execute(
            f"""
            CREATE OR REPLACE TABLE {target} AS
            SELECT {", ".join(selected)}
            FROM (SELECT *, row_number() OVER (ORDER BY {KEYS[table]}) - 1 AS {_ROW} FROM {target})
            JOIN {_FLAWS_VIEW} USING ({_ROW})
            ORDER BY {_ROW}
            """
        )
    finally:
        connection.unregister(_FLAWS_VIEW)
    return chosen.num_rows


def _transaction_flaws(draws: _Draws, rows: int, flaws: t.Dict[str, t.Any]) -> t.Dict[str, str]:
    """Late arrivals, zero and negative amounts, Unicode merchant names: their columns and SQL."""
    rng = draws.rng(_LATE)
    late = np.zeros(rows, dtype=np.int64)
    chosen = draws.positions(rng, rows)
    late[chosen] = rng.integers(LATE_DAYS[0], LATE_DAYS[1], size=len(chosen), endpoint=True)

    rng = draws.rng(_AMOUNTS)
    amount = np.zeros(rows, dtype=np.int8)  # 0 as generated, 1 zero, 2 negated
    chosen = draws.positions(rng, rows)
    amount[chosen] = 1 + (rng.random(len(chosen)) < 0.5)

    rng = draws.rng(_MERCHANTS)
    merchant = np.full(rows, None, dtype=object)
    chosen = draws.positions(rng, rows)
    merchant[chosen] = np.asarray(MERCHANT_NAMES, dtype=object)[rng.integers(0, len(MERCHANT_NAMES), len(chosen))]

    flaws.update(__late_days=late, __amount_flaw=amount, __merchant=merchant)
    return {
        "transaction_time": "transaction_time - to_days(CAST(__late_days AS INTEGER))",
        "amount": "CASE __amount_flaw WHEN 1 THEN CAST(0 AS DOUBLE) WHEN 2 THEN -amount ELSE amount END",
        "merchant_category": "coalesce(__merchant, merchant_category)",
    }


def _column(values: np.ndarray) -> pa.Array:
    # Strings (and None) stay strings even when no row of a chunk has one.
    return pa.array(values, type=pa.string() if values.dtype == object else None)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
