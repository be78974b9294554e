"""The Python functions SQL models call, exposed to SQLMesh (they live in python/)."""

from python.rates import exchange_rate  # noqa: F401
