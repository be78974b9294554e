"""The project built with SQLMesh on DuckDB against the local exchange-rate service: rates
checked against the service's own, busy answers retried, missing rates quarantined with
their arguments, the audit stopping an interval with too many, and a restatement served by
the cache."""

from __future__ import annotations

import csv
import io
import json
import typing as t
from datetime import date
from pathlib import Path

import pytest

from mixmesh.testing import planned_copy, sqlmesh_output
from service import ExchangeRateService, rate_of

PROJECT = Path(__file__).resolve().parents[1]
MODEL = "analytics.transactions_usd"


def seed_rows() -> t.List[t.Dict[str, str]]:
    with open(PROJECT / "seeds/transactions.csv", newline="") as file:
        return list(csv.DictReader(file))


def keys_where(test: t.Callable[[str, str], bool]) -> t.List[t.Tuple[str, str]]:
    """The (currency, day) of every seed row for which ``test`` holds, a key once per row."""
    return sorted((row["currency"], row["transaction_day"]) for row in seed_rows() if test(row["currency"], row["transaction_day"]))


def quarantined(context: t.Any, resolved: bool = False) -> t.List[t.Dict[str, t.Any]]:
    state = "IS NOT NULL" if resolved else "IS NULL"
    frame = context.fetchdf(f"SELECT * FROM mixmesh_quarantine.rows WHERE model = '{MODEL}' AND resolved_at {state}")
    return frame.to_dict("records")


def arguments_of(record: t.Mapping[str, t.Any]) -> t.Tuple[str, str]:
    arguments = json.loads(record["arguments"])
    return arguments["currency"], str(arguments["day"])


def rows_of(records: t.Iterable[t.Mapping[str, t.Any]]) -> t.List[t.Tuple[str, str]]:
    """The (currency, day) of every quarantined row (an entry may stand for several rows)."""
    return sorted(arguments_of(record) for record in records for _ in range(record["row_count"]))


def test_the_yaml_test_passes(built) -> None:
    context, _ = built
    result = context.test(stream=io.StringIO())
    assert result.testsRun == 1 and result.wasSuccessful(), [text for _, text in result.failures + result.errors]


def test_rates_are_the_service_s_own(built, service: ExchangeRateService) -> None:
    context, _ = built
    rows = context.fetchdf(f"SELECT * FROM {MODEL} ORDER BY transaction_id").to_dict("records")
    assert len(rows) == len(seed_rows()) == 1000
    converted = [row for row in rows if not service.fails_permanently(row["currency"], row["transaction_day"].date())]
    assert len(converted) == 1000 - len(keys_where(service.fails_permanently))
    for row in converted:
        rate = rate_of(row["currency"], row["transaction_day"].date().isoformat())
        assert row["usd_rate"] == rate, row
        assert row["amount_usd"] == pytest.approx(round(float(row["amount"]) * rate, 2), abs=0.005), row


def test_busy_answers_are_retried_to_a_rate(built, service: ExchangeRateService) -> None:
    context, counted = built
    busy = set(keys_where(service.fails_transiently))
    assert len(busy) >= 5  # 2% of the 507 keys: the test exercises retries
    # The service answers 503 once per busy key, to its first request; every row still has its rate.
    assert counted["statuses"].get("503") == len(busy)
    rows = context.fetchdf(f"SELECT currency, transaction_day, usd_rate FROM {MODEL}").itertuples(index=False)
    assert all(rate is not None and rate > 0 for currency, day, rate in rows if (currency, day.date().isoformat()) in busy)


def test_missing_rates_are_quarantined_with_their_arguments(built, service: ExchangeRateService) -> None:
    context, _ = built
    missing = keys_where(service.fails_permanently)
    assert len(missing) >= 4  # 1% of the keys, several rows each
    nulls = context.fetchdf(f"SELECT currency, transaction_day FROM {MODEL} WHERE usd_rate IS NULL ORDER BY ALL")
    assert [(c, d.date().isoformat()) for c, d in nulls.itertuples(index=False)] == missing
    records = quarantined(context)
    assert sorted(set(rows_of(records))) == sorted(set(missing))
    for record in records:
        assert record["function"] == "exchange_rate" and record["error_type"] == "RateNotFound"
        assert "no rate for" in record["error_message"] and record["attempts"] == 1  # a 404 is not retried
        day = date.fromisoformat(arguments_of(record)[1])
        assert record["interval_start"].date() <= day <= record["interval_end"].date()
        assert record["run_id"]


def test_every_row_given_null_is_quarantined(built, service: ExchangeRateService) -> None:
    context, _ = built
    missing = keys_where(service.fails_permanently)
    assert len(missing) > len(set(missing))  # some missing rates are asked for by several rows
    assert rows_of(quarantined(context)) == missing


def test_a_restatement_asks_the_service_only_for_the_missing_rates(built, service: ExchangeRateService) -> None:
    context, _ = built
    before = context.fetchdf(f"SELECT * FROM {MODEL} ORDER BY transaction_id")
    earlier = quarantined(context)
    service.reset_counts()
    # The YAML test runs on an in-memory database of its own, with nothing cached: skipped,
    # what is counted is the restatement's own requests.
    context.plan(restate_models=[MODEL], auto_apply=True, no_prompts=True, skip_tests=True, execution_time="2024-02-01")
    counted = service.stats()
    # Every rate found before comes from the cache: the only requests are for the rates the
    # service does not have (404s), which are not cached.
    assert counted["statuses"] == {"404": counted["requests"]}
    assert 0 < counted["requests"] <= len(keys_where(service.fails_permanently))
    assert context.fetchdf(f"SELECT * FROM {MODEL} ORDER BY transaction_id").equals(before)
    # The restatement resolved the earlier entries and quarantined the rows that failed again.
    resolved = quarantined(context, resolved=True)
    assert rows_of(resolved) == rows_of(earlier)
    assert all(record["resolved_by_run"] for record in resolved)
    again = quarantined(context)
    assert rows_of(again) == rows_of(earlier)
    assert {record["run_id"] for record in again} == {record["resolved_by_run"] for record in resolved}


@pytest.mark.slow
def test_the_audit_fails_an_interval_with_too_many_quarantined_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlmesh.utils.errors import PlanError

    from python.rates import URL_VARIABLE

    def own_database(copy: Path) -> None:
        # SQLMesh keeps one DuckDB connection per database path in a process: the module's
        # built copy holds "db.duckdb" open.
        config = copy / "config.yaml"
        config.write_text(config.read_text().replace("database: db.duckdb", "database: failing.duckdb"))

    # 5% of the keys missing: about 50 rows in January's interval, over the audit's 10.
    with ExchangeRateService(latency_ms=1, permanent_rate=0.05) as failing:
        monkeypatch.setenv(URL_VARIABLE, failing.url)
        with sqlmesh_output() as output, pytest.raises(PlanError):
            with planned_copy(PROJECT, tmp_path / "project", leave_out=("tests",), prepare=own_database,
                              execution_time="2024-02-01"):
                pass
    assert "'quarantined_rows' audit error" in output.getvalue()
