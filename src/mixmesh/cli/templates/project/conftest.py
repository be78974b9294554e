"""Marks the project folder as pytest's root: tests import python.shared... as SQLMesh does."""
