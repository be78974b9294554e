"""The package's version (one place: the package metadata and the command read it here)."""

__version__ = "0.1.0"
