"""@python_model declarations read without a project: kinds, columns, keys, dependencies."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import types

import pytest

from mixmesh.pymodels.dependencies import tables_read
from mixmesh.core.models import ModelDefinitionError, ModelKind, build_spec


@dataclasses.dataclass
class Prediction:
    customer_id: int
    prediction_date: dt.date
    predicted_ltv: float


def predict(context, **kwargs) -> Prediction: ...  # noqa: ANN001


def spec(**overrides):  # type: ignore[no-untyped-def]
    arguments = dict(name="analytics.p", kind=ModelKind.FULL, columns=None, grain=None, time_column=None, unique_key=None)
    arguments.update(overrides)
    return build_spec(predict, **arguments)


def test_columns_from_a_dataclass_return_annotation() -> None:
    declared = spec()
    assert {k: v.sql("duckdb") for k, v in declared.columns.items()} == {
        "customer_id": "BIGINT", "prediction_date": "DATE", "predicted_ltv": "DOUBLE"
    }
    assert declared.explicit_decorator_arguments() == {
        "columns": {"customer_id": "BIGINT", "prediction_date": "DATE", "predicted_ltv": "DOUBLE"}
    }
    assert spec(columns={"x": "INT"}).explicit_decorator_arguments() == {}


def test_incremental_takes_its_time_column_from_the_grain() -> None:
    declared = spec(kind=ModelKind.INCREMENTAL, grain=["customer_id", "prediction_date"])
    assert declared.kind == "INCREMENTAL_BY_TIME_RANGE" and declared.time_column == "prediction_date"
    assert spec(kind="incremental_by_time_range", grain=["customer_id"], time_column="prediction_date").time_column == "prediction_date"


def test_unique_key_defaults_to_the_grain() -> None:
    assert spec(kind=ModelKind.INCREMENTAL_BY_UNIQUE_KEY, grain=["customer_id"]).unique_key == ("customer_id",)
    with pytest.raises(ModelDefinitionError, match=r"^model analytics.p: an INCREMENTAL_BY_UNIQUE_KEY model needs unique_key=\[\.\.\.\] or grain=\[\.\.\.\]$"):
        spec(kind=ModelKind.INCREMENTAL_BY_UNIQUE_KEY)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"grain": ["customer_id", "missing"]}, r"grain names \['missing'\], which are not among its columns"),
        ({"kind": ModelKind.INCREMENTAL, "grain": ["customer_id", "prediction_date"], "time_column": "nope"}, r"time_column names \['nope'\], which are not among its columns"),
        ({"columns": {"x": "NOT A TYPE("}}, "column 'x': 'NOT A TYPE\\(' is not a SQL type"),
    ],
)
def test_declarations_that_cannot_work_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ModelDefinitionError, match=message):
        spec(**overrides)


def test_a_model_without_columns_is_refused() -> None:
    def untyped(context, **kwargs): ...  # noqa: ANN001, ANN202

    with pytest.raises(ModelDefinitionError, match=re.escape(
        "model m: declare its columns, with columns={'name': 'SQL type', ...} or a return annotation that is a "
        "TypedDict or dataclass describing one row"
    )):
        build_spec(untyped, name="m", kind="FULL", columns=None, grain=None, time_column=None, unique_key=None)


def reads_with_fstrings(context, start, end):  # noqa: ANN001, ANN201
    customers = "raw.customers"
    first = context.sql(f"SELECT * FROM raw.transactions WHERE day BETWEEN '{start}' AND '{end}'")
    second = context.sql(
        """
        WITH recent AS (SELECT * FROM analytics.orders o WHERE o.day > :start)
        SELECT r.*, s.segment FROM recent r JOIN crm.segments AS s USING (customer_id)
        """
    )
    dynamic = context.sql(f"SELECT * FROM {customers}")  # a table chosen at run time: not knowable
    return helper(context), first, second, dynamic


def helper(context):  # noqa: ANN001, ANN201
    return context.sql("SELECT count(*) FROM raw.events")


SEGMENTS_QUERY = "SELECT customer_id, segment FROM crm.segment_history"
queries = types.ModuleType("queries")  # as if imported: `from project import queries`
queries.ORDERS = "SELECT * FROM raw.documented"


def reads_module_constants(context):  # noqa: ANN001, ANN201
    return context.sql(SEGMENTS_QUERY), context.sql(queries.ORDERS)


def test_tables_read_include_module_level_queries() -> None:
    assert tables_read(reads_module_constants, "duckdb") == {"crm.segment_history", "raw.documented"}


def test_tables_read_are_found_in_strings_fstrings_and_helpers() -> None:
    assert tables_read(reads_with_fstrings, "duckdb") == {
        "raw.transactions", "analytics.orders", "crm.segments", "raw.events"
    }
