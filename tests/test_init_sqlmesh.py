"""The `mixmesh init` project as SQLMesh's own commands see it: grains it can join on,
`sqlmesh table_diff` between environments without `--on`, audits that stop a plan."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mixmesh.cli.scaffold import init_project
from tests import fresh_process

BIN = Path(sys.executable).parent

# Each model's grain columns; in the MODEL block `grains [a, b]`, since SQLMesh reads
# `grain [a, b]` as one grain, the expression ARRAY(a, b), on which `model.on` fails and
# `sqlmesh table_diff` crashes.
GRAINS = {
    "analytics.customer_ltv_prediction": ["customer_id", "prediction_date"],
    "analytics.customer_risk_scoring": ["customer_id", "score_date"],
    "analytics.real_time_personalization": ["user_id", "session_id"],
    "analytics.transaction_anomalies": ["transaction_id"],
    "raw.customers": ["customer_id"],
}

# What a fresh `sqlmesh` process loads: every model's grains, and the columns table_diff joins on.
READ_GRAINS = """
import json
from sqlmesh import Context

context = Context(paths=".")
grains = {}
for model in context.models.values():
    if model.grains:
        try:
            on = model.on
        except Exception as error:
            on = f"{type(error).__name__}: {error}"
        grains[model.name] = {"grains": [grain.sql() for grain in model.grains], "on": on}
print(json.dumps(grains))
"""


def sqlmesh(project: Path, *args: str, check: bool = True) -> fresh_process.Finished:
    """`sqlmesh ...` run from the project, as a user would; wide output, so that no line wraps."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = fresh_process.run_sqlmesh(args, cwd=project, env={**env, "NO_COLOR": "1", "COLUMNS": "200"})
    if check:
        assert result.returncode == 0, f"sqlmesh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer holds {old!r}"
    path.write_text(text.replace(old, new))


def test_sqlmesh_reads_every_grain_of_the_template_as_columns(tmp_path: Path) -> None:
    init_project(tmp_path)
    loaded = subprocess.run(
        [sys.executable, "-c", READ_GRAINS], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    grains = json.loads(loaded.stdout.splitlines()[-1])
    assert grains == {name: {"grains": columns, "on": columns} for name, columns in GRAINS.items()}


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new project, planned into prod once; tests work on copies of it."""
    project = tmp_path_factory.mktemp("planned") / "shop"
    init_project(project)
    sqlmesh(project, "plan", "--auto-apply", "--no-prompts")
    return project


@pytest.fixture
def shop(planned: Path, tmp_path: Path) -> Path:
    """A copy of the planned project (its database, state included): paths in it are relative."""
    return Path(shutil.copytree(planned, tmp_path / "shop"))


def diff_sections(output: str) -> dict:
    """table_diff's report per model: {model: (join columns, row count lines)}."""
    sections = {}
    for section in output.split("Table Diff\n")[1:]:
        model = re.search(r"Model:\n\W+(\S+)", section).group(1)
        join = re.search(r"Join On:\n((?:\s+\W+ \w+\n)+)", section).group(1)
        counts = re.search(r"Row Counts:\n((?:\W+[A-Z ]+: .*\n)+)", section).group(1)
        sections[model] = ([line.split()[-1] for line in join.splitlines()], [
            re.sub(r"^\W+", "", line).strip() for line in counts.splitlines()
        ])
    return sections


@pytest.mark.slow
def test_table_diff_of_prod_and_dev_joins_every_model_on_its_grain(shop: Path) -> None:
    # A change into dev for every model with a grain (the LTV model follows raw.customers).
    edit(shop / "seeds/customers.csv", "C004,consumer", "C004,smb")
    edit(shop / "sql/udfs/risk_scoring_functions.sql", ">= 0.4 THEN 'MEDIUM'", ">= 0.55 THEN 'MEDIUM'")
    edit(shop / "python/shared/feature_engineering.py", "SPIKE_RATIO = 3.0", "SPIKE_RATIO = 2.0")
    edit(shop / "python/shared/personalization.py", "_BIAS = -2.0", "_BIAS = -1.0")
    # The YAML tests pin the old figures: this plan is about the diff, not the tests.
    sqlmesh(shop, "plan", "dev", "--skip-tests", "--auto-apply", "--no-prompts")

    selection = [option for model in GRAINS for option in ("--select-model", model)]
    diff = sqlmesh(shop, "table_diff", "prod:dev", *selection)  # no --on: the grains
    assert "Table diff completed successfully!" in diff.stdout
    assert diff_sections(diff.stdout) == {
        # C003 and C004 scored 0.5: MEDIUM in prod, LOW in dev
        "analytics.customer_risk_scoring": (GRAINS["analytics.customer_risk_scoring"], [
            "FULL MATCH: 3 rows (60.0%)", "PARTIAL MATCH: 2 rows (40.0%)"]),
        # C004's segment, and so its predicted LTV
        "raw.customers": (GRAINS["raw.customers"], ["FULL MATCH: 3 rows (75.0%)", "PARTIAL MATCH: 1 rows (25.0%)"]),
        "analytics.customer_ltv_prediction": (GRAINS["analytics.customer_ltv_prediction"], [
            "FULL MATCH: 3 rows (75.0%)", "PARTIAL MATCH: 1 rows (25.0%)"]),
        # the anomaly scores of the 3 transactions above their customer's typical amount
        "analytics.transaction_anomalies": (GRAINS["analytics.transaction_anomalies"], [
            "FULL MATCH: 11 rows (78.57%)", "PARTIAL MATCH: 3 rows (21.43%)"]),
        # every session's engagement score (and the run's time, processed_at)
        "analytics.real_time_personalization": (GRAINS["analytics.real_time_personalization"], [
            "PARTIAL MATCH: 5 rows (100.0%)"]),
    }


@pytest.mark.slow
def test_an_audit_of_audits_sql_logic_stops_a_plan_that_breaks_the_risk_tiers(shop: Path) -> None:
    sqlmesh(shop, "audit")  # the audits hold on the planned data
    # A plausible slip: MEDIUM and LOW swapped, so the two scores of 0.5 rank below one of 0.2.
    edit(shop / "sql/udfs/risk_scoring_functions.sql", ">= 0.4 THEN 'MEDIUM'", ">= 0.4 THEN 'LOW'")
    edit(shop / "sql/udfs/risk_scoring_functions.sql", "ELSE 'LOW'", "ELSE 'MEDIUM'")
    # The YAML test would stop it first: skip it, to see the audit do so.
    failed = sqlmesh(shop, "plan", "dev", "--skip-tests", "--auto-apply", "--no-prompts", check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1, output
    assert "'risk_tiers_rise_with_scores' audit error: 2 rows failed" in output
    assert "Plan application failed." in output
