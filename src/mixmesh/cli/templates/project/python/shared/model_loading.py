"""ML model management: the trained risk model when there is one, rules until then."""

from __future__ import annotations

from mixmesh import load_artifact, resource

# Relative to the project (SQLMesh runs from there). Save a trained model with a
# scikit-learn style predict_proba here (joblib.dump), then pin it:
#     mixmesh.resources.write_pins(ARTIFACT_PINS, [RISK_MODEL])
# Only a file whose bytes match its pin is ever unpickled; an unpinned one is refused.
RISK_MODEL = "artifacts/risk_model.joblib"
ARTIFACT_PINS = "artifacts/SHA256SUMS"


class RuleBasedRiskModel:
    """Risk from three rules, with the interface of a trained classifier."""

    NIGHT_SHARE = 0.3  # above this share of night-time transactions: +0.5
    VOLATILITY = 1.0  # amounts' standard deviation above this many means: +0.3
    CATEGORY_SPREAD = 0.8  # above this share of switches to a new merchant category: +0.2

    def predict_proba(self, features):
        """For each row of features, [P(low risk), P(high risk)]."""
        rows = []
        for night_share, volatility, category_spread in features:
            risk = (
                0.5 * (night_share > self.NIGHT_SHARE)
                + 0.3 * (volatility > self.VOLATILITY)
                + 0.2 * (category_spread > self.CATEGORY_SPREAD)
            )
            rows.append([1.0 - risk, risk])
        return rows


@resource(watch=(RISK_MODEL, ARTIFACT_PINS))
def load_risk_model():
    """The risk model, loaded once per process (again if a file changes); rules when it is missing or unpinned."""
    return load_artifact(RISK_MODEL, pins=ARTIFACT_PINS, fallback=RuleBasedRiskModel)
