"""The Python functions SQL models call, exposed to SQLMesh (they live in python/)."""

from python.text import classify_message, normalise_merchant  # noqa: F401
