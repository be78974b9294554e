"""The Python functions SQL models call, exposed to SQLMesh (they live in python/)."""

from python.scoring import fraud_probability  # noqa: F401
