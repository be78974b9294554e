"""The Python functions SQL models call, exposed to SQLMesh (they live in python/)."""

from python.rules import order_violations  # noqa: F401
