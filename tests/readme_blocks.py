"""The fenced code blocks of README.md and docs/*.md, with the marker comment before each.

A marker is an HTML comment on the line right before the fence, invisible once rendered:
``<!-- run: NAME -->`` says a test runs the block (blocks sharing a name run together, in the
order the document shows them); ``<!-- fragment: REASON -->`` says the block is not meant to
run on its own, and why. A fragment whose reason is ``excerpt of PATH`` quotes a file of the
repository, and is checked against it.
"""

from __future__ import annotations

import re
import shlex
import textwrap
import typing as t
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
# Languages whose blocks are code a reader pastes: each is run or marked a fragment.
EXECUTABLE = ("python", "sql", "yaml")
SHELL = ("sh", "bash", "shell", "console")

_OPENING = re.compile(r"^(?P<indent> *)```(?P<language>[\w-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>run|fragment):\s*(?P<value>.*?)\s*-->\s*$")
_STRAY_MARKER = re.compile(r"<!--\s*(run|fragment)\b")
_EXCERPT = re.compile(r"^excerpt of (?P<path>\S+)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text (dedented), its marker if any."""

    document: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    marker: t.Optional[t.Tuple[str, str]]

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    @property
    def run_name(self) -> t.Optional[str]:
        return self.marker[1] if self.marker and self.marker[0] == "run" else None

    @property
    def excerpt_of(self) -> t.Optional[Path]:
        if self.marker and self.marker[0] == "fragment":
            found = _EXCERPT.match(self.marker[1])
            return ROOT / found.group("path") if found else None
        return None


def blocks(documents: t.Iterable[Path] = DOCUMENTS) -> t.List[Block]:
    """Every fenced block of the documents, in order."""
    return [block for document in documents for block in _blocks_of(document)]


def _blocks_of(document: Path) -> t.Iterator[Block]:
    lines = document.read_text().splitlines()
    number = 0
    while number < len(lines):
        opening = _OPENING.match(lines[number])
        if not opening:
            number += 1
            continue
        indent = opening.group("indent")
        end = next(i for i in range(number + 1, len(lines)) if lines[i] == f"{indent}```")
        code = textwrap.dedent("\n".join(lines[number + 1 : end])) + "\n"
        marker = _MARKER.match(lines[number - 1]) if number else None
        yield Block(
            document,
            number + 1,
            opening.group("language").lower(),
            code,
            (marker.group("kind"), marker.group("value")) if marker else None,
        )
        number = end + 1


def stray_markers(documents: t.Iterable[Path] = DOCUMENTS) -> t.List[str]:
    """Markers that are not on the line right before a fence (they would mark nothing)."""
    stray = []
    for document in documents:
        lines = document.read_text().splitlines()
        for number, line in enumerate(lines):
            following = lines[number + 1] if number + 1 < len(lines) else ""
            if _STRAY_MARKER.search(line) and not (_MARKER.match(line) and _OPENING.match(following)):
                stray.append(f"{document.relative_to(ROOT)}:{number + 1}: {line.strip()}")
    return stray


def named(name: str, languages: t.Sequence[str]) -> t.List[str]:
    """The code of the blocks marked ``run: name``, checked to be of these languages, in order."""
    found = [block for block in blocks() if block.run_name == name]
    assert [block.language for block in found] == list(languages), (
        f"blocks marked 'run: {name}': {[(b.where, b.language) for b in found]}, expected languages {list(languages)}"
    )
    return [block.code for block in found]


def commands(block: Block) -> t.List[t.List[str]]:
    """The commands of a shell block, or the ``$ ``/``mixmesh`` lines of an output block, as
    argument lists: comments, redirections and pipes left out."""
    found = []
    for line in block.code.splitlines():
        line = line.strip()
        if block.language not in SHELL:
            if not line.startswith(("$ ", "mixmesh ")):
                continue
            line = line.removeprefix("$ ")
        words = shlex.split(line, comments=True)
        for word_index, word in enumerate(words):
            if word in (">", ">>", "|", "&&", ";"):
                words = words[:word_index]
                break
        if words:
            found.append(words)
    return found

