"""``mixmesh.sql_functions``, the path projects import from and SQLMesh stores in their state: the
code lives in ``mixmesh.core.sql_functions`` (see ``mixmesh.core.names``)."""

from mixmesh.core.names import shim
from mixmesh.core import sql_functions as _moved

shim(__name__, _moved)
