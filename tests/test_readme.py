"""The README says what is true: its code blocks parse (and the complete ones run), and the
counts and names it states about the commands and the example project match them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
EXAMPLE = ROOT / "examples" / "customer_analytics"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _blocks(language: str):
    for path in DOCS:
        for found in FENCE.finditer(path.read_text()):
            if found.group(1) == language:
                yield pytest.param(found.group(2), id=f"{path.name}:{path.read_text()[: found.start()].count(chr(10)) + 1}")


@pytest.mark.parametrize("code", list(_blocks("python")))
def test_every_python_block_parses(code: str) -> None:
    ast.parse(code)


@pytest.mark.parametrize("code", list(_blocks("yaml")))
def test_every_yaml_block_parses(code: str) -> None:
    YAML(typ="safe").load(code)


def test_the_count_example_runs_and_counts() -> None:
    from mixmesh.resilience import events, reset_events

    code = next(block.values[0] for block in _blocks("python") if 'count("amount_mismatches"' in block.values[0])
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    reset_events()
    assert namespace["checked_total"]([1.0, None, 2.0], 3.0) == 3.0
    assert namespace["checked_total"]([1.0, 2.0], 4.0) == 3.0
    assert [n for key, n in events().items() if key[2] == "finding:amount_mismatches"] == [1]


def test_the_commands_the_readme_lists_are_the_cli_s() -> None:
    from mixmesh.cli.main import main as cli

    listed = re.search(r"`mixmesh --help` lists the commands \(([^)]*)\)", README).group(1)
    assert sorted(re.findall(r"`(\w+)`", listed)) == sorted(cli.commands)


def _yaml_tests() -> int:
    return sum(len(YAML(typ="safe").load(path.read_text())) for path in (EXAMPLE / "tests").glob("test_*.yaml"))


def test_the_yaml_test_counts_the_readme_states() -> None:
    words = {"seven": 7, "eight": 8, "nine": 9, "ten": 10}
    stated = [int(n) for n in re.findall(r"SQLMesh unit tests: (\d+)", README)]
    stated += [int(n) for n in re.findall(r"the (\d+) YAML tests", README)]
    stated += [words[w] for w in re.findall(r"The example project's (\w+) show the patterns", README)]
    assert len(stated) == 3 and set(stated) == {_yaml_tests()}


def test_every_file_of_the_example_s_layout_exists() -> None:
    section = README[README.index("## The seed document's example project"):README.index("### The three models")]
    layout = FENCE.search(section).group(2)
    folder = ""
    for line in layout.splitlines():
        name = line.split()[0]
        if line.startswith("  ") and not line.startswith("   "):
            path = EXAMPLE / folder / name
        else:
            folder = name if name.endswith("/") else ""
            path = EXAMPLE / name
        if name.startswith("artifacts/") or "*" in name:
            continue
        assert path.exists(), f"the README lists {path.relative_to(EXAMPLE)}, which does not exist"


@pytest.mark.slow
def test_what_the_readme_says_of_the_example_s_models_is_what_sqlmesh_reads() -> None:
    from sqlmesh import Context

    context = Context(paths=str(EXAMPLE))
    try:
        parents = sorted(p.split(".", 1)[1].replace('"', "") for p in context.get_model("analytics.customer_ltv_prediction").depends_on)
        personalization = context.get_model("analytics.real_time_personalization")
    finally:
        context.close()
    assert "so SQLMesh lists the model's parents as `raw.dim_customers` and `raw.raw_transactions`" in README
    assert parents == ["raw.dim_customers", "raw.raw_transactions"]
    source = (EXAMPLE / "models" / "analytics" / "real_time_personalization.sql").read_text()
    assert "@start_dtntz" in source and "@start_dtntz`/`@end_dtntz`, the interval's UTC times" in README
    assert "WHERE prev_event_time IS NOT NULL" not in personalization.query.sql()
    assert "the model aggregates every event of a session" in README
