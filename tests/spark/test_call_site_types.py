"""Argument types from the call site on Spark (local mode): COUNT_IF, SUM, COUNT, DECIMAL,
DATE and TIMESTAMP columns feed ``int``, ``float``, ``str``, ``date``, ``datetime``,
``Decimal``, ``Any``, ``dict``, ``list`` and TypedDict parameters through ``sqlmesh plan``;
each function answers what Python received, which must be exactly what the hint promises."""

from __future__ import annotations

import pytest

from tests.spark.projects import SparkProject

pytestmark = pytest.mark.slow

FUNCTIONS = '''
import datetime
import decimal
import typing as t
from typing import Any, Dict, List

from mixmesh import udf


class Item(t.TypedDict):
    amount: float
    label: str


def shown(value):
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={shown(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(sorted(shown(v) for v in value)) + "]"  # Spark keeps no list order
    return f"{type(value).__name__}:{value}"


@udf
def as_int(x: int) -> str:
    return shown(x)


@udf
def as_float(x: float) -> str:
    return shown(x)


@udf
def as_text(x: str) -> str:
    return shown(x)


@udf
def as_date(x: datetime.date) -> str:
    return shown(x)


@udf
def as_datetime(x: datetime.datetime) -> str:
    return shown(x)


@udf
def as_decimal(x: decimal.Decimal) -> str:
    return shown(x)


@udf
def as_any(x: Any) -> str:
    return shown(x)


@udf
def as_dict(x: Dict[str, Any]) -> str:
    return shown(x)


@udf
def as_list(x: List[Dict[str, Any]]) -> str:
    return shown(x)


@udf
def as_items(x: list[Item]) -> str:
    return shown(x)


@udf
def unannotated(x) -> str:
    return shown(x)
'''

SOURCE = """
MODEL (name raw.source, kind FULL);
SELECT * FROM (VALUES
    (1, 'a', 2, 1.25, DATE '2024-03-01', TIMESTAMP '2024-03-01 10:30:00'),
    (1, 'b', 5, 2.50, DATE '2024-03-02', TIMESTAMP '2024-03-02 23:59:59'),
    (2, 'a', 7, 3.75, DATE '2024-03-03', TIMESTAMP '2024-03-03 00:00:01')
) AS t(id, label, n, amount, day, at)
"""

TYPED = """
MODEL (name analytics.typed, kind FULL);
WITH agg AS (
    SELECT id,
           COUNT_IF(label = 'a') AS counted_if,
           SUM(n) AS summed,
           COUNT(*) AS counted,
           SUM(CAST(amount AS DECIMAL(18, 3))) AS decimal_total,
           MIN(day) AS first_day,
           MIN(at) AS first_at,
           MIN(label) AS first_label,
           MIN(amount) AS least_amount,
           LIST({'amount': amount, 'label': label} ORDER BY day) AS items
    FROM raw.source GROUP BY id
)
SELECT id,
       @as_int(counted_if) AS int_from_countif,
       @as_int(summed) AS int_from_sum,
       @as_int(counted) AS int_from_count,
       @as_float(decimal_total) AS float_from_decimal,
       @as_float(counted) AS float_from_count,
       @as_decimal(decimal_total) AS decimal_from_decimal,
       @as_text(first_label) AS text_from_varchar,
       @as_date(first_day) AS date_from_date,
       @as_datetime(first_at) AS datetime_from_timestamp,
       @as_datetime(first_day) AS datetime_from_date,
       @as_any(summed) AS any_from_sum,
       @as_dict({'amount': least_amount, 'label': first_label}) AS dict_from_struct,
       @as_list(items) AS list_from_list,
       @as_items(items) AS typeddict_list,
       @unannotated(decimal_total) AS unannotated_decimal
FROM agg
"""

EXPECTED = {
    1: {
        "int_from_countif": "int:1", "int_from_sum": "int:7", "int_from_count": "int:2",
        "float_from_decimal": "float:3.75", "float_from_count": "float:2.0",
        "decimal_from_decimal": "Decimal:3.750", "text_from_varchar": "str:a",
        "date_from_date": "date:2024-03-01", "datetime_from_timestamp": "datetime:2024-03-01 10:30:00",
        "datetime_from_date": "datetime:2024-03-01 00:00:00", "any_from_sum": "int:7",
        "dict_from_struct": "{amount=float:1.25, label=str:a}",
        "list_from_list": "[{amount=float:1.25, label=str:a}, {amount=float:2.5, label=str:b}]",
        "typeddict_list": "[{amount=float:1.25, label=str:a}, {amount=float:2.5, label=str:b}]",
        "unannotated_decimal": "Decimal:3.750",
    },
    2: {
        "int_from_countif": "int:1", "int_from_sum": "int:7", "int_from_count": "int:1",
        "float_from_decimal": "float:3.75", "float_from_count": "float:1.0",
        "decimal_from_decimal": "Decimal:3.750", "text_from_varchar": "str:a",
        "date_from_date": "date:2024-03-03", "datetime_from_timestamp": "datetime:2024-03-03 00:00:01",
        "datetime_from_date": "datetime:2024-03-03 00:00:00", "any_from_sum": "int:7",
        "dict_from_struct": "{amount=float:3.75, label=str:a}",
        "list_from_list": "[{amount=float:3.75, label=str:a}]",
        "typeddict_list": "[{amount=float:3.75, label=str:a}]",
        "unannotated_decimal": "Decimal:3.750",
    },
}


def test_call_site_types_reach_python_as_the_hints_say_on_spark(spark_project: SparkProject) -> None:
    spark_project.write("macros/functions.py", FUNCTIONS)
    spark_project.write("models/source.sql", SOURCE)
    spark_project.write("models/typed.sql", TYPED)
    spark_project.plan()
    columns = list(EXPECTED[1])
    rows = spark_project.fetch(f"SELECT id, {', '.join(columns)} FROM analytics.typed ORDER BY id")
    assert {row[0]: dict(zip(columns, row[1:])) for row in rows} == EXPECTED
