"""`mixmesh advise` on the example, run from inside a copy of it as a user runs it: each model
declares what the seed's framework weighs, so no model is told it has no complexity needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mixmesh.testing import copy_project

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_model_declares_its_needs_and_the_risk_model_its_ml(tmp_path: Path) -> None:
    copy = copy_project(PROJECT, tmp_path / "customer_analytics", leave_out=("artifacts",))
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("mixmesh")), "advise", "--json"],
        cwd=copy, capture_output=True, text=True, timeout=600,
    )
    assert shown.returncode == 0, shown.stderr
    advice = {model["model"]: model for model in json.loads(shown.stdout)["models"]}
    assert set(advice) == {
        "analytics.customer_risk_scoring", "analytics.customer_ltv_prediction", "analytics.real_time_personalization",
    }
    assert advice["analytics.customer_risk_scoring"]["requirements"] == {"machine_learning": True}
    for model in advice.values():
        assert "no complexity needs" not in model["recommended_reason"], model["model"]
