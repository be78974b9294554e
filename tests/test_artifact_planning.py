"""A retrained, re-pinned artifact re-plans exactly the models whose code uses it, showing
both digests; an untouched one plans nothing; an unpinned one is tracked and warned about."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mixmesh.resources import read_pins, write_pins
from mixmesh.runtime.artifact_digests import used_artifacts
from tests import fresh_process
from tests.projects import Project

REPOSITORY = Path(__file__).resolve().parents[1]
EXAMPLE = REPOSITORY / "examples" / "customer_analytics"
BIN = Path(sys.executable).parent
RISK_MODEL = "artifacts/customer_risk_model.joblib"
RETRAIN_ON_OTHER_DAYS = """
import datetime, duckdb, sys
sys.path.insert(0, ".")
from python.training import ARTIFACT_PINS, train_risk_model
from mixmesh.resources import write_pins

with duckdb.connect("demo.duckdb") as connection:
    trained = train_risk_model(connection, datetime.date(2024, 1, 1), datetime.date(2024, 1, 3))
write_pins(ARTIFACT_PINS, [model.path for model in trained])
"""


def environment() -> dict:
    """A command's environment: wide, uncoloured output."""
    return {**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}


def run(project: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, env=environment(), stdin=subprocess.DEVNULL)
    assert result.returncode == 0 or not check, result.stdout + result.stderr
    return result


def plan(project: Path) -> str:
    """What `sqlmesh plan` shows, answering no to applying it (which exits 1, "Aborted!")."""
    return shown(fresh_process.run_sqlmesh(["plan", "--no-prompts"], cwd=project, env=environment()))


def shown(result: fresh_process.Finished) -> str:
    prompted = "Apply - Backfill Tables [y/n]" in result.stdout and "Aborted!" in result.stderr
    assert result.returncode == 0 or prompted, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example built once by `mixmesh demo`, with its three models trained and pinned."""
    copy = tmp_path_factory.mktemp("planning") / "customer_analytics"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("*.duckdb*", "artifacts", ".cache", "logs", "__pycache__"))
    sizes = ["--customers=120", "--transactions=4000", "--events=1500", "--days=4"]
    run(copy, str(BIN / "mixmesh"), "demo", "--project", str(copy), *sizes)
    return copy


@pytest.mark.slow
def test_an_untouched_artifact_plans_nothing(example: Path) -> None:
    assert "No changes to plan" in plan(example)


@pytest.mark.slow
def test_a_retrained_and_repinned_model_replans_exactly_the_models_using_it(example: Path) -> None:
    pins = example / "artifacts" / "SHA256SUMS"
    before = read_pins(pins)
    run(example, sys.executable, "-c", RETRAIN_ON_OTHER_DAYS)
    after = read_pins(pins)
    old, new = before["customer_risk_model.joblib"], after["customer_risk_model.joblib"]
    assert old != new and {k: v for k, v in after.items() if "risk" not in k} == {k: v for k, v in before.items() if "risk" not in k}

    planned = plan(example)
    directly = planned.partition("Directly Modified:")[2].partition("```diff")[0]
    assert "analytics.customer_risk_scoring" in directly
    assert "customer_ltv_prediction" not in planned and "real_time_personalization" not in directly
    assert f"-__mixmesh_artifacts__ = {{'{RISK_MODEL}': '{old}'}}" in planned
    assert f"+__mixmesh_artifacts__ = {{'{RISK_MODEL}': '{new}'}}" in planned


FUNCTIONS = '''
from mixmesh import load_artifact, udf

THRESHOLDS = "{artifact}"


@udf
def over_threshold(x: float) -> bool:
    return x > load_artifact(THRESHOLDS, {how})["limit"]
'''


def _threshold_project(project: Project, pinned: bool) -> Path:
    artifact = project.root / "artifacts" / "limits.pkl"
    artifact.parent.mkdir()
    artifact.write_bytes(pickle.dumps({"limit": 1.0}))
    how = 'pins="artifacts/SHA256SUMS"' if pinned else "allow_unpinned=True"
    if pinned:
        write_pins(project.root / "artifacts" / "SHA256SUMS", [artifact])
    project.write("macros/functions.py", FUNCTIONS.format(artifact="artifacts/limits.pkl", how=how))
    project.write("models/flagged.sql", """
        MODEL (name analytics.flagged, kind FULL);
        SELECT x, @over_threshold(x) AS flagged FROM (SELECT range::DOUBLE AS x FROM range(3))
    """)
    project.write("models/plain.sql", """
        MODEL (name analytics.plain, kind FULL);
        SELECT 1 AS x
    """)
    return artifact


def test_an_unpinned_artifact_is_warned_about_and_its_bytes_tracked(project: Project) -> None:
    artifact = _threshold_project(project, pinned=False)
    applied = project.cli("plan", "--auto-apply", "--no-prompts")
    assert "artifact artifacts/limits.pkl is loaded by the project's code but listed in no pins file" in applied.stderr
    assert project.query("SELECT list(flagged ORDER BY x) FROM analytics.flagged") == [([False, False, True],)]

    artifact.write_bytes(pickle.dumps({"limit": 0.5}))
    planned = shown(project.cli("plan", "--no-prompts", check=False))
    assert "analytics.flagged" in planned and "analytics.plain" not in planned
    assert "'artifacts/limits.pkl': 'unpinned " in planned


def test_a_pinned_artifact_replaced_without_repinning_plans_nothing(project: Project) -> None:
    artifact = _threshold_project(project, pinned=True)
    applied = project.cli("plan", "--auto-apply", "--no-prompts")
    assert "listed in no pins file" not in applied.stderr
    artifact.write_bytes(pickle.dumps({"limit": 0.5}))  # load_artifact refuses it: the pinned digest stands
    assert "No changes to plan" in shown(project.cli("plan", "--no-prompts", check=False))
    write_pins(project.root / "artifacts" / "SHA256SUMS", [artifact])
    assert "analytics.flagged" in shown(project.cli("plan", "--no-prompts", check=False))


def test_used_artifacts_keeps_only_artifacts(tmp_path: Path) -> None:
    (tmp_path / "artifacts").mkdir()
    model = tmp_path / "artifacts" / "model.joblib"
    model.write_bytes(b"trained")
    loose = tmp_path / "loose.pkl"
    loose.write_bytes(b"unpinned")
    (tmp_path / "notes.txt").write_text("not an artifact")
    pins = write_pins(tmp_path / "artifacts" / "SHA256SUMS", [model])
    (tmp_path / "artifacts" / "SHA256SUMS").write_text(
        (tmp_path / "artifacts" / "SHA256SUMS").read_text() + f"{'a' * 64}  retired.pkl\n"
    )
    strings = [
        "artifacts/model.joblib", "artifacts/SHA256SUMS", "artifacts/retired.pkl", "loose.pkl", "notes.txt",
        "SELECT * FROM t", "no/such/dir/x.pkl", textwrap.dedent("multi\nline"), "",
    ]
    used = used_artifacts(strings, tmp_path)
    assert used.digests == {
        "artifacts/model.joblib": pins["model.joblib"],
        "artifacts/retired.pkl": "a" * 64,  # pinned though not (yet) on disk
        "loose.pkl": f"unpinned {__import__('hashlib').sha256(b'unpinned').hexdigest()}",
    }
    assert used.unpinned == ("loose.pkl",)
    assert set(used.files) == {(tmp_path / "artifacts" / "SHA256SUMS").resolve(), loose.resolve()}


def test_without_the_pins_file_named_a_pickle_counts_as_unpinned(tmp_path: Path) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(b"trained")
    write_pins(tmp_path / "SHA256SUMS", [model])
    assert used_artifacts(["model.pkl"], tmp_path).unpinned == ("model.pkl",)
    assert used_artifacts(["model.pkl", "SHA256SUMS"], tmp_path).unpinned == ()
