"""The project folder on pytest's path: tests import python.training, as SQLMesh does."""
