"""The Python functions SQL models call, exposed to SQLMesh (they live in python/)."""

from python.tolerances import order_mismatches  # noqa: F401
