"""``mixmesh.functions``, the path projects import from and SQLMesh stores in their state: the
code lives in ``mixmesh.runtime.functions`` (the declaration in ``mixmesh.core.functions``) (see ``mixmesh.core.names``)."""

from mixmesh.core.names import shim
from mixmesh.runtime import functions as _moved

shim(__name__, _moved)
