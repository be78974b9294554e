"""The project built with SQLMesh on DuckDB, its rows checked against the functions called
directly and against expectations written by hand."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from mixmesh.testing import ModelTest, copy_project
from python.text import classify_message, normalise_merchant

PROJECT = Path(__file__).resolve().parents[1]


def seed_rows() -> list[dict]:
    """The seed CSV read with the csv module, independently of SQLMesh's seed loader."""
    with open(PROJECT / "seeds/support_messages.csv", newline="", encoding="utf-8") as file:
        return [{key: value or None for key, value in row.items()} for row in csv.DictReader(file)]


def test_the_yaml_tests_pass(built) -> None:
    result = built.test(stream=io.StringIO())
    assert result.testsRun == 2 and result.wasSuccessful(), [text for _, text in result.failures + result.errors]


def test_each_row_is_what_the_functions_give_when_called_directly(built) -> None:
    rows = built.fetchdf("SELECT * FROM analytics.support_messages_classified ORDER BY message_id").to_dict("records")
    expected = [
        {
            "message_id": int(row["message_id"]),
            "merchant": None if row["merchant_raw"] is None else normalise_merchant(row["merchant_raw"]),
            "topic": classify_message(row["body"]),
        }
        for row in seed_rows()
    ]
    assert [{key: row[key] for key in ("message_id", "merchant", "topic")} for row in rows] == expected


def test_twelve_spellings_are_four_merchants(built) -> None:
    rows = built.fetchdf("SELECT merchant, messages, spellings, refund_requests FROM analytics.merchant_topics ORDER BY merchant")
    assert rows.to_dict("records") == [
        {"merchant": "amazon", "messages": 2, "spellings": 2, "refund_requests": 0},
        {"merchant": "backerei strasse", "messages": 2, "spellings": 2, "refund_requests": 0},
        {"merchant": "blue bottle", "messages": 2, "spellings": 2, "refund_requests": 1},
        {"merchant": "cafe nero", "messages": 2, "spellings": 2, "refund_requests": 1},
        {"merchant": "starbucks", "messages": 2, "spellings": 2, "refund_requests": 1},
    ]


def test_null_and_blank_text(built) -> None:
    rows = built.fetchdf(
        "SELECT message_id, merchant, topic FROM analytics.support_messages_classified "
        "WHERE message_id IN (8, 9, 11, 12) ORDER BY message_id"
    ).to_dict("records")
    assert rows == [
        {"message_id": 8, "merchant": "amazon", "topic": "empty"},  # blank body
        {"message_id": 9, "merchant": "backerei strasse", "topic": "empty"},  # NULL body: called with None
        {"message_id": 11, "merchant": None, "topic": "account"},  # NULL descriptor: strict, NULL out
        {"message_id": 12, "merchant": None, "topic": "refund"},  # blank descriptor: the function returns None
    ]


def test_unicode_forms_of_one_name_meet(mixmesh_project) -> None:
    composed, decomposed, full_width = "Café Nero", "CAFE\u0301 NERO 12", "\uff23\uff41\uff46\uff45 Nero"
    assert ModelTest(
        model_name="analytics.support_messages_classified",
        inputs={"raw.support_messages": [
            {"message_id": 1, "merchant_raw": composed, "body": "R\u00fcckerstattung"},
            {"message_id": 2, "merchant_raw": decomposed, "body": "Ru\u0308ckerstattung"},
            {"message_id": 3, "merchant_raw": full_width, "body": "\uff52\uff45\uff46\uff55\uff4e\uff44"},
        ]},
        expected_outputs=[{"message_id": n, "merchant": "cafe nero", "topic": "refund"} for n in (1, 2, 3)],
    ).run()


def test_a_number_passed_to_the_text_function_stops_the_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlmesh import Context

    copy = tmp_path / "project"
    copy_project(PROJECT, copy, leave_out=("tests",))
    (copy / "models/analytics/by_id.sql").write_text(
        "MODEL (name analytics.by_id, kind FULL);\n"
        "SELECT @normalise_merchant(message_id) AS merchant FROM raw.support_messages\n"
    )
    monkeypatch.chdir(copy)
    context = Context(paths=str(copy))
    try:
        test = ModelTest(model_name="analytics.by_id", inputs={"raw.support_messages": [{"message_id": 1}]},
                         expected_outputs=[], context=context)
        with pytest.raises(Exception, match=r"normalise_merchant' in model analytics\.by_id: argument 1 \(merchant_raw\) is INTEGER"):
            test.actual_rows()
    finally:
        context.close()
