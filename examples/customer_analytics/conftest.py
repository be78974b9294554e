"""The project folder on the import path, as SQLMesh puts it: tests import python.shared..."""
