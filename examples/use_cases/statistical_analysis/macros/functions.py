"""The Python functions SQL models call, exposed to SQLMesh (they live in python/)."""

from python.stats import median_abs_deviation, normality_p_value  # noqa: F401
