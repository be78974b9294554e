"""`mixmesh demo DIR`: the example project copied into a new directory, reused, or refused (no engine runs here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mixmesh.cli import main
from mixmesh.cli.demo import DemoError, prepare_project
from mixmesh.cli.demo_project import CHECKOUT, GENERATED, copy_example, example_source, is_example

REPOSITORY = Path(__file__).resolve().parents[1]
EXAMPLE = REPOSITORY / "examples" / "customer_analytics"


def tracked_example_files() -> list:
    """The example's files as the repository holds them (git's list, not a copy of our filter)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "examples/customer_analytics"],
        cwd=REPOSITORY, capture_output=True, text=True, check=True,
    ).stdout.split()
    return sorted(str(Path(name).relative_to("examples/customer_analytics")) for name in listed)


def test_a_checkout_copies_its_own_examples_directory() -> None:
    assert CHECKOUT == EXAMPLE and example_source() == EXAMPLE


def test_a_new_directory_gets_the_example_project_and_nothing_a_run_left(tmp_path: Path) -> None:
    source = tmp_path / "source"
    copy_example(EXAMPLE, source)
    # What building the project leaves behind, planted in the source.
    left_behind = ["demo.duckdb", "demo.duckdb.wal", "artifacts/ltv_model.joblib", "artifacts/SHA256SUMS",
                   ".cache/model_definition_cache", "logs/sqlmesh.log", ".mixmesh/metrics.duckdb",
                   "python/__pycache__/training.cpython-311.pyc"]  # fmt: skip
    for name in left_behind:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(b"left by a run")
    target = tmp_path / "new" / "demo"
    copied = copy_example(source, target)
    assert sorted(str(path.relative_to(target)) for path in copied) == tracked_example_files()
    assert is_example(target)
    assert (target / "config.yaml").read_bytes() == (EXAMPLE / "config.yaml").read_bytes()
    assert {"artifacts", "*.duckdb", ".mixmesh", "__pycache__"} <= set(GENERATED)


def test_an_empty_directory_is_filled_and_one_holding_the_example_is_left_as_it_is(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    target.mkdir()
    assert prepare_project(target) == target and is_example(target)
    config = target / "config.yaml"
    config.write_text(config.read_text() + "# edited by the user\n")
    (target / "demo.duckdb").write_bytes(b"an earlier run's")
    assert prepare_project(target) == target  # built again where it is: nothing copied over it
    assert config.read_text().endswith("# edited by the user\n")
    assert (target / "demo.duckdb").read_bytes() == b"an earlier run's"


def test_a_directory_holding_something_else_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DemoError, match=r"is not empty and does not hold the example project.*nothing was written"):
        prepare_project(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(DemoError, match="exists and is not a directory"):
        prepare_project(tmp_path / "notes.txt")


def test_the_command_names_the_way_out_when_there_is_no_example_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not a checkout: no examples/customer_analytics here
    result = CliRunner().invoke(main, ["demo", "--customers", "10"])
    assert result.exit_code == 1
    assert "examples/customer_analytics is not the example project" in result.output
    assert "`mixmesh demo DIR` copies the example project into DIR" in result.output
    result = CliRunner().invoke(main, ["demo", str(tmp_path / "a"), "--project", str(tmp_path / "b")])
    assert result.exit_code == 2 and "not both" in result.output
    assert list(tmp_path.iterdir()) == []
