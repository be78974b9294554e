"""Demo source data: the tables the seed's models read, deterministic, skewed the way the demo needs."""

from __future__ import annotations

import datetime
import hashlib
import inspect
import math
import typing as t
import unicodedata
from pathlib import Path

import duckdb
import pytest

from mixmesh.cli import demo_data
from mixmesh.cli.demo_data import SIZES, TABLES, DemoDataError, DemoSizes, generate
from mixmesh.cli.demo_flaws import MERCHANT_NAMES
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
        {"dirty": -0.1},
        {"dirty": 1.5},
        {"dirty": math.nan},
        {"dirty": math.inf},
        {"dirty": "0.05"},
        {"dirty": True},
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(arguments: t.Dict[str, t.Any]) -> None:
    connection = duckdb.connect()
    with pytest.raises(DemoDataError) as raised:
        generate(connection, **{**SMALL, **arguments})
    assert isinstance(raised.value, (MixmeshError, ValueError))
    assert next(iter(arguments)) in str(raised.value)  # the error names the argument
    assert scalar(connection, "SELECT count(*) FROM duckdb_tables()") == 0


def test_sizes_are_the_defaults_of_generate() -> None:
    defaults = {name: p.default for name, p in inspect.signature(generate).parameters.items()}
    assert SIZES == DemoSizes(**{field: defaults[field] for field in ("customers", "transactions", "events", "days")})
    assert SIZES == DemoSizes(customers=2_000, transactions=200_000, events=100_000, days=30)
    assert defaults["end_date"] == END and defaults["seed"] == 42 and defaults["schema"] == "raw"


# ---------------------------------------------------------------------------- dirty

DIRTY = 0.05
# The SMALL tables, all three hashed in order, as the generator made them before it could
# add flaws: dirty=0 must keep them byte for byte. A deliberate change of the clean data
# updates this digest (and the README's figures).
CLEAN_DIGEST = "e0b512054327c5bebf648997b8d9055a16b220e6c7f3cef53c295f73b053ffc5"
CATEGORIES = set(demo_data._CATEGORIES)


@pytest.fixture(scope="module")
def dirty() -> t.Iterator[duckdb.DuckDBPyConnection]:
    """The SMALL tables with flaws in ``raw``, and the same tables clean in ``clean``."""
    connection = duckdb.connect()
    generate(connection, **SMALL, schema="clean")
    counts = generate(connection, **SMALL, dirty=DIRTY)
    # Duplicates add round(f * rows) rows to the transactions and the events, none to the customers.
    assert counts == {"dim_customers": 300, "raw_transactions": 21_000, "raw_events": 5_250}
    yield connection
    connection.close()


def assert_about(share: float, expected: float = DIRTY) -> None:
    # Flaws are drawn for exactly round(f * rows) clean rows; duplicates and NULLs drawn on
    # other streams move the share measured on the final table by a few percent of f.
    assert abs(share - expected) <= 0.1 * DIRTY, (share, expected)


def test_dirty_zero_is_the_clean_data_of_before(db: duckdb.DuckDBPyConnection) -> None:
    tables = [repr(db.sql(f"SELECT * FROM raw.{table} ORDER BY ALL").fetchall()) for table in TABLES]
    assert hashlib.sha256("".join(tables).encode()).hexdigest() == CLEAN_DIGEST
    assert digests(generated(dirty=0.0)) == digests(db)
    assert digests(generated(dirty=0)) == digests(db)


def test_the_same_seed_gives_the_same_flaws_and_another_seed_others(dirty: duckdb.DuckDBPyConnection) -> None:
    first = digests(dirty)
    assert digests(generated(dirty=DIRTY)) == first
    other = digests(generated(dirty=DIRTY, seed=7))
    assert all(other[table] != first[table] for table in TABLES)
    assert digests(generated(dirty=0.1)) != first


def test_dirty_tables_keep_their_columns_and_types(dirty: duckdb.DuckDBPyConnection) -> None:
    for table in TABLES:
        described = "SELECT column_name, column_type FROM (DESCRIBE {}.{})"
        assert dirty.sql(described.format("raw", table)).fetchall() == dirty.sql(described.format("clean", table)).fetchall()


def test_every_column_of_every_table_is_null_in_about_the_fraction(dirty: duckdb.DuckDBPyConnection) -> None:
    for table in TABLES:
        columns = [row[0] for row in dirty.sql(f"DESCRIBE raw.{table}").fetchall()]
        shares = "SELECT {} FROM {}.{}".format(", ".join(f"1 - count({column}) / count(*)" for column in columns), "{}", table)
        # A column NULL in some clean rows (product_id, on page views and searches) is NULL
        # in f of the rows and, in the others, where it was.
        for share, clean in zip(dirty.sql(shares.format("raw")).fetchone(), dirty.sql(shares.format("clean")).fetchone()):
            assert_about(share, DIRTY + (1 - DIRTY) * clean)
        missing = dirty.sql(f"SELECT {', '.join(f'count(*) - count({column})' for column in columns)} FROM raw.{table}").fetchone()
        if table == "dim_customers":  # no duplicates there: exactly round(0.05 * 300) per column
            assert list(missing) == [15] * len(columns)
    # Keys the example's models group and join by are among them.
    assert scalar(dirty, "SELECT count(*) FROM raw.raw_transactions WHERE customer_id IS NULL") > 0
    assert scalar(dirty, "SELECT count(*) FROM raw.raw_events WHERE session_id IS NULL") > 0


def test_transactions_and_events_have_exact_duplicates(dirty: duckdb.DuckDBPyConnection) -> None:
    keyed = {"raw_transactions": "transaction_id IS NOT NULL", "raw_events": "session_id IS NOT NULL AND event_timestamp IS NOT NULL"}
    for table, clean_rows in (("raw_transactions", 20_000), ("raw_events", 5_000)):
        rows = scalar(dirty, f"SELECT count(*) FROM raw.{table}")
        distinct = scalar(dirty, f"SELECT count(*) FROM (SELECT DISTINCT * FROM raw.{table})")
        assert rows == clean_rows * (1 + DIRTY)
        assert_about((rows - distinct) / clean_rows)
        # Each duplicated row is there twice, not more (rows whose key is NULL can coincide).
        twice = f"SELECT max(n) FROM (SELECT *, count(*) AS n FROM raw.{table} WHERE {keyed[table]} GROUP BY ALL)"
        assert scalar(dirty, twice) == 2
    assert scalar(dirty, "SELECT count(*) FROM (SELECT DISTINCT * FROM raw.dim_customers)") == 300


def test_late_transactions_happened_one_to_three_days_before_the_day_they_are_filed_under(
    dirty: duckdb.DuckDBPyConnection,
) -> None:
    lateness = dirty.sql(
        """
        SELECT transaction_date - CAST(transaction_time AS DATE) AS days, count(*)
        FROM raw.raw_transactions WHERE transaction_time IS NOT NULL AND transaction_date IS NOT NULL
        GROUP BY ALL
        """
    ).fetchall()
    counts = dict(lateness)
    assert set(counts) == {0, 1, 2, 3}  # never filed before it happened
    assert_about(sum(count for days, count in counts.items() if days) / sum(counts.values()))
    # Late rows keep the day they arrived in: transaction_date and score_date agree.
    assert scalar(dirty, "SELECT count(*) FROM raw.raw_transactions WHERE transaction_date <> score_date") == 0
    # The earliest, in the period's first days, happened before the period.
    assert scalar(dirty, f"SELECT min(transaction_time) < TIMESTAMP '{START}' FROM raw.raw_transactions")


def test_some_amounts_are_zero_and_some_negative(dirty: duckdb.DuckDBPyConnection) -> None:
    known, zero, negative, smallest = dirty.sql(
        "SELECT count(amount), count(*) FILTER (amount = 0), count(*) FILTER (amount < 0), min(abs(amount)) "
        "FILTER (amount <> 0) FROM raw.raw_transactions"
    ).fetchone()
    assert_about((zero + negative) / known)
    assert 0.4 < zero / (zero + negative) < 0.6  # about half each
    assert smallest >= 0.5  # a negative amount is a generated one, negated
    assert scalar(dirty, "SELECT count(*) FROM clean.raw_transactions WHERE amount <= 0") == 0


def test_some_merchants_are_named_in_unicode(dirty: duckdb.DuckDBPyConnection) -> None:
    merchants = dict(
        dirty.sql("SELECT merchant_category, count(*) FROM raw.raw_transactions WHERE merchant_category IS NOT NULL GROUP BY ALL").fetchall()
    )
    named = {name: count for name, count in merchants.items() if name not in CATEGORIES}
    assert_about(sum(named.values()) / sum(merchants.values()))
    assert set(named) == set(MERCHANT_NAMES)  # stored and read back byte for byte
    names = "".join(named)
    assert any(unicodedata.combining(char) for char in names)  # combining marks
    assert "Café Crème" in named and unicodedata.normalize("NFD", "Café Crème") in named  # two spellings
    assert any(unicodedata.east_asian_width(char) == "W" and "CJK" in unicodedata.name(char, "") for char in names)
    assert any(unicodedata.bidirectional(char) in ("R", "AL") for char in names)  # right to left
    assert any(unicodedata.category(char) == "So" and ord(char) > 0x1F000 for char in names)  # emoji
    # Accents: Latin letters that are plain ASCII once their marks are taken off.
    bare = {name: "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)) for name in named}
    assert any(not name.isascii() and bare[name].isascii() for name in named)


def test_the_flaws_are_the_only_changes(dirty: duckdb.DuckDBPyConnection) -> None:
    # A dirty row without any flaw is one of the clean rows, unchanged.
    untouched = """
        SELECT count(*) FROM (
            SELECT * FROM raw.raw_transactions
            WHERE COLUMNS(*) IS NOT NULL AND amount > 0 AND merchant_category IN ({})
              AND CAST(transaction_time AS DATE) = transaction_date
            EXCEPT SELECT * FROM clean.raw_transactions
        )
    """.format(", ".join(f"'{name}'" for name in CATEGORIES))
    assert scalar(dirty, untouched) == 0
    for table in ("dim_customers", "raw_events"):
        changed = f"SELECT count(*) FROM (SELECT * FROM raw.{table} WHERE COLUMNS(*) IS NOT NULL EXCEPT SELECT * FROM clean.{table})"
        assert scalar(dirty, changed) == 0


def test_dirty_one_flaws_every_row() -> None:
    connection = duckdb.connect()
    counts = generate(connection, customers=20, transactions=200, events=60, days=3, dirty=1)
    assert counts == {"dim_customers": 20, "raw_transactions": 400, "raw_events": 120}
    for table in TABLES:
        assert scalar(connection, f"SELECT count(*) FROM raw.{table} WHERE COLUMNS(*) IS NOT NULL") == 0
    empty = generate(connection, customers=3, transactions=0, events=0, dirty=0.5)
    assert empty == {"dim_customers": 3, "raw_transactions": 0, "raw_events": 0}


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan", "NaN", "inf", "five percent", ""])
def test_the_command_refuses_a_dirty_that_is_no_fraction_and_names_the_option(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from mixmesh.cli import main

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["demo", str(tmp_path / "project"), "--dirty", value])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--dirty'" in result.output and "fraction from 0 to 1" in result.output
    assert list(tmp_path.iterdir()) == []  # refused before anything was copied or generated
