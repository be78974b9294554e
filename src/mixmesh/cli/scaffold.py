"""``mixmesh init``: a new project in the seed document's layout, green from the start.

The project is copied from ``templates/project/``: real files, which the tests plan, test
and run as they are. Nothing is ever overwritten.
"""

from __future__ import annotations

import shutil
import typing as t
from pathlib import Path

from mixmesh.core.errors import MixmeshError

TEMPLATE = Path(__file__).parent / "templates" / "project"

# Package data leaves dot-files out, so they are stored under another name.
_RENAMED = {Path("gitignore"): Path(".gitignore")}
_LISTED = 5  # names an error shows before "and N more"


class ProjectExistsError(MixmeshError, FileExistsError):
    """The target directory is not empty, or already holds files of the project."""


def init_project(directory: Path, *, force: bool = False) -> t.List[Path]:
    """Create a project in ``directory`` (made if missing); return the files written.

    A non-empty ``directory`` is refused unless ``force``. Even with ``force``, if any of
    the project's files exists already, nothing is written and the error names them.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ProjectExistsError(f"{directory} exists and is not a directory")
    if not force and directory.exists() and any(directory.iterdir()):
        present = sorted(path.name for path in directory.iterdir())
        raise ProjectExistsError(
            f"{directory} is not empty (it holds {_names(present)}); to add the project's files "
            "to it anyway, use --force (force=True): existing files are never overwritten"
        )
    targets = {source: directory / _relative_target(source) for source in template_files()}
    from mixmesh.runtime.package_versions import LOCK_FILE

    written = [*targets.values(), directory / LOCK_FILE]
    existing = [str(target.relative_to(directory)) for target in written if _taken(target, directory)]
    if existing:
        raise ProjectExistsError(
            f"{directory} already holds {_names(existing)}; nothing was written: "
            "move those away or choose another directory"
        )
    for source, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return [*targets.values(), _lock(directory)]


def _lock(directory: Path) -> Path:
    """The lock file of the packages the template's code imports, at the installed versions:
    ``sqlmesh plan`` then warns when another environment runs the project with others."""
    from mixmesh.runtime.package_versions import distributions_of, imported_modules, write_lock

    sources = [path.read_text(encoding="utf-8") for path in template_files() if path.suffix == ".py"]
    return write_lock(directory, distributions_of(m for source in sources for m in imported_modules(source)))


def template_files() -> t.List[Path]:
    """The template's files, sorted, without Python caches."""
    return sorted(
        path
        for path in TEMPLATE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def _relative_target(source: Path) -> Path:
    relative = source.relative_to(TEMPLATE)
    return _RENAMED.get(relative, relative)


def _taken(target: Path, directory: Path) -> bool:
    """The file exists, or a file stands where one of its folders would be."""
    folders = [parent for parent in target.parents if parent != directory and directory in parent.parents]
    return target.exists() or any(folder.exists() and not folder.is_dir() for folder in folders)


def _names(names: t.Sequence[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
