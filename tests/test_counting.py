"""mixmesh.count: what a function finds in the data is counted per model and function, logged
once, and kept with the run's figures (the store, `mixmesh stats`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mixmesh import count
from mixmesh.errors import FunctionCallError
from mixmesh.monitor.store import DEFAULT_PATH, MetricsStore
from mixmesh.resilience import events, reset_events
from tests.projects import Project

FUNCTIONS = '''
import pyarrow as pa
import pyarrow.compute as pc

from mixmesh import count, udf


@udf
def checked(amount: float) -> float:
    if amount < 0:
        count("negative_amounts", detail=f"amount {amount}")
    return abs(amount)


@udf(vectorized=True)
def checked_batch(amount: pa.Array) -> pa.Array:
    count("zero_amounts", pc.sum(pc.equal(amount, 0.0)).as_py() or 0)
    return pc.abs(amount)
'''

MODEL = """
MODEL (name analytics.checked, kind FULL);
SELECT i, @checked(v) AS a, @checked_batch(v) AS b
FROM (SELECT i, CASE WHEN i % 10 = 0 THEN 0.0 WHEN i % 7 = 0 THEN -1.0 * i ELSE i END AS v FROM range(1, 1001) t(i))
"""


def test_counts_are_kept_with_the_function_s_figures_and_shown_by_stats(project: Project, capfd) -> None:
    project.write("macros/functions.py", FUNCTIONS)
    project.write("models/checked.sql", MODEL)
    project.plan()
    negatives = sum(1 for i in range(1, 1001) if i % 10 and i % 7 == 0)
    zeros = 1000 // 10
    functions = MetricsStore(project.root / DEFAULT_PATH).function_runs()
    found = {row.function: json.loads(row.findings) for row in functions.itertuples() if isinstance(row.findings, str)}
    assert found == {"checked": {"negative_amounts": negatives}, "checked_batch": {"zero_amounts": zeros}}
    said = capfd.readouterr()
    assert (said.out + said.err).count("negative_amounts") <= 1  # logged once at most, never per row

    shown = subprocess.run(
        [str(Path(sys.executable).with_name("mixmesh")), "stats", "--json", "--project", str(project.root)],
        capture_output=True, text=True, check=True,
    )
    by_function = {f["function"]: f["findings"] for f in json.loads(shown.stdout)["functions"]}
    assert by_function == {"checked": {"negative_amounts": negatives}, "checked_batch": {"zero_amounts": zeros}}


def test_a_count_outside_any_model_is_kept_in_events_under_its_caller() -> None:
    reset_events()

    def validate_rows() -> None:
        count("odd_rows", 3)
        count("odd_rows")
        count("odd_rows", 0)

    validate_rows()
    assert events() == {(None, "validate_rows", "finding:odd_rows"): 4}


@pytest.mark.parametrize(
    ("finding", "n", "message"),
    [
        ("", 1, "finding must be a name"),
        ("amount mismatch", 1, "finding must be a name"),
        (3, 1, "finding must be a name"),
        ("mismatches", -1, "n must be a whole number >= 0, got -1"),
        ("mismatches", 1.5, "n must be a whole number >= 0, got 1.5"),
        ("mismatches", True, "n must be a whole number >= 0, got True"),
    ],
)
def test_bad_arguments_are_refused_naming_them(finding, n, message) -> None:
    with pytest.raises(FunctionCallError, match=message):
        count(finding, n)
