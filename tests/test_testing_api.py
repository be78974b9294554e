"""mixmesh.testing.ModelTest: the seed document's testing API, on SQL and Python models."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixmesh.testing import ModelTest
from tests.projects import Project

FUNCTIONS = """
from mixmesh import udf


@udf
def risk(total: float, n: int) -> float:
    return min(1.0, total / (100.0 * n)) if n else 0.5
"""

SQL_MODEL = """
MODEL (name analytics.risk, kind FULL);
SELECT customer_id, @risk(SUM(amount), COUNT(*)::BIGINT) AS score, MIN(day) AS first_day
FROM raw.transactions
GROUP BY customer_id
"""

PYTHON_MODEL = '''
import pandas as pd

from mixmesh import python_model


@python_model(name="analytics.ltv", columns={"customer_id": "VARCHAR", "predicted_ltv": "DOUBLE", "segment": "VARCHAR"})
def ltv(context, **kwargs) -> pd.DataFrame:
    frame = context.sql(
        "SELECT t.customer_id, SUM(t.amount) AS spend, ANY_VALUE(c.customer_segment) AS segment "
        "FROM raw.transactions t JOIN raw.customers c USING (customer_id) GROUP BY t.customer_id"
    ).to_pandas()
    frame["predicted_ltv"] = frame.pop("spend") * 2
    return frame
'''


@pytest.fixture
def modelled(project: Project) -> Project:
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/risk.sql", SQL_MODEL)
    project.write("models/ltv.py", PYTHON_MODEL)
    project.write(
        "external_models.yaml",
        """
        - name: raw.transactions
          columns: {customer_id: VARCHAR, amount: DOUBLE, day: DATE}
        - name: raw.customers
          columns: {customer_id: VARCHAR, customer_segment: VARCHAR}
        """,
    )
    return project


TRANSACTIONS = [
    {"customer_id": "C001", "amount": 100.0, "day": "2024-01-01"},
    {"customer_id": "C001", "amount": 150.0, "day": "2024-01-02"},
    {"customer_id": "C002", "amount": 30.0, "day": "2024-01-05"},
]


def test_the_seed_s_model_test_on_a_python_model(modelled: Project) -> None:
    test = ModelTest(
        model_name="analytics.ltv",
        inputs={
            "raw.transactions": TRANSACTIONS[:2],
            "raw.customers": [{"customer_id": "C001", "customer_segment": "consumer"}],
        },
        expected_outputs=[{"customer_id": "C001", "predicted_ltv": pytest.approx(500.0, rel=0.1)}],
        context=modelled.context(),
    )
    assert test.run()


def test_a_sql_model_calling_a_python_function(modelled: Project) -> None:
    test = ModelTest(
        model_name="analytics.risk",
        inputs={"raw.transactions": TRANSACTIONS},
        expected_outputs=[
            {"customer_id": "C001", "score": pytest.approx(1.0), "first_day": "2024-01-01"},
            {"customer_id": "C002", "score": pytest.approx(0.3)},
        ],
        context=modelled.context(),
    )
    assert test.run()


def test_a_wrong_expectation_shows_the_rows_that_differ(modelled: Project) -> None:
    test = ModelTest(
        model_name="analytics.risk",
        inputs={"raw.transactions": TRANSACTIONS},
        expected_outputs=[{"customer_id": "C001", "score": 1.0}, {"customer_id": "C002", "score": 0.9}],
        context=modelled.context(),
    )
    with pytest.raises(AssertionError) as failure:
        test.run()
    message = str(failure.value)
    assert "expected, not returned: {customer_id: 'C002', score: 0.9}" in message
    assert "returned, not expected: {customer_id: 'C002', score: 0.3" in message


def test_the_project_is_found_from_a_path(modelled: Project) -> None:
    test = ModelTest(
        model_name="analytics.risk",
        inputs={"raw.transactions": TRANSACTIONS[2:]},
        expected_outputs=[{"customer_id": "C002", "score": pytest.approx(0.3)}],
        path=modelled.root / "models",
    )
    assert test.run()


def test_the_mixmesh_project_fixture_loads_the_project_around_the_test_file(modelled: Project) -> None:
    modelled.write(
        "tests/test_in_project.py",
        '''
        import pytest

        from mixmesh.testing import ModelTest


        def test_risk(mixmesh_project):
            assert "analytics.risk" in {m.name for m in mixmesh_project.models.values()}
            assert ModelTest(
                model_name="analytics.risk",
                inputs={"raw.transactions": [{"customer_id": "C9", "amount": 50.0, "day": "2024-02-01"}]},
                expected_outputs=[{"customer_id": "C9", "score": pytest.approx(0.5)}],
            ).run()
        ''',
    )
    result = pytest.main([str(modelled.root / "tests" / "test_in_project.py"), "-q", "-p", "no:cacheprovider"])
    assert result == 0


def test_inputs_may_be_named_without_their_schema_as_the_seed_does(modelled: Project) -> None:
    test = ModelTest(
        model_name="analytics.ltv",
        inputs={
            "transactions": TRANSACTIONS[:2],
            "customers": [{"customer_id": "C001", "customer_segment": "consumer"}],
        },
        expected_outputs=[{"customer_id": "C001", "predicted_ltv": 500.0, "segment": "consumer"}],
        context=modelled.context(),
    )
    assert test.run()


def test_an_input_the_model_does_not_read_is_named(modelled: Project) -> None:
    test = ModelTest(
        model_name="analytics.risk",
        inputs={"raw_transactions": TRANSACTIONS},
        expected_outputs=[],
        context=modelled.context(),
    )
    with pytest.raises(AssertionError, match=r"input 'raw_transactions' is not a table the model reads \(it reads raw.transactions\)"):
        test.run()


def test_an_unknown_model_is_named(modelled: Project) -> None:
    test = ModelTest(model_name="analytics.risc", inputs={}, expected_outputs=[], context=modelled.context())
    with pytest.raises(AssertionError) as failure:
        test.run()
    assert str(failure.value) == f"ModelTest: no model named 'analytics.risc' in the project at {modelled.root}"


def test_outside_any_project_the_error_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as failure:
        ModelTest(model_name="analytics.risk", inputs={}, expected_outputs=[], path=tmp_path).run()
    assert str(failure.value) == f"no SQLMesh project (config.yaml or config.py) at {tmp_path} or above it"


@pytest.mark.parametrize(
    "inputs, expected_outputs, says",
    [
        ({"raw.transactions": TRANSACTIONS[0]}, [],
         "ModelTest analytics.risk: inputs['raw.transactions'] is a list of rows, each a dict of column: value; got a dict"),
        ([TRANSACTIONS], [],
         "ModelTest analytics.risk: inputs= maps each table to its rows, e.g. {'raw.transactions': "
         "[{'customer_id': 1, ...}]}; got a list"),
        ({"raw.transactions": ["C001"]}, [],
         "ModelTest analytics.risk: inputs['raw.transactions'][0] is a row, a dict of column: value; got 'C001'"),
        ({"raw.transactions": TRANSACTIONS}, {"customer_id": "C001", "score": 1.0},
         "ModelTest analytics.risk: expected_outputs is a list of rows, each a dict of column: value; got a dict"),
    ],
    ids=["a row for a table's rows", "a list for the tables", "a value for a row", "a row for the expected rows"],
)
def test_fixture_rows_of_the_wrong_shape_are_named(inputs: object, expected_outputs: object, says: str) -> None:
    with pytest.raises(TypeError) as failure:
        ModelTest(model_name="analytics.risk", inputs=inputs, expected_outputs=expected_outputs)
    assert str(failure.value) == says


def test_an_input_column_the_table_does_not_have_is_named(modelled: Project) -> None:
    from sqlmesh.utils.errors import TestError

    rows = [{**TRANSACTIONS[0], "amout": 1.0}]
    test = ModelTest(model_name="analytics.risk", inputs={"raw.transactions": rows}, expected_outputs=[],
                     context=modelled.context())
    with pytest.raises(TestError) as failure:
        test.run()
    message = " ".join(str(failure.value).split())
    assert "Detected unknown column(s) Expected column(s): customer_id, amount, day Unknown column(s): amout" in message


@pytest.mark.slow
def test_model_test_matches_none_with_a_null_double(tmp_path: Path) -> None:
    from sqlmesh import Context

    (tmp_path / "config.yaml").write_text(
        "gateways: {local: {connection: {type: duckdb}}}\ndefault_gateway: local\n"
        "model_defaults: {dialect: duckdb}\ndisable_anonymized_analytics: true\n"
    )
    (tmp_path / "models").mkdir()
    (tmp_path / "models/nulls.sql").write_text(
        "MODEL (name analytics.nulls, kind FULL);\nSELECT id, CAST(NULL AS DOUBLE) AS v FROM raw.ids\n"
    )
    (tmp_path / "external_models.yaml").write_text("- name: raw.ids\n  columns: {id: INTEGER}\n")
    context = Context(paths=str(tmp_path))
    try:
        assert ModelTest(
            model_name="analytics.nulls", inputs={"raw.ids": [{"id": 1}]},
            expected_outputs=[{"id": 1, "v": None}], context=context,
        ).run()
        with pytest.raises(AssertionError, match="expected, not returned"):
            ModelTest(
                model_name="analytics.nulls", inputs={"raw.ids": [{"id": 1}]},
                expected_outputs=[{"id": 1, "v": 0.0}], context=context,
            ).run()
    finally:
        context.close()


def test_a_planned_copy_builds_there_and_leaves_the_project_and_the_working_directory_alone(tmp_path: Path) -> None:
    from mixmesh.testing import RUN_LEFTOVERS, copy_project, planned_copy

    project = Project(tmp_path / "project")
    project.write("models/numbers.sql", "MODEL (name analytics.numbers, kind FULL); SELECT 1 AS n")
    project.write("config.yaml", (project.root / "config.yaml").read_text().replace(str(project.root / "db.duckdb"), "db.duckdb"))
    for leftover in ("db.duckdb", "logs/sqlmesh.log", ".cache/x", "artifacts/model.joblib"):
        project.write(leftover, "left by a run")
    before = Path.cwd()
    prepared = []
    with planned_copy(project.root, tmp_path / "copy", leave_out=("artifacts",), prepare=prepared.append) as context:
        assert Path.cwd() == tmp_path / "copy" and prepared == [tmp_path / "copy"]
        assert context.fetchdf("SELECT n FROM analytics.numbers")["n"].tolist() == [1]
    assert Path.cwd() == before
    assert not (tmp_path / "copy" / "artifacts").exists() and not (tmp_path / "copy" / "logs").exists()
    assert (project.root / "db.duckdb").read_text() == "left by a run"  # the project's own file untouched
    assert "*.duckdb" in RUN_LEFTOVERS
    with pytest.raises(FileExistsError):
        copy_project(project.root, tmp_path / "copy")


def test_a_planned_copy_that_fails_restores_the_working_directory(tmp_path: Path) -> None:
    from mixmesh.testing import planned_copy

    project = Project(tmp_path / "project")
    project.write("models/broken.sql", "MODEL (name analytics.broken, kind FULL); SELECT * FROM raw.missing")
    before = Path.cwd()
    with pytest.raises(Exception):
        with planned_copy(project.root, tmp_path / "copy"):
            pass
    assert Path.cwd() == before


def test_sqlmesh_output_keeps_what_sqlmesh_prints(tmp_path: Path) -> None:
    from sqlmesh.utils.errors import PlanError

    from mixmesh.testing import planned_copy, sqlmesh_output

    project = Project(tmp_path / "project")
    project.write("audits/positive.sql", "AUDIT (name all_positive); SELECT * FROM @this_model WHERE n <= 0")
    project.write("models/numbers.sql", "MODEL (name analytics.numbers, kind FULL, audits (all_positive)); SELECT -1 AS n")
    with sqlmesh_output() as output, pytest.raises(PlanError):
        with planned_copy(project.root, tmp_path / "copy"):
            pass
    assert "'all_positive' audit error: 1 row failed" in output.getvalue()
