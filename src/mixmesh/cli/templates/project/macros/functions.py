"""The Python functions SQL models call, exposed to SQLMesh.

SQLMesh looks for macros in macros/; the functions themselves live in python/shared/,
where other Python code and tests import them too.
"""

from python.shared.feature_engineering import python_anomaly_score, python_risk_score  # noqa: F401
from python.shared.personalization import python_content_recommendations, python_engagement_score  # noqa: F401
