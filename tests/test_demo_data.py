"""Demo source data: the tables the seed's models read, deterministic, skewed the way the demo needs."""

from __future__ import annotations

import datetime
import hashlib
import inspect
import typing as t

import duckdb
import pytest

from mixmesh.cli import demo_data
from mixmesh.cli.demo_data import SIZES, TABLES, DemoDataError, DemoSizes, generate
from mixmesh.core.errors import MixmeshError

SMALL = dict(customers=300, transactions=20_000, events=5_000, days=10)
END = datetime.date(2024, 1, 31)
START = datetime.date(2024, 1, 22)  # the 10 days ending on END


@pytest.fixture(scope="module")
def db() -> t.Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    counts = generate(connection, **SMALL)
    assert counts == {"dim_customers": 300, "raw_transactions": 20_000, "raw_events": 5_000}
    yield connection
    connection.close()


def scalar(connection: duckdb.DuckDBPyConnection, sql: str) -> t.Any:
    return connection.sql(sql).fetchone()[0]


def digests(connection: duckdb.DuckDBPyConnection, schema: str = "raw") -> t.Dict[str, str]:
    """A content hash per table, independent of the order rows were stored in."""
    return {
        table: hashlib.sha256(
            repr(connection.sql(f"SELECT * FROM {schema}.{table} ORDER BY ALL").fetchall()).encode()
        ).hexdigest()
        for table in TABLES
    }


def generated(**arguments: t.Any) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    generate(connection, **{**SMALL, **arguments})
    return connection


# ---------------------------------------------------------------------------- shape


def test_row_counts_and_column_types(db: duckdb.DuckDBPyConnection) -> None:
    for table, rows in (("dim_customers", 300), ("raw_transactions", 20_000), ("raw_events", 5_000)):
        assert scalar(db, f"SELECT count(*) FROM raw.{table}") == rows
    types = {
        table: dict(db.sql(f"SELECT column_name, column_type FROM (DESCRIBE raw.{table})").fetchall())
        for table in TABLES
    }
    assert types["dim_customers"] == {
        "customer_id": "VARCHAR",
        "age_group": "VARCHAR",
        "income_bracket": "VARCHAR",
        "geographic_region": "VARCHAR",
        "customer_segment": "VARCHAR",
        "signup_date": "DATE",
        "account_tenure_days": "INTEGER",
        "is_active": "BOOLEAN",
    }
    assert types["raw_transactions"] == {
        "transaction_id": "VARCHAR",
        "customer_id": "VARCHAR",
        "amount": "DOUBLE",
        "merchant_category": "VARCHAR",
        "payment_method": "VARCHAR",
        "transaction_time": "TIMESTAMP",
        "transaction_date": "DATE",
        "score_date": "DATE",
    }
    assert types["raw_events"] == {
        "user_id": "VARCHAR",
        "session_id": "VARCHAR",
        "event_timestamp": "TIMESTAMP",
        "event_type": "VARCHAR",
        "page_url": "VARCHAR",
        "product_id": "VARCHAR",
    }


def test_ids_are_unique_and_every_reference_exists(db: duckdb.DuckDBPyConnection) -> None:
    assert db.sql("SELECT min(customer_id), max(customer_id) FROM raw.dim_customers").fetchone() == (
        "C000001",
        "C000300",
    )
    assert scalar(db, "SELECT count(DISTINCT customer_id) FROM raw.dim_customers") == 300
    assert scalar(db, "SELECT count(DISTINCT transaction_id) FROM raw.raw_transactions") == 20_000
    orphans = """
        SELECT count(*) FROM raw.{table} AS r
        WHERE NOT EXISTS (SELECT 1 FROM raw.dim_customers AS c WHERE c.customer_id = r.{column})
    """
    assert scalar(db, orphans.format(table="raw_transactions", column="customer_id")) == 0
    assert scalar(db, orphans.format(table="raw_events", column="user_id")) == 0


def test_everything_happens_within_the_period(db: duckdb.DuckDBPyConnection) -> None:
    low, high = db.sql(
        "SELECT min(transaction_time), max(transaction_time) FROM raw.raw_transactions"
    ).fetchone()
    assert datetime.datetime(2024, 1, 22) <= low and high < datetime.datetime(2024, 2, 1)
    # Ten days, each of them used.
    assert scalar(db, "SELECT count(DISTINCT transaction_date) FROM raw.raw_transactions") == 10
    low, high = db.sql("SELECT min(event_timestamp), max(event_timestamp) FROM raw.raw_events").fetchone()
    assert datetime.datetime(2024, 1, 22) <= low and high < datetime.datetime(2024, 2, 1)
    inconsistent = """
        SELECT count(*) FROM raw.raw_transactions
        WHERE transaction_date <> CAST(transaction_time AS DATE) OR score_date <> transaction_date
    """
    assert scalar(db, inconsistent) == 0


def test_signup_and_tenure_agree_with_the_end_date(db: duckdb.DuckDBPyConnection) -> None:
    wrong = f"""
        SELECT count(*) FROM raw.dim_customers
        WHERE signup_date > DATE '{END}' OR account_tenure_days <> DATE '{END}' - signup_date
    """
    assert scalar(db, wrong) == 0
    # Some customers signed up during the period; none transacts before signing up.
    assert scalar(db, f"SELECT count(*) FROM raw.dim_customers WHERE signup_date >= DATE '{START}'") > 0
    early = """
        SELECT count(*) FROM raw.raw_transactions JOIN raw.dim_customers USING (customer_id)
        WHERE transaction_date < signup_date
    """
    assert scalar(db, early) == 0


def test_segments_categories_and_payment_methods(db: duckdb.DuckDBPyConnection) -> None:
    shares = dict(
        db.sql("SELECT customer_segment, count(*) / 300 FROM raw.dim_customers GROUP BY ALL").fetchall()
    )
    assert set(shares) == {"consumer", "smb", "enterprise"}
    assert shares["consumer"] > 0.6 and shares["consumer"] > shares["smb"] > shares["enterprise"]
    medians = dict(
        db.sql(
            "SELECT customer_segment, median(amount) FROM raw.raw_transactions "
            "JOIN raw.dim_customers USING (customer_id) GROUP BY ALL"
        ).fetchall()
    )
    assert medians["enterprise"] > 3 * medians["smb"] > 9 * medians["consumer"]
    assert scalar(db, "SELECT min(amount) FROM raw.raw_transactions") > 0
    assert scalar(db, "SELECT count(DISTINCT merchant_category) FROM raw.raw_transactions") >= 15
    methods = {row[0] for row in db.sql("SELECT DISTINCT payment_method FROM raw.raw_transactions").fetchall()}
    assert {"card", "debit", "wallet", "bank_transfer"} <= methods


# --------------------------------------------------------------------- determinism


def test_same_arguments_give_identical_tables_and_another_seed_other_ones(db: duckdb.DuckDBPyConnection) -> None:
    first = digests(db)
    assert digests(generated()) == first
    other = digests(generated(seed=7))
    assert all(other[table] != first[table] for table in TABLES)


def test_each_table_has_its_own_random_stream(db: duckdb.DuckDBPyConnection) -> None:
    # More transactions change the transactions only: the customers and events stay the same.
    first = digests(db)
    more = digests(generated(transactions=25_000))
    assert more["dim_customers"] == first["dim_customers"]
    assert more["raw_events"] == first["raw_events"]
    assert more["raw_transactions"] != first["raw_transactions"]


# ------------------------------------------------------------------------------ skew


def test_a_tenth_of_the_customers_make_a_disproportionate_share(db: duckdb.DuckDBPyConnection) -> None:
    share = """
        WITH counts AS (
            SELECT c.customer_id, count(t.customer_id) AS n
            FROM raw.dim_customers AS c LEFT JOIN raw.raw_transactions AS t USING (customer_id)
            GROUP BY ALL
        )
        SELECT sum(n) FILTER (WHERE rank <= 30) / sum(n)
        FROM (SELECT n, row_number() OVER (ORDER BY n DESC, customer_id) AS rank FROM counts)
    """
    assert scalar(db, share) > 0.25


def test_some_customers_buy_mostly_at_night(db: duckdb.DuckDBPyConnection) -> None:
    # The night of the seed's extract_behavioral_features: before 06:00 or after 22:59.
    night = """
        SELECT customer_id, avg(CAST(hour(transaction_time) < 6 OR hour(transaction_time) > 22 AS INTEGER)) AS night
        FROM raw.raw_transactions GROUP BY ALL HAVING count(*) >= 10
    """
    shares = [row[1] for row in db.sql(night).fetchall()]
    night_heavy = sum(share > 0.5 for share in shares)
    assert night_heavy >= 5
    assert night_heavy < 0.25 * len(shares)  # a minority
    assert sorted(shares)[len(shares) // 2] < 0.2  # most keep daytime hours


def test_churned_customers_are_inactive_and_stop_before_the_end(db: duckdb.DuckDBPyConnection) -> None:
    churned = scalar(db, "SELECT count(*) FROM raw.dim_customers WHERE NOT is_active")
    assert 0.05 * 300 <= churned <= 0.25 * 300
    # The last 40% of ten days: from 2024-01-28 on.
    recent = """
        SELECT count(*) FROM raw.raw_transactions JOIN raw.dim_customers USING (customer_id)
        WHERE NOT is_active AND transaction_date >= DATE '2024-01-28'
    """
    assert scalar(db, recent) == 0
    earlier = """
        SELECT count(DISTINCT customer_id) FROM raw.raw_transactions JOIN raw.dim_customers USING (customer_id)
        WHERE NOT is_active
    """
    assert scalar(db, earlier) > 0  # they did transact before leaving
    # Active customers go on until the end.
    assert scalar(db, "SELECT max(transaction_date) FROM raw.raw_transactions") == END


def test_amount_volatility_differs_between_customers(db: duckdb.DuckDBPyConnection) -> None:
    cvs = [
        row[0]
        for row in db.sql(
            "SELECT stddev(amount) / avg(amount) FROM raw.raw_transactions GROUP BY customer_id HAVING count(*) >= 20"
        ).fetchall()
    ]
    assert len(cvs) >= 50
    assert max(cvs) > 3 * min(cvs)
    assert sum(cv > 1.5 for cv in cvs) >= 3  # volatile customers, with occasional very large amounts
    assert sorted(cvs)[len(cvs) // 2] < 1.0  # most customers are steady


# ---------------------------------------------------------------------------- events


def test_the_funnel_narrows_from_views_to_carts_to_purchases(db: duckdb.DuckDBPyConnection) -> None:
    counts = dict(db.sql("SELECT event_type, count(*) FROM raw.raw_events GROUP BY ALL").fetchall())
    assert counts["page_view"] > counts["product_view"] > counts["add_to_cart"] > counts["purchase"] > 0
    uncarted = """
        SELECT count(*) FROM raw.raw_events AS p
        WHERE p.event_type = 'purchase' AND NOT EXISTS (
            SELECT 1 FROM raw.raw_events AS c
            WHERE c.session_id = p.session_id AND c.event_type = 'add_to_cart'
              AND c.event_timestamp < p.event_timestamp AND c.product_id = p.product_id
        )
    """
    assert scalar(db, uncarted) == 0
    products = """
        SELECT count(*) FROM raw.raw_events
        WHERE (product_id IS NULL) <> (event_type IN ('page_view', 'search'))
    """
    assert scalar(db, products) == 0


def test_sessions_are_one_users_events_minutes_apart(db: duckdb.DuckDBPyConnection) -> None:
    sessions = db.sql(
        """
        SELECT count(*) AS events, count(DISTINCT user_id) AS users,
               max(event_timestamp) - min(event_timestamp) AS span,
               arg_min(event_type, event_timestamp) AS opening,
               count(DISTINCT event_timestamp) AS moments
        FROM raw.raw_events GROUP BY session_id
        """
    ).fetchall()
    assert len(sessions) < 5_000 / 3  # several events per session on average
    assert all(events >= 2 for events, *_ in sessions)
    assert all(users == 1 for _, users, *_ in sessions)
    assert all(opening == "page_view" for *_, opening, _ in sessions)
    assert all(moments == events for events, *_, moments in sessions)  # ordered, no ties
    assert max(span for _, _, span, *_ in sessions) < datetime.timedelta(hours=3)


# -------------------------------------------------------------------------- progress


def test_progress_counts_up_to_each_tables_total(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_data, "_CHUNK_ROWS", 4_096)  # several chunks per table
    calls: t.List[t.Tuple[str, int, int]] = []
    counts = generate(duckdb.connect(), **SMALL, progress=lambda *call: calls.append(call))
    assert [step for step, done, _ in calls if done == 0] == list(TABLES)  # in this order
    for table in TABLES:
        mine = [(done, total) for step, done, total in calls if step == table]
        dones = [done for done, _ in mine]
        assert {total for _, total in mine} == {counts[table]}
        assert dones[0] == 0 and dones[-1] == counts[table]
        assert all(a < b for a, b in zip(dones, dones[1:]))
    assert len([call for call in calls if call[0] == "raw_transactions"]) == 1 + 5  # 20,000 in 4,096s
    assert len([call for call in calls if call[0] == "raw_events"]) >= 3


def test_an_empty_table_reports_once() -> None:
    calls: t.List[t.Tuple[str, int, int]] = []
    generate(duckdb.connect(), customers=3, transactions=0, events=0, progress=lambda *call: calls.append(call))
    assert calls == [
        ("dim_customers", 0, 3),
        ("dim_customers", 3, 3),
        ("raw_transactions", 0, 0),
        ("raw_events", 0, 0),
    ]


def test_chunked_writes_keep_ids_contiguous(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_data, "_CHUNK_ROWS", 4_096)
    connection = generated()
    assert connection.sql(
        "SELECT count(*), min(transaction_id), max(transaction_id) FROM raw.raw_transactions"
    ).fetchone() == (20_000, "T000000001", "T000020000")
    assert scalar(connection, "SELECT count(*) FROM raw.raw_events") == 5_000
    # Transaction ids rise with time across chunks too.
    out_of_order = """
        SELECT count(*) FROM (
            SELECT transaction_time < lag(transaction_time) OVER (ORDER BY transaction_id) AS earlier
            FROM raw.raw_transactions
        ) WHERE earlier
    """
    assert scalar(connection, out_of_order) == 0


# ------------------------------------------------------------------------ arguments


def test_generating_again_replaces_the_tables_in_the_chosen_schema() -> None:
    connection = generated()
    counts = generate(connection, customers=20, transactions=100, events=50, days=3, schema="demo source")
    assert counts == {"dim_customers": 20, "raw_transactions": 100, "raw_events": 50}
    generate(connection, customers=10, transactions=0, events=0, days=3)
    rows = [scalar(connection, f"SELECT count(*) FROM raw.{table}") for table in TABLES]
    assert rows == [10, 0, 0]  # replaced, the empty tables still made
    assert scalar(connection, 'SELECT count(*) FROM "demo source".raw_transactions') == 100


def test_one_day_and_no_customers_are_edge_cases_not_errors() -> None:
    connection = duckdb.connect()
    generate(connection, customers=5, transactions=50, events=7, days=1, end_date="2024-03-01")
    assert connection.sql("SELECT DISTINCT transaction_date FROM raw.raw_transactions").fetchall() == [
        (datetime.date(2024, 3, 1),)
    ]
    assert scalar(connection, "SELECT count(*) FROM raw.raw_events") == 7
    assert generate(connection, customers=0, transactions=0, events=0) == dict.fromkeys(TABLES, 0)
    assert scalar(connection, "SELECT count(*) FROM raw.dim_customers") == 0


@pytest.mark.parametrize(
    "arguments",
    [
        {"customers": -1},
        {"transactions": 1.5},
        {"events": True},
        {"days": 0},
        {"seed": -3},
        {"customers": 0},  # transactions and events need customers
        {"end_date": "next tuesday"},
        {"schema": ""},
        {"progress": "bar"},
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(arguments: t.Dict[str, t.Any]) -> None:
    connection = duckdb.connect()
    with pytest.raises(DemoDataError) as raised:
        generate(connection, **{**SMALL, **arguments})
    assert isinstance(raised.value, (MixmeshError, ValueError))
    assert scalar(connection, "SELECT count(*) FROM duckdb_tables()") == 0


def test_sizes_are_the_defaults_of_generate() -> None:
    defaults = {name: p.default for name, p in inspect.signature(generate).parameters.items()}
    assert SIZES == DemoSizes(**{field: defaults[field] for field in ("customers", "transactions", "events", "days")})
    assert SIZES == DemoSizes(customers=2_000, transactions=200_000, events=100_000, days=30)
    assert defaults["end_date"] == END and defaults["seed"] == 42 and defaults["schema"] == "raw"
