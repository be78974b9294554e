"""The Python functions SQL models call: they live in python/shared/, as in the seed's layout."""

from python.shared.feature_engineering import python_risk_score  # noqa: F401
from python.shared.personalization import python_content_recommendations, python_engagement_score  # noqa: F401
