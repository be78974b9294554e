"""The Python functions SQL models call, exposed to SQLMesh (they live in python/)."""

from python.seasonal import seasonal_baseline, seasonal_zscore  # noqa: F401
