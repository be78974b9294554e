"""The ``mixmesh`` command (``main``), the demo, its data and the project scaffold."""

from mixmesh.cli.main import main

__all__ = ["main"]
