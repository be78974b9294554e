"""Demo source data: customers, their transactions and their web events, the same on every run.

``generate`` writes the three tables the seed document's example models read into a DuckDB
schema (``raw`` unless told otherwise), replacing any that exist, and returns their row counts::

    generate(duckdb.connect("demo.duckdb"), customers=2_000, transactions=200_000, days=30)

- ``dim_customers``: one row per customer (``C000001``...): age group, income bracket, region,
  segment (mostly consumer, some smb, few enterprise), signup date, tenure at ``end_date``,
  and ``is_active`` (false for the ~12% who churned).
- ``raw_transactions``: skewed per customer (a lognormal activity weight, so a tenth of the
  customers make about half of the transactions); amounts lognormal around a segment's scale,
  with volatile customers whose amounts vary far more and sometimes spike; ~10% of customers
  buy mostly between 23:00 and 06:00; churned customers stop before the last 40% of the
  period; customers who signed up during the period start on their signup day.
- ``raw_events``: sessions of a few events minutes apart, each opening on a page view; some
  sessions add a viewed product to the cart and some of those end on its purchase, so the
  funnel narrows from views to carts to purchases.

With ``dirty=f`` (a fraction from 0 to 1; 0, the default, leaves the tables above as they
are), ``mixmesh.cli.demo_flaws`` then adds what real sources send: NULLs in every column,
duplicate rows, late-arriving transactions, zero and negative amounts, Unicode merchant
names, each in about ``f`` of the rows.

Everything is drawn with numpy from streams keyed by ``seed`` and written to DuckDB in
chunks of rows, so the same arguments give the same tables, fast. Each table's stream is its
own: more transactions do not change the customers, nor the events.

Longer than 450 lines because it is one generator: the three raw tables share their
customers, their calendar and their seeded random streams, which would read apart only with
much passing around.
"""

from __future__ import annotations

import dataclasses
import datetime
import typing as t

import math

import numpy as np
import pyarrow as pa

from mixmesh.cli.demo_flaws import add_flaws
from mixmesh.core.errors import MixmeshError

if t.TYPE_CHECKING:
    import duckdb

Progress = t.Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True)
class DemoSizes:
    """How much demo data to generate: rows per table and the days the period spans."""

    customers: int = 2_000
    transactions: int = 200_000
    events: int = 100_000
    days: int = 30


SIZES = DemoSizes()
END_DATE = datetime.date(2024, 1, 31)
SEED = 42
SCHEMA = "raw"
TABLES = ("dim_customers", "raw_transactions", "raw_events")


class DemoDataError(MixmeshError, ValueError):
    """``generate`` was given sizes, a date, a seed or a schema it cannot use."""


# Rows drawn and written at a time: bounds memory and paces the progress callback. The data
# depends on it (each chunk has its own random stream), so it is a constant.
_CHUNK_ROWS = 1 << 17
_CHUNK_VIEW = "__mixmesh_demo_chunk"

_HOUR_US = 3_600 * 1_000_000
_DAY_US = 24 * _HOUR_US
_UNIX_EPOCH = datetime.date(1970, 1, 1)

# --- customers
_SEGMENTS = ("consumer", "smb", "enterprise")
_SEGMENT_SHARES = (0.82, 0.14, 0.04)
_SEGMENT_ACTIVITY = np.array([1.0, 2.0, 3.5])  # businesses transact more often
_SEGMENT_MEDIAN_AMOUNT = np.array([35.0, 320.0, 3_800.0])
_AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_AGE_SHARES = (0.12, 0.22, 0.21, 0.18, 0.15, 0.12)
_INCOME_BRACKETS = ("<25k", "25k-50k", "50k-75k", "75k-100k", "100k-150k", "150k+")
_INCOME_SHARES = (0.14, 0.22, 0.20, 0.16, 0.16, 0.12)
_REGIONS = ("northeast", "southeast", "midwest", "southwest", "west", "international")
_REGION_SHARES = (0.18, 0.22, 0.20, 0.14, 0.20, 0.06)
_NEW_SHARE = 0.05  # signed up during the period
_CHURN_SHARE = 0.13  # of the others: ~12% of all customers
_CHURN_ACTIVE_SHARE = 0.6  # churned customers transact only in this first part of the period
_NIGHT_HEAVY_SHARE = 0.10
_VOLATILE_SHARE = 0.08
_SIGNUP_MEAN_DAYS = 540  # before the period, exponential: most accounts are a year or two old
_SIGNUP_MAX_DAYS = 3_650

# --- transactions
_ACTIVITY_SIGMA = 1.1  # lognormal weight per customer: the top 10% hold ~half the rows
_CUSTOMER_SCALE_SIGMA = 0.5  # customers of one segment spend at different levels
_STEADY_SIGMA = (0.3, 0.7)  # amount spread of an ordinary customer: CV 0.3-0.8
_VOLATILE_SIGMA = 1.3  # CV ~2, before spikes
_SPIKE_CHANCE = 0.05
_SPIKE_FACTOR = 20.0
_MIN_AMOUNT = 0.5
_FAVORITE_CATEGORY_SHARE = 0.35
_PRIMARY_PAYMENT_SHARE = 0.7
_NIGHT_SHARE = 0.8  # of a night-heavy customer's rows, drawn from 23:00-06:00
# Relative weights per hour of the day for everyone else: quiet nights, busy lunch and evening.
_HOUR_WEIGHTS = (
    0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2.5, 3.5, 4.2, 4.6, 5.0,
    5.6, 5.2, 4.8, 4.6, 4.8, 5.4, 6.0, 6.2, 5.6, 4.4, 2.8, 1.4,
)  # fmt: skip
# name: weight for consumer, smb, enterprise customers
_CATEGORIES = {
    "grocery": (16, 3, 1),
    "restaurants": (12, 5, 2),
    "fuel": (8, 6, 3),
    "general_retail": (9, 3, 1),
    "apparel": (6, 1, 0.5),
    "electronics": (5, 4, 3),
    "home_improvement": (4, 3, 1),
    "pharmacy": (5, 1, 0.5),
    "healthcare": (3, 2, 1),
    "entertainment": (5, 1, 0.5),
    "subscriptions": (4, 1, 0.5),
    "travel": (3, 5, 8),
    "airlines": (2, 4, 7),
    "hotels": (2, 4, 7),
    "utilities": (4, 5, 5),
    "telecom": (3, 4, 4),
    "insurance": (2, 3, 4),
    "education": (1.5, 1, 1),
    "office_supplies": (0.5, 7, 6),
    "software": (0.5, 8, 12),
    "wholesale": (0.3, 8, 10),
    "professional_services": (0.3, 6, 10),
    "jewelry": (0.7, 0.3, 0.1),
    "gambling": (0.8, 0, 0),
    "crypto_exchange": (0.5, 0.2, 0.1),
}
_PAYMENT_METHODS = {
    "card": (38, 45, 30),
    "debit": (30, 15, 3),
    "wallet": (20, 6, 1),
    "bank_transfer": (3, 32, 66),
    "bnpl": (6, 1, 0),
    "gift_card": (3, 1, 0),
}

# --- events
_EVENT_TYPES = ("page_view", "product_view", "search", "add_to_cart", "purchase")
_PAGE_VIEW, _PRODUCT_VIEW, _SEARCH, _ADD_TO_CART, _PURCHASE = range(len(_EVENT_TYPES))
_BROWSE_SHARES = (0.40, 0.45, 0.15)  # page_view, product_view, search after the first event
_SESSION_STOP = 0.25  # geometric: sessions of 2 or more events, 5 on average
_CART_CHANCE = 0.30  # of sessions with room for view, product, cart (3+ events)
_PURCHASE_CHANCE = 0.45  # of those carts with room for a purchase after them
_GAP_MEAN_SECONDS = 45.0
_GAP_MIN_SECONDS = 2
_PRODUCTS = 2_000
_PRODUCT_ZIPF = 1.1
_PAGES = {
    "/": 30,
    "/deals": 10,
    "/new-arrivals": 6,
    "/category/electronics": 8,
    "/category/home": 7,
    "/category/apparel": 7,
    "/category/beauty": 5,
    "/category/sports": 5,
    "/account": 4,
    "/orders": 3,
    "/help": 2,
    "/blog": 2,
}
_SEARCH_TERMS = (
    "headphones", "running+shoes", "coffee+maker", "laptop", "gift+ideas", "desk+lamp",
    "yoga+mat", "phone+case", "backpack", "sale",
)  # fmt: skip


def generate(
    connection: "duckdb.DuckDBPyConnection",
    *,
    customers: int = SIZES.customers,
    transactions: int = SIZES.transactions,
    events: int = SIZES.events,
    days: int = SIZES.days,
    end_date: t.Union[datetime.date, str] = END_DATE,
    seed: int = SEED,
    schema: str = SCHEMA,
    progress: t.Optional[Progress] = None,
    dirty: float = 0.0,
) -> t.Dict[str, int]:
    """Write ``dim_customers``, ``raw_transactions`` and ``raw_events`` into ``schema``; return row counts.

    The period is the ``days`` days ending on ``end_date`` (inclusive). ``progress``, if
    given, is called as ``progress(table, rows_written, rows_total)``: once with 0 when a
    table starts, then after each chunk written, the last call with ``rows_total``.
    ``dirty``, a fraction from 0 to 1, adds flaws to about that share of the rows
    (``mixmesh.cli.demo_flaws``); the counts returned then include the duplicate rows.
    """
    for name, value in (("customers", customers), ("transactions", transactions), ("events", events)):
        _check_count(name, value, minimum=0)
    _check_count("days", days, minimum=1)
    _check_count("seed", seed, minimum=0)
    _check_fraction("dirty", dirty)
    if customers == 0 and (transactions or events):
        raise DemoDataError("demo data: transactions and events need customers (customers=0)")
    if progress is not None and not callable(progress):
        raise DemoDataError(f"demo data: progress must be a callable (step, done, total), not {progress!r}")
    if not isinstance(schema, str) or not schema:
        raise DemoDataError(f"demo data: schema must be a non-empty name, not {schema!r}")
    period = _Period(_end_date(end_date), days)

    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
    people = _draw_customers(customers, period, seed)
    _write_customers(connection, schema, people, period, _reporter(progress, "dim_customers", customers))
    _write_transactions(
        connection, schema, people, period, transactions, seed, _reporter(progress, "raw_transactions", transactions)
    )
    _write_events(connection, schema, people, period, events, seed, _reporter(progress, "raw_events", events))
    if dirty:
        return add_flaws(connection, schema, float(dirty), seed)
    return {"dim_customers": customers, "raw_transactions": transactions, "raw_events": events}


def _check_count(name: str, value: t.Any, minimum: int) -> None:
    # bool is an int, and numpy integers are not: both would surprise a caller.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DemoDataError(f"demo data: {name} must be an integer >= {minimum}, not {value!r}")


def _check_fraction(name: str, value: t.Any) -> None:
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    # NaN compares false with everything, so it is refused by name, not by the range check.
    if not number or math.isnan(value) or not 0 <= value <= 1:
        raise DemoDataError(f"demo data: {name} must be a fraction from 0 to 1 (such as 0.05), not {value!r}")


def _end_date(value: t.Union[datetime.date, str]) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise DemoDataError(f"demo data: end_date must be a date or 'YYYY-MM-DD', not {value!r}")


def _reporter(progress: t.Optional[Progress], step: str, total: int) -> t.Callable[[int], None]:
    last = -1

    def report(done: int) -> None:
        nonlocal last
        # Only news: an empty table reports 0 once, not once per (empty) chunk.
        if progress is not None and done > last:
            last = done
            progress(step, done, total)

    return report


@dataclasses.dataclass(frozen=True)
class _Period:
    """The ``days`` days ending on ``end``; times are microseconds from its first midnight."""

    end: datetime.date
    days: int

    @property
    def start(self) -> datetime.date:
        return self.end - datetime.timedelta(days=self.days - 1)

    @property
    def start_us(self) -> int:
        """The first midnight, in microseconds since the Unix epoch."""
        return (self.start - _UNIX_EPOCH).days * _DAY_US

    @property
    def length_us(self) -> int:
        return self.days * _DAY_US


# ------------------------------------------------------------------------------- drawing


def _rng(seed: int, *key: int) -> np.random.Generator:
    """A stream of its own per table, stage and chunk: one part's size does not shift another's."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))


def _cumulative(weights: t.Sequence[float]) -> np.ndarray:
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    cumulative /= cumulative[-1]
    cumulative[-1] = 1.0  # a uniform draw below 1 must never fall past the last choice
    return cumulative


def _by_segment(table: t.Mapping[str, t.Sequence[float]]) -> np.ndarray:
    """Cumulative weights, one row per segment, from ``{choice: (consumer, smb, enterprise)}``."""
    weights = np.array(list(table.values()), dtype=np.float64).T
    return np.vstack([_cumulative(row) for row in weights])


def _pick(rng: np.random.Generator, cumulative: np.ndarray, size: int) -> np.ndarray:
    return np.searchsorted(cumulative, rng.random(size), side="right").astype(np.int16)


def _pick_by_group(rng: np.random.Generator, cumulative: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One choice per row from its group's row of ``cumulative`` (a loop over groups, not rows)."""
    draws = rng.random(len(group))
    picked = np.empty(len(group), dtype=np.int16)
    for index, row in enumerate(cumulative):
        rows = group == index
        picked[rows] = np.searchsorted(row, draws[rows], side="right")
    return picked


def _times_of_day(rng: np.random.Generator, night_heavy: np.ndarray) -> np.ndarray:
    """Microseconds after midnight: the daytime curve, or mostly 23:00-06:00 for night-heavy rows."""
    size = len(night_heavy)
    hours = _pick(rng, _HOURS, size).astype(np.int64)
    times = hours * _HOUR_US + (rng.random(size) * _HOUR_US).astype(np.int64)
    at_night = night_heavy & (rng.random(size) < _NIGHT_SHARE)
    # 0 is 23:00; the first hour stays on the same date (the row's day) rather than spilling over.
    night = (rng.random(int(at_night.sum())) * 7 * _HOUR_US).astype(np.int64)
    times[at_night] = np.where(night < _HOUR_US, night + 23 * _HOUR_US, night - _HOUR_US)
    return times


_HOURS = _cumulative(_HOUR_WEIGHTS)
_CATEGORY_CUMULATIVE = _by_segment(_CATEGORIES)
_PAYMENT_CUMULATIVE = _by_segment(_PAYMENT_METHODS)
_PAGE_CUMULATIVE = _cumulative(list(_PAGES.values()))
_PRODUCT_CUMULATIVE = _cumulative(1.0 / np.arange(1, _PRODUCTS + 1) ** _PRODUCT_ZIPF)


# ----------------------------------------------------------------------------- customers


@dataclasses.dataclass
class _Customers:
    """Per-customer arrays: the table's columns and the traits transactions and events follow."""

    segment: np.ndarray
    age_group: np.ndarray
    income_bracket: np.ndarray
    region: np.ndarray
    signup_day: np.ndarray  # relative to the period's first day; negative before it
    churned: np.ndarray
    first_day: np.ndarray  # the days a customer can act on, within the period
    last_day: np.ndarray
    weight: np.ndarray  # relative activity: transactions and sessions are shared by it
    night_heavy: np.ndarray
    median_amount: np.ndarray
    amount_sigma: np.ndarray
    volatile: np.ndarray
    favorite_category: np.ndarray
    primary_payment: np.ndarray

    def __len__(self) -> int:
        return len(self.segment)


def _draw_customers(count: int, period: _Period, seed: int) -> _Customers:
    rng = _rng(seed, 0)
    segment = _pick(rng, _cumulative(_SEGMENT_SHARES), count)
    age_group = _pick(rng, _cumulative(_AGE_SHARES), count)
    income_bracket = _pick(rng, _cumulative(_INCOME_SHARES), count)
    region = _pick(rng, _cumulative(_REGION_SHARES), count)

    new = rng.random(count) < _NEW_SHARE
    before = 1 + np.minimum(rng.exponential(_SIGNUP_MEAN_DAYS, count).astype(np.int64), _SIGNUP_MAX_DAYS)
    signup_day = np.where(new, rng.integers(0, period.days, count), -before)
    # Only customers who were there before the period can have churned during it.
    churned = ~new & (rng.random(count) < _CHURN_SHARE)
    active_days = max(1, int(period.days * _CHURN_ACTIVE_SHARE))
    churn_day = rng.integers(0, active_days, count)
    first_day = np.maximum(signup_day, 0)
    last_day = np.where(churned, churn_day, period.days - 1)

    window = (last_day - first_day + 1) / period.days
    weight = rng.lognormal(0.0, _ACTIVITY_SIGMA, count) * _SEGMENT_ACTIVITY[segment] * window
    volatile = rng.random(count) < _VOLATILE_SHARE
    steady_sigma = rng.uniform(*_STEADY_SIGMA, count)
    return _Customers(
        segment=segment,
        age_group=age_group,
        income_bracket=income_bracket,
        region=region,
        signup_day=signup_day,
        churned=churned,
        first_day=first_day,
        last_day=last_day,
        weight=weight,
        night_heavy=rng.random(count) < _NIGHT_HEAVY_SHARE,
        median_amount=_SEGMENT_MEDIAN_AMOUNT[segment] * rng.lognormal(0.0, _CUSTOMER_SCALE_SIGMA, count),
        amount_sigma=np.where(volatile, _VOLATILE_SIGMA, steady_sigma),
        volatile=volatile,
        favorite_category=_pick_by_group(rng, _CATEGORY_CUMULATIVE, segment),
        primary_payment=_pick_by_group(rng, _PAYMENT_CUMULATIVE, segment),
    )


def _write_customers(
    connection: "duckdb.DuckDBPyConnection",
    schema: str,
    people: _Customers,
    period: _Period,
    report: t.Callable[[int], None],
) -> None:
    report(0)
    signup = np.datetime64(period.start, "D") + people.signup_day.astype("timedelta64[D]")
    chunk = pa.table(
        {
            "number": np.arange(1, len(people) + 1, dtype=np.int64),
            "age_group": people.age_group,
            "income_bracket": people.income_bracket,
            "region": people.region,
            "segment": people.segment,
            "signup_date": signup,
            "tenure": (period.days - 1) - people.signup_day,  # days from signup to end_date
            "is_active": ~people.churned,
        }
    )
    select = f"""
        SELECT
            printf('{_id_format("C", len(people), 6)}', number) AS customer_id,
            {_sql_list(_AGE_GROUPS)}[age_group + 1] AS age_group,
            {_sql_list(_INCOME_BRACKETS)}[income_bracket + 1] AS income_bracket,
            {_sql_list(_REGIONS)}[region + 1] AS geographic_region,
            {_sql_list(_SEGMENTS)}[segment + 1] AS customer_segment,
            CAST(signup_date AS DATE) AS signup_date,
            CAST(tenure AS INTEGER) AS account_tenure_days,
            is_active
        FROM {_CHUNK_VIEW}
    """
    _write(connection, _table(schema, "dim_customers"), select, chunk, first=True)
    report(len(people))


# -------------------------------------------------------------------------- transactions


def _write_transactions(
    connection: "duckdb.DuckDBPyConnection",
    schema: str,
    people: _Customers,
    period: _Period,
    count: int,
    seed: int,
    report: t.Callable[[int], None],
) -> None:
    report(0)
    owner, time = _transaction_times(people, count, seed)
    customer_id = _id_format("C", len(people), 6)
    select = f"""
        SELECT
            printf('{_id_format("T", count, 9)}', number) AS transaction_id,
            printf('{customer_id}', owner + 1) AS customer_id,
            CAST(amount AS DOUBLE) AS amount,
            {_sql_list(_CATEGORIES)}[category + 1] AS merchant_category,
            {_sql_list(_PAYMENT_METHODS)}[payment + 1] AS payment_method,
            CAST(time AS TIMESTAMP) AS transaction_time,
            CAST(time AS DATE) AS transaction_date,
            CAST(time AS DATE) AS score_date
        FROM {_CHUNK_VIEW}
    """
    target = _table(schema, "raw_transactions")
    for index, (low, high) in enumerate(_chunks(count)):
        chunk = _transaction_chunk(_rng(seed, 1, 2, index), people, owner[low:high], low)
        chunk = chunk.append_column("time", _timestamps(period, time[low:high]))
        _write(connection, target, select, chunk, first=index == 0)
        report(high)


def _transaction_times(people: _Customers, count: int, seed: int) -> t.Tuple[np.ndarray, np.ndarray]:
    """Who transacts and when (microseconds into the period), in time order."""
    if count == 0:
        return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64)
    shares = _rng(seed, 1, 0).multinomial(count, people.weight / people.weight.sum())
    owner = np.repeat(np.arange(len(people), dtype=np.int32), shares)
    time = np.empty(count, dtype=np.int64)
    for index, (low, high) in enumerate(_chunks(count)):
        time[low:high] = _moments(_rng(seed, 1, 1, index), people, owner[low:high])
    # Time order, so transaction ids rise with time; ties keep customer order (stable sort).
    order = np.argsort(time, kind="stable")
    return owner[order], time[order]


def _moments(rng: np.random.Generator, people: _Customers, who: np.ndarray) -> np.ndarray:
    """A time in each customer's window of days, at the hours that customer keeps."""
    day = rng.integers(people.first_day[who], people.last_day[who], endpoint=True)
    return day * _DAY_US + _times_of_day(rng, people.night_heavy[who])


def _transaction_chunk(rng: np.random.Generator, people: _Customers, owner: np.ndarray, offset: int) -> pa.Table:
    size = len(owner)
    segment = people.segment[owner]
    amount = people.median_amount[owner] * np.exp(people.amount_sigma[owner] * rng.standard_normal(size))
    spike = people.volatile[owner] & (rng.random(size) < _SPIKE_CHANCE)
    amount[spike] *= rng.lognormal(np.log(_SPIKE_FACTOR), 0.5, int(spike.sum()))
    category = np.where(
        rng.random(size) < _FAVORITE_CATEGORY_SHARE,
        people.favorite_category[owner],
        _pick_by_group(rng, _CATEGORY_CUMULATIVE, segment),
    )
    payment = np.where(
        rng.random(size) < _PRIMARY_PAYMENT_SHARE,
        people.primary_payment[owner],
        _pick_by_group(rng, _PAYMENT_CUMULATIVE, segment),
    )
    return pa.table(
        {
            "number": np.arange(offset + 1, offset + size + 1, dtype=np.int64),
            "owner": owner,
            "amount": np.maximum(np.round(amount, 2), _MIN_AMOUNT),
            "category": category,
            "payment": payment,
        }
    )


# -------------------------------------------------------------------------------- events


def _write_events(
    connection: "duckdb.DuckDBPyConnection",
    schema: str,
    people: _Customers,
    period: _Period,
    count: int,
    seed: int,
    report: t.Callable[[int], None],
) -> None:
    report(0)
    user, length, start = _sessions(people, period, count, seed)
    product_id = _id_format("P", _PRODUCTS, 5)
    select = f"""
        SELECT
            printf('{_id_format("C", len(people), 6)}', user + 1) AS user_id,
            printf('{_id_format("S", len(length), 8)}', session + 1) AS session_id,
            CAST(time AS TIMESTAMP) AS event_timestamp,
            {_sql_list(_EVENT_TYPES)}[type + 1] AS event_type,
            CASE type
                WHEN {_PAGE_VIEW} THEN {_sql_list(_PAGES)}[page + 1]
                WHEN {_PRODUCT_VIEW} THEN '/product/' || printf('{product_id}', product + 1)
                WHEN {_SEARCH} THEN '/search?q=' || {_sql_list(_SEARCH_TERMS)}[page + 1]
                WHEN {_ADD_TO_CART} THEN '/cart'
                ELSE '/checkout/complete'
            END AS page_url,
            CASE WHEN product >= 0 THEN printf('{product_id}', product + 1) END AS product_id
        FROM {_CHUNK_VIEW}
    """
    target = _table(schema, "raw_events")
    ends = np.cumsum(length)
    first, index = 0, 0
    while True:
        # Whole sessions per chunk: about _CHUNK_ROWS events, at least one session.
        written = int(ends[first - 1]) if first else 0
        last = min(max(int(np.searchsorted(ends, written + _CHUNK_ROWS, side="right")), first + 1), len(length))
        chunk = _event_chunk(_rng(seed, 2, 1, index), period, user, length, start, first, last)
        _write(connection, target, select, chunk, first=index == 0)
        report(int(ends[last - 1]) if last else 0)
        first, index = last, index + 1
        if first >= len(length):
            return


def _sessions(
    people: _Customers, period: _Period, count: int, seed: int
) -> t.Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each session's user, number of events and start (microseconds into the period), by start."""
    rng = _rng(seed, 2, 0)
    if count == 0:
        return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    length = _session_lengths(rng, count)
    user = rng.choice(len(people), size=len(length), p=people.weight / people.weight.sum()).astype(np.int32)
    start = _moments(rng, people, user)
    order = np.argsort(start, kind="stable")  # session ids rise with start time
    return user[order], length[order], start[order]


def _session_lengths(rng: np.random.Generator, count: int) -> np.ndarray:
    """Events per session (2 or more, geometric), summing to exactly ``count``."""
    mean = 1 + 1 / _SESSION_STOP
    lengths = np.empty(0, dtype=np.int64)
    while lengths.sum() < count:  # one batch nearly always covers it; a loop over batches, not rows
        batch = int(count / mean * 1.1) + 16
        lengths = np.concatenate([lengths, 1 + rng.geometric(_SESSION_STOP, batch)])
    ends = np.cumsum(lengths)
    kept = int(np.searchsorted(ends, count, side="left")) + 1
    lengths = lengths[:kept].copy()
    lengths[-1] -= int(ends[kept - 1]) - count  # the last session is cut to fit
    if lengths[-1] == 1 and len(lengths) > 1:
        lengths = lengths[:-1].copy()
        lengths[-1] += 1  # a one-event session is no session: its event joins the one before
    return lengths


def _event_chunk(
    rng: np.random.Generator,
    period: _Period,
    user: np.ndarray,
    length: np.ndarray,
    start: np.ndarray,
    first: int,
    last: int,
) -> pa.Table:
    """The events of sessions ``first`` to ``last`` (excluded)."""
    sizes = length[first:last]
    size = int(sizes.sum())
    opening = np.cumsum(sizes) - sizes  # each session's first event, within the chunk
    session = np.repeat(np.arange(first, last, dtype=np.int64), sizes)

    # Events a few seconds to minutes apart; a session that would outlast the period starts earlier.
    gaps = (rng.exponential(_GAP_MEAN_SECONDS, size) * 1_000_000).astype(np.int64) + _GAP_MIN_SECONDS * 1_000_000
    gaps[opening] = 0
    offsets = np.cumsum(gaps)
    offsets -= np.repeat(offsets[opening], sizes)
    duration = offsets[opening + sizes - 1]
    begins = start[first:last] - np.maximum(start[first:last] + duration - (period.length_us - 1), 0)
    time = np.repeat(begins, sizes) + offsets

    kind = _pick(rng, _cumulative(_BROWSE_SHARES), size)  # page_view, product_view, search
    kind[opening] = _PAGE_VIEW
    # A cart needs a product viewed before it; a purchase, the last event, needs a cart before it.
    cart = (sizes >= 3) & (rng.random(len(sizes)) < _CART_CHANCE)
    purchase = cart & (sizes >= 4) & (rng.random(len(sizes)) < _PURCHASE_CHANCE)
    latest = np.maximum(np.where(purchase, sizes - 2, sizes - 1), 2)
    cart_at = opening + rng.integers(2, latest, endpoint=True)
    kind[cart_at[cart] - 1] = _PRODUCT_VIEW
    kind[cart_at[cart]] = _ADD_TO_CART
    kind[(opening + sizes - 1)[purchase]] = _PURCHASE

    product = np.full(size, -1, dtype=np.int32)
    viewed = kind == _PRODUCT_VIEW
    product[viewed] = _pick(rng, _PRODUCT_CUMULATIVE, int(viewed.sum()))
    product[cart_at[cart]] = product[cart_at[cart] - 1]  # the product just viewed goes in the cart
    product[(opening + sizes - 1)[purchase]] = product[cart_at[purchase]]
    page = np.where(
        kind == _SEARCH,
        _pick(rng, _cumulative([1.0] * len(_SEARCH_TERMS)), size),
        _pick(rng, _PAGE_CUMULATIVE, size),
    )
    return pa.table(
        {
            "user": user[session],
            "session": session,
            "time": _timestamps(period, time),
            "type": kind,
            "page": page,
            "product": product,
        }
    )


# ------------------------------------------------------------------------------- writing


def _chunks(count: int) -> t.Iterator[t.Tuple[int, int]]:
    """Row ranges of ``_CHUNK_ROWS``; one empty range when there are no rows (the table is still made)."""
    yield from ((low, min(low + _CHUNK_ROWS, count)) for low in range(0, max(count, 1), _CHUNK_ROWS))


def _timestamps(period: _Period, micros: np.ndarray) -> pa.Array:
    return pa.array((micros + period.start_us).view("datetime64[us]"))


def _write(
    connection: "duckdb.DuckDBPyConnection", target: str, select: str, chunk: pa.Table, first: bool
) -> None:
    connection.register(_CHUNK_VIEW, chunk)
    try:
        verb = f"CREATE OR REPLACE TABLE {target} AS" if first else f"INSERT INTO {target}"
        connection.execute(f"{verb} {select}")
    finally:
        connection.unregister(_CHUNK_VIEW)


def _table(schema: str, name: str) -> str:
    return f"{_quote(schema)}.{_quote(name)}"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sql_list(names: t.Iterable[str]) -> str:
    # Constants of this module, but quoted properly all the same.
    return "[" + ", ".join("'" + name.replace("'", "''") + "'" for name in names) + "]"


def _id_format(prefix: str, largest: int, width: int) -> str:
    """A printf format for ids like C000001: zero-padded, wider when the numbers need it."""
    return f"{prefix}%0{max(width, len(str(largest)))}d"
