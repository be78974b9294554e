"""The project folder on the import path, as SQLMesh puts it: tests import python.shared..."""

import os

# The tests run without the trained risk model (the seed's rules score every customer): the
# risk model's fallback_share audit allows it here (a real run allows 5%).
os.environ.setdefault("SQLMESH__VARIABLES__MAX_FALLBACK_SHARE", "1.0")
