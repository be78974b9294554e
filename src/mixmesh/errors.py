"""``mixmesh.errors``, the path projects import from and SQLMesh stores in their state: the
code lives in ``mixmesh.core.errors`` (see ``mixmesh.core.names``)."""

from mixmesh.core.names import shim
from mixmesh.core import errors as _moved

shim(__name__, _moved)
