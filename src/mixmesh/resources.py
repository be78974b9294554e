"""``mixmesh.resources``, the path projects import from and SQLMesh stores in their state: the
code lives in ``mixmesh.runtime.resources`` (see ``mixmesh.core.names``)."""

from mixmesh.core.names import shim
from mixmesh.runtime import resources as _moved

shim(__name__, _moved)
