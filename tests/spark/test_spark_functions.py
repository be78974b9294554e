"""Functions bound in Spark (local[2]): row and vectorized, NULLs, nested arguments, errors,
resilience, and the project code they need reaching the executors' worker processes."""

from __future__ import annotations

import collections
import dataclasses
import importlib
import importlib.util
import os
import sys
import textwrap
import typing as t
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mixmesh import CircuitBreaker, Retry, udf
from mixmesh.engines import spark as spark_engine
from mixmesh.engines.spark import figures as spark_figures
from mixmesh.core.errors import FunctionCallError, FunctionRuntimeError

pytestmark = pytest.mark.slow


@dataclasses.dataclass
class Transaction:
    amount: float
    kind: str


class Event(t.TypedDict):
    page: str
    seconds: float


TRANSACTIONS = """
    SELECT * FROM VALUES
      (1, array(named_struct('amount', 10.0D, 'kind', 'card'), named_struct('amount', 2.5D, 'kind', 'cash'))),
      (2, array(named_struct('amount', 7.0D, 'kind', 'card'))),
      (3, CAST(array() AS ARRAY<STRUCT<amount: DOUBLE, kind: STRING>>)),
      (4, NULL)
    AS t(id, transactions)
"""


def rows(spark: t.Any, sql: str) -> t.List[t.Tuple[t.Any, ...]]:
    return [tuple(row) for row in spark.sql(sql).collect()]


def failure(spark: t.Any, sql: str) -> Exception:
    """The mixmesh error a failing query stands for (as SQLMesh's adapter would raise it)."""
    with pytest.raises(Exception) as raised:
        spark.sql(sql).collect()
    explained = spark_engine.explain_error(raised.value, sql, {})
    assert explained is not None, f"not explained: {raised.value}"
    return explained


def test_a_row_function_gets_dataclasses_from_a_list_of_structs(spark: t.Any) -> None:
    @udf
    def card_total(transactions: t.List[Transaction]) -> float:
        return sum(tx.amount for tx in transactions if tx.kind == "card")

    name = spark_engine.register(spark, card_total)
    result = rows(spark, f"SELECT id, {name}(transactions) FROM ({TRANSACTIONS}) ORDER BY id")
    assert result == [(1, 10.0), (2, 7.0), (3, 0.0), (4, None)]  # NULL in, NULL out, not called


def test_a_row_function_returns_a_list_of_structs(spark: t.Any) -> None:
    @udf
    def visits(pages: str, seconds: float) -> t.List[Event]:
        return [{"page": page, "seconds": seconds} for page in pages.split(",")]

    name = spark_engine.register(spark, visits)
    ((result,),) = rows(spark, f"SELECT {name}('home,cart', 1.5)")
    assert [tuple(event) for event in result] == [("home", 1.5), ("cart", 1.5)]


def test_a_vectorized_function_receives_arrow_arrays_of_nested_values(spark: t.Any) -> None:
    @udf(vectorized=True)
    def spent(transactions: t.List[Transaction]) -> float:
        assert isinstance(transactions, pa.Array), type(transactions)
        amounts = pc.list_flatten(transactions).field("amount")
        totals = pa.table({"row": pc.list_parent_indices(transactions), "amount": amounts})
        summed = totals.group_by("row").aggregate([("amount", "sum")])
        result = [0.0] * len(transactions)
        for row, total in zip(summed["row"].to_pylist(), summed["amount_sum"].to_pylist()):
            result[row] = total
        return pa.array(result)

    name = spark_engine.register(spark, spent)
    result = rows(spark, f"SELECT id, {name}(transactions) FROM ({TRANSACTIONS}) ORDER BY id")
    assert result == [(1, 12.5), (2, 7.0), (3, 0.0), (4, None)]  # strict: the NULL row is not passed


def test_vectorized_functions_receive_arrow_or_pandas_as_their_hints_say(spark: t.Any) -> None:
    @udf(vectorized=True)
    def kind_of_batch(x: pa.Array) -> str:
        return pa.array([type(x).__name__] * len(x))

    @udf(vectorized=True)
    def doubled(x: pd.Series) -> float:
        return x * 2

    arrow_kind, pandas_doubled = spark_engine.register(spark, kind_of_batch), spark_engine.register(spark, doubled)
    result = rows(spark, f"SELECT DISTINCT {arrow_kind}(CAST(id AS DOUBLE)) FROM range(100)")
    assert result == [("DoubleArray",)]
    # An INT argument for a DOUBLE is converted, as on DuckDB.
    assert rows(spark, f"SELECT sum({pandas_doubled}(CAST(id AS INT))) FROM range(1000)") == [(999_000.0,)]


def test_null_handling_call_passes_nulls_to_the_function(spark: t.Any) -> None:
    @udf(null_handling="call")
    def or_default(x: t.Optional[float]) -> float:
        return -1.0 if x is None else x

    name = spark_engine.register(spark, or_default)
    assert rows(spark, f"SELECT {name}(NULL), {name}(2.0D)") == [(-1.0, 2.0)]


def test_the_same_function_in_many_batches_and_tasks(spark: t.Any) -> None:
    @udf
    def plus_one(x: int) -> int:
        return x + 1

    name = spark_engine.register(spark, plus_one)
    assert rows(spark, f"SELECT sum({name}(id)), count(*) FROM range(0, 50000, 1, 4)") == [
        (sum(range(1, 50001)), 50000)
    ]


# --- errors ---------------------------------------------------------------------------------


def test_an_error_names_the_function_and_the_row(spark: t.Any) -> None:
    @udf
    def no_sevens(x: float) -> float:
        if x == 7:
            raise ValueError("no sevens")
        return x

    name = spark_engine.register(spark, no_sevens)
    error = failure(spark, f"SELECT sum({name}(CAST(id AS DOUBLE))) FROM range(10)")
    assert isinstance(error, FunctionRuntimeError)
    assert str(error) == "function 'no_sevens' raised ValueError: no sevens; the row's arguments were x=7.0"


def test_an_argument_of_the_wrong_kind_is_refused_by_name(spark: t.Any) -> None:
    @udf
    def halve(amount: float) -> float:
        return amount / 2

    name = spark_engine.register(spark, halve)
    error = failure(spark, f"SELECT {name}('1.5')")
    assert isinstance(error, FunctionCallError)
    assert str(error).startswith("function 'halve': argument 1 (amount) is STRING, declared DOUBLE. Cast the argument")


def test_a_result_that_is_not_the_declared_type_is_reported(spark: t.Any) -> None:
    @udf
    def label(x: int) -> float:
        return "high" if x > 2 else 0.5  # type: ignore[return-value]

    name = spark_engine.register(spark, label)
    error = failure(spark, f"SELECT {name}(id) FROM range(5)")
    assert isinstance(error, FunctionRuntimeError)
    assert "function 'label' (declared DOUBLE) returned a value that does not convert" in str(error)
    assert "'high'" in str(error) and "x=3" in str(error)


def test_none_from_a_function_whose_hint_forbids_it_is_reported(spark: t.Any) -> None:
    @udf
    def sometimes(x: int) -> float:
        return None if x == 3 else 1.0  # type: ignore[return-value]

    name = spark_engine.register(spark, sometimes)
    error = failure(spark, f"SELECT {name}(id) FROM range(5)")
    assert isinstance(error, FunctionRuntimeError)
    assert "function 'sometimes' returned None for a row without NULL arguments" in str(error)


# --- resilience -----------------------------------------------------------------------------

# Per worker process: how often each row was tried (the module travels by value, each worker
# process has its own copy).
_attempts: t.Dict[float, int] = {}


def test_retries_and_fallbacks_run_on_the_executors(spark: t.Any) -> None:
    @udf(retry=Retry(attempts=3, backoff=[0], on=ConnectionError))
    def flaky(x: float) -> float:
        _attempts[x] = _attempts.get(x, 0) + 1
        if _attempts[x] == 1:
            raise ConnectionError("first call of each row fails")
        return x * 2

    @udf(vectorized=True, on_error="null")
    def no_sevens(x: pa.Array) -> pa.Array:
        if 7.0 in x.to_pylist():
            raise ValueError("a seven in the batch")
        return pc.multiply(x, 2)

    retried, isolated = spark_engine.register(spark, flaky), spark_engine.register(spark, no_sevens)
    x = "CAST(id AS DOUBLE)"
    spark_figures.collect_batches()  # what earlier tests left
    assert rows(spark, f"SELECT sum({retried}({x})), sum({isolated}({x})), count({isolated}({x})) FROM range(100)") == [
        (9900.0, 9900.0 - 14.0, 99)  # only the row holding 7 got NULL
    ]
    # What the executors counted came back to the driver with the batches' figures.
    reported: t.Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for batch in spark_figures.collect_batches():
        reported[batch.function].update({"rows": batch.rows, **dict(batch.events)})
    assert reported["flaky"]["rows"] == 100 and reported["flaky"]["retries"] == 100
    assert reported["no_sevens"]["fallbacks"] == 1


def test_a_circuit_breaker_travels_to_the_executors_and_opens_there(spark: t.Any, tmp_path: Path) -> None:
    calls = tmp_path / "calls"

    @udf(circuit_breaker=CircuitBreaker(fail_max=3, reset_timeout=600), on_error=-1.0)
    def unavailable(x: float) -> float:
        with open(calls, "a") as log:  # each call that reached the function, by worker process
            log.write(f"{os.getpid()}\n")
        raise ConnectionError("the scoring service is down")

    name = spark_engine.register(spark, unavailable)
    assert rows(spark, f"SELECT DISTINCT {name}(CAST(id AS DOUBLE)) FROM range(0, 200, 1, 2)") == [(-1.0,)]
    per_process = collections.Counter(calls.read_text().split())
    assert set(per_process.values()) == {3}  # then the circuit opened: no more calls in that process


# --- project code on the executors ----------------------------------------------------------


def test_a_function_from_a_project_module_runs_on_a_worker_that_cannot_import_it(
    spark: t.Any, tmp_path: Path
) -> None:
    package = f"shipped_{uuid.uuid4().hex[:8]}"
    helpers = tmp_path / package / "shared"
    helpers.mkdir(parents=True)
    (tmp_path / package / "__init__.py").touch()
    (helpers / "__init__.py").touch()
    (helpers / "scoring.py").write_text("WEIGHT = 3\n\ndef weighted(x):\n    return x * WEIGHT\n")
    (tmp_path / package / "functions.py").write_text(
        textwrap.dedent(
            f"""
            import os
            from mixmesh import udf
            from {package}.shared import scoring

            @udf
            def score(x: int) -> int:
                return scoring.weighted(x)

            @udf
            def process_id(x: int) -> int:
                return os.getpid()
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module(f"{package}.functions")
    finally:
        sys.path.remove(str(tmp_path))  # only the driver ever could import it

    @udf
    def importable(name: str) -> bool:
        return importlib.util.find_spec(name) is not None

    score, process_id = spark_engine.register(spark, module.score), spark_engine.register(spark, module.process_id)
    check = spark_engine.register(spark, importable)
    result = rows(spark, f"SELECT sum({score}(id)), min({process_id}(id)), max({check}('{package}')) FROM range(10)")
    (total, worker_pid, worker_can_import) = result[0]
    assert total == 3 * sum(range(10))
    assert worker_pid != os.getpid()  # it ran in a worker process, not in the driver
    assert worker_can_import is False  # ...which could not have imported the project module


def test_a_row_function_gets_maps_as_dicts(spark: t.Any) -> None:
    @udf
    def total_weight(weights: t.Dict[str, float]) -> float:
        return sum(weights.values()) + len([key for key in weights if key.startswith("a")])

    name = spark_engine.register(spark, total_weight)
    assert rows(spark, f"SELECT {name}(map('a', 1.5D, 'b', 2.0D))") == [(4.5,)]


def test_a_function_declared_not_deterministic_is_not_deterministic_to_spark(spark: t.Any) -> None:
    """Spark's optimizer may merge, reorder or repeat calls it takes for deterministic, as
    DuckDB's may: ``deterministic=False`` reaches Spark's plan, and only there."""

    @udf(deterministic=False)
    def drawn(x: int) -> int:
        return x

    @udf
    def same(x: int) -> int:
        return x

    def analyzed_deterministic(function: t.Any) -> bool:
        name = spark_engine.register(spark, function)
        return spark.sql(f"SELECT {name}(id) FROM range(3)")._jdf.queryExecution().analyzed().deterministic()

    assert (analyzed_deterministic(drawn), analyzed_deterministic(same)) == (False, True)
