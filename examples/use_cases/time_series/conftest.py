"""The project folder on pytest's path: tests import python.seasonal, as SQLMesh does."""
