"""``mixmesh.types``, the path projects import from and SQLMesh stores in their state: the
code lives in ``mixmesh.core.sql_types`` (see ``mixmesh.core.names``)."""

from mixmesh.core.names import shim
from mixmesh.core import sql_types as _moved

shim(__name__, _moved)
