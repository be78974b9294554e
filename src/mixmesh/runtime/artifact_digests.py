"""Which artifacts a model's code uses, and the digest of each: what ties a retrained model
file to the models whose values it produces.

A model's stored environment (its functions, the resources they build and the module-level
constants they read) names its artifacts as text: ``RISK_MODEL = "artifacts/risk.joblib"``,
``load_artifact("models/churn.pkl", pins=...)``, ``@resource(watch=...)``. ``used_artifacts``
reads those strings and keeps the ones that are artifacts:

- a path listed in a pins file the environment also names: its digest is the pinned one, so
  re-pinning (``write_pins`` after a retrain) changes it, and replacing the file without
  re-pinning does not (``load_artifact`` refuses that file anyway);
- a pickle or joblib file that exists but is listed in no pins file the environment names:
  its digest is the file's own, marked ``unpinned``, and it is reported so that the plan
  can warn about it.

Paths are resolved against the project's root, as ``load_artifact`` resolves them. Strings
that name no such file are not artifacts; nothing is read but the pins files and the
unpinned artifacts themselves.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing as t
from pathlib import Path

from mixmesh.runtime.resources import ArtifactError, file_sha256, read_pins

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
_DIGEST_LINE = re.compile(r"^[0-9a-fA-F]{64}  \S")
_MAX_PATH_CHARS = 4096  # longer strings (queries, docstrings) are not paths


@dataclasses.dataclass(frozen=True)
class UsedArtifacts:
    """Artifact path (as the code spells it) -> digest; the paths no pins file lists; the
    files whose change changes a digest (the pins files used, the unpinned artifacts); and
    the artifacts' resolved paths."""

    digests: t.Dict[str, str]
    unpinned: t.Tuple[str, ...]
    files: t.Tuple[Path, ...]
    paths: t.Tuple[Path, ...] = ()


def used_artifacts(strings: t.Iterable[str], root: Path) -> UsedArtifacts:
    """The artifacts among ``strings`` (paths as code spells them), resolved against ``root``."""
    candidates = {text: _resolved(text, root) for text in set(strings) if _may_be_path(text)}
    files = {text: path for text, path in candidates.items() if path is not None}
    pins = {path: _pins_of(path) for path in files.values() if _is_pins_file(path)}
    digests: t.Dict[str, str] = {}
    unpinned = []
    read: t.Set[Path] = set()
    for text, path in sorted(files.items()):
        if path in pins:
            continue
        pinned = _pinned_digest(path, pins)
        if pinned is not None:
            digests[text], pins_file = pinned
            read.add(pins_file)
        elif path.suffix.lower() in PICKLE_SUFFIXES and path.is_file():
            digests[text] = f"unpinned {file_sha256(path)}"
            unpinned.append(text)
            read.add(path)
    return UsedArtifacts(digests, tuple(unpinned), tuple(sorted(read)), tuple(sorted(files[text] for text in digests)))


def _may_be_path(text: str) -> bool:
    return 0 < len(text) <= _MAX_PATH_CHARS and "\n" not in text and "\x00" not in text


def _resolved(text: str, root: Path) -> t.Optional[Path]:
    given = Path(text).expanduser()
    path = given if given.is_absolute() else root / given
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return None
    # A pinned artifact may be missing (not trained yet): its pins file still gives its digest.
    return resolved if resolved.parent.is_dir() else None


def _is_pins_file(path: Path) -> bool:
    """A ``sha256sum``-format file: every line that is not blank or a comment is a digest line."""
    if not path.is_file() or path.suffix.lower() in PICKLE_SUFFIXES or path.stat().st_size > 1 << 20:
        return False
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
    except (OSError, UnicodeDecodeError):
        return False
    return bool(lines) and all(_DIGEST_LINE.match(line) for line in lines)


def _pins_of(path: Path) -> t.Dict[str, str]:
    try:
        return read_pins(path)
    except ArtifactError:
        return {}


def _pinned_digest(path: Path, pins: t.Mapping[Path, t.Mapping[str, str]]) -> t.Optional[t.Tuple[str, Path]]:
    """The digest a pins file gives ``path``, and that pins file (the first, by path)."""
    for pins_file, pinned in sorted(pins.items()):
        name = Path(os.path.relpath(path, pins_file.parent)).as_posix()
        if name in pinned:
            return pinned[name], pins_file
    return None
