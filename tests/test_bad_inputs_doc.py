"""docs/bad-inputs.md, the catalogue of bad inputs: each section names the tests that pin its
entries, those files exist, and every entry is a row of two cells (the input, what happens)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "docs" / "bad-inputs.md"
HEADER = "| input | what happens / the error |"


def sections() -> dict:
    """Section title -> (the test files its Tests: line names, its entries)."""
    found: dict = {}
    title = None
    tests_line = None
    for line in CATALOGUE.read_text().splitlines():
        if line.startswith("## "):
            title = line[3:]
            found[title] = ([], [])
        elif title is not None and line.startswith("Tests:"):
            tests_line = title
            found[title][0].extend(re.findall(r"`(tests/[^`]+\.py)`", line))
        elif title is not None and tests_line == title and not found[title][1] and line.startswith("`tests/"):
            found[title][0].extend(re.findall(r"`(tests/[^`]+\.py)`", line))  # the Tests: line, wrapped
        elif title is not None and line.startswith("| ") and line != HEADER:
            found[title][1].append(line)
    return found


def cells(row: str) -> list:
    # A cell may hold "\|" (a pipe in code, escaped for the table).
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def test_every_section_names_test_files_that_exist() -> None:
    found = sections()
    assert found
    for title, (tests, entries) in found.items():
        assert tests, f"section {title!r} has no Tests: line"
        assert entries, f"section {title!r} has no entries"
        for test in tests:
            assert (ROOT / test).is_file(), f"section {title!r} names {test}, which does not exist"


def test_every_entry_is_an_input_and_what_happens() -> None:
    entries = [row for _, rows in sections().values() for row in rows]
    for row in entries:
        parts = cells(row)
        assert len(parts) == 2 and all(parts), row
    assert len(entries) >= 95, f"the catalogue holds {len(entries)} entries; the issue asks for at least 90"
