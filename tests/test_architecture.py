"""The architecture holds (issue 17): layers with one direction of dependency, no import
cycles, declarations that never import SQLMesh, every SQLMesh internal mixmesh wraps in one
table that matches the installed SQLMesh, and modules small enough to read.

The layers are import-linter contracts in pyproject.toml (``lint-imports`` runs them in
``make test``); these tests also show that a violation fails them.
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import textwrap
import typing as t
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mixmesh"
LINE_LIMIT = 450


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"]
    env = {**os.environ, "PYTHONPATH": str(cwd / "src")}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)


def test_the_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(PACKAGE, copy / "src" / "mixmesh", ignore=shutil.ignore_patterns("__pycache__", "templates"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    with (copy / "src" / "mixmesh" / "core" / "sql_types.py").open("a") as module:
        module.write("\nfrom mixmesh.engines import duckdb as _upward  # a declaration importing an engine\n")
    result = lint_imports(copy)
    assert result.returncode != 0
    assert "mixmesh.core is not allowed to import mixmesh.engines" in result.stdout
    assert "mixmesh.core.sql_types -> mixmesh.engines.duckdb" in result.stdout


def test_no_module_imports_itself_through_others() -> None:
    import grimp

    graph = grimp.build_graph("mixmesh", exclude_type_checking_imports=True)
    modules = {m for m in graph.modules if ".templates" not in m}
    cycles = []
    for module in sorted(modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported in modules and imported != module:
                back = graph.find_shortest_chain(importer=imported, imported=module)
                if back:
                    cycles.append((module, *back))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_declaring_and_calling_a_function_imports_no_sqlmesh() -> None:
    script = textwrap.dedent(
        """
        import sys
        import pyarrow as pa
        from mixmesh import udf, Retry

        @udf(retry=Retry(attempts=2), on_error="null")
        def risk(details: list, total: float, n: int) -> float:
            return total / max(n, 1)

        @udf(vectorized=True)
        def doubled(x: pa.Array) -> pa.Array:
            return pa.compute.multiply(x, 2)

        assert risk([{"amount": 1.0}], 10.0, 4) == 2.5
        assert doubled(2.0) == 4.0
        loaded = sorted(m for m in sys.modules if m == "sqlmesh" or m.startswith("sqlmesh."))
        print(len(loaded), loaded[:5])
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 []"


def test_importing_sqlmesh_after_mixmesh_installs_mixmesh() -> None:
    script = "import mixmesh, sqlmesh, mixmesh.sqlmesh as m; print(m.installed())"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip() == "True", result.stderr


# --- the patch table ------------------------------------------------------------------------


def patches() -> t.List[t.Any]:
    from mixmesh.sqlmesh.patches import PATCHES

    return list(PATCHES)


def test_every_patched_attribute_exists_with_the_parameters_its_wrapper_expects() -> None:
    import mixmesh.sqlmesh.patches as table

    table.uninstall()
    try:
        for patch in patches():
            owner = patch.owner()
            original = getattr(owner, patch.attribute, None)
            assert original is not None, f"{patch.target} is not in the installed SQLMesh"
            parameters = list(inspect.signature(original).parameters)
            assert parameters[: len(patch.parameters)] == list(patch.parameters), (
                f"{patch.target}{inspect.signature(original)}: the wrapper expects {patch.parameters}"
            )
            for module_name in patch.also_in:
                module = sys.modules.get(module_name) or __import__(module_name, fromlist=["_"])
                assert getattr(module, patch.attribute) is original, f"{module_name}.{patch.attribute}"
            assert patch.why, patch.target
    finally:
        table.install()


def test_uninstall_restores_every_original_and_install_wraps_them_again() -> None:
    import mixmesh.sqlmesh.patches as table

    table.install()
    wrapped = {(id(p.owner()), p.attribute): getattr(p.owner(), p.attribute) for p in patches()}
    table.uninstall()
    try:
        for patch in patches():
            current = getattr(patch.owner(), patch.attribute)
            assert current is not wrapped[(id(patch.owner()), patch.attribute)], patch.target
            assert "mixmesh" not in (getattr(current, "__module__", "") or ""), f"{patch.target} still wrapped"
            for module_name in patch.also_in:
                assert getattr(sys.modules[module_name], patch.attribute) is current, module_name
    finally:
        table.install()
    for patch in patches():
        assert "mixmesh" in getattr(patch.owner(), patch.attribute).__code__.co_filename, patch.target


def test_the_table_lists_every_wrapper_mixmesh_installs() -> None:
    """Anything mixmesh wraps in SQLMesh outside the table would escape the checks above."""
    import sqlmesh.core.engine_adapter.base as base  # first: importing SQLMesh may install mixmesh

    import mixmesh.sqlmesh.patches as table

    table.uninstall()
    before = {name: value for name, value in vars(base.EngineAdapter).items()}
    table.install()
    changed = {name for name, value in vars(base.EngineAdapter).items() if before.get(name) is not value}
    assert changed == {p.attribute for p in patches() if p.target.startswith("sqlmesh.core.engine_adapter.base:")}


def test_an_untested_sqlmesh_version_warns_once_naming_the_tested_range(monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlmesh

    import mixmesh.sqlmesh.patches as table

    monkeypatch.setattr(sqlmesh, "__version__", "0.999.0")
    monkeypatch.setattr(table, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table.check_version()
        table.check_version()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1
    assert "tested with SQLMesh 0.236.x; SQLMesh 0.999.0 is installed" in messages[0]


def test_the_tested_range_is_the_one_pyproject_pins() -> None:
    import re

    import mixmesh.sqlmesh.patches as table

    pinned = re.search(r'"sqlmesh>=([0-9.]+),<([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned is not None
    low, high = pinned.groups()
    assert table.TESTED == (".".join(low.split(".")[:2]),) and high == table.TESTED[0].rsplit(".", 1)[0] + "." + str(
        int(table.TESTED[0].rsplit(".", 1)[1]) + 1
    )


# --- the tree ------------------------------------------------------------------------------


def test_no_module_is_over_the_line_limit_without_a_stated_reason() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "templates" in path.parts:
            continue
        text = path.read_text()
        if text.count("\n") > LINE_LIMIT and "Longer than 450 lines because" not in text.split('"""')[1]:
            long.append(f"{path.relative_to(PACKAGE)} ({text.count(chr(10))} lines)")
    assert not long, f"modules over {LINE_LIMIT} lines without a reason in their docstring: {long}"


def test_engines_mirror_each_other_file_by_file() -> None:
    stems = {
        engine: sorted(p.stem for p in (PACKAGE / "engines" / engine).glob("*.py"))
        for engine in ("duckdb", "spark")
    }
    shared = set(stems["duckdb"]) & set(stems["spark"])
    assert shared >= {"__init__", "functions", "sql_functions", "errors", "staging"}, stems


@pytest.mark.parametrize("name", ["duckdb", "spark"])
def test_each_engine_offers_the_protocol_and_what_its_capabilities_promise(name: str) -> None:
    from mixmesh import engines
    from mixmesh.engines import protocol

    engine = engines.engine(name)
    assert protocol.missing(engine) == []
    assert engine.NAME == name


def test_an_engine_claiming_a_capability_it_lacks_is_caught() -> None:
    import types

    from mixmesh.engines import duckdb, protocol

    partial = types.SimpleNamespace(**{k: getattr(duckdb, k) for k in protocol.REQUIRED})
    partial.FAST_PATH, partial.ENGINE_FRAMES, partial.OVERWRITES_PARTITIONS = True, False, False
    assert protocol.missing(partial) == list(protocol.CAPABILITIES["FAST_PATH"])
    assert "faster_statement" in protocol.missing(partial)


def test_installing_before_sqlmesh_is_imported_finishes() -> None:
    """``mixmesh.sqlmesh.install()`` imports SQLMesh, whose import installs mixmesh again."""
    script = "import mixmesh.sqlmesh as m; m.install(); import sqlmesh; print(m.installed())"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "True", result.stderr
