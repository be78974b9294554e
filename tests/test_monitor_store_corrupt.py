"""Issue 16, defect 7: a corrupt metrics store is not silent.

A run that cannot merge its figures into a broken store says so once on stderr, naming the
file and what to do, and keeps the figures in the spool; ``mixmesh stats`` and ``mixmesh
report`` move the broken file aside, rebuild the store from the spool and say what they did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner

from mixmesh.cli import main
from mixmesh.monitor.store import DEFAULT_PATH, MetricsStore, MetricsStoreError
from tests.metrics_data import function_run, model_run
from tests.projects import Project

CORRUPTIONS: t.Dict[str, t.Callable[[Path], None]] = {
    "emptied": lambda path: path.write_bytes(b""),
    "truncated": lambda path: os.truncate(path, path.stat().st_size // 2),
    "garbage": lambda path: path.write_bytes(b"not a database\n" * 2000),
}


def damage_a_block(path: Path) -> None:
    """A data block overwritten: the file opens, reading its rows fails."""
    with path.open("r+b") as file:
        file.seek(path.stat().st_size - 3 * 4096)
        file.write(os.urandom(4096))


def stored_then_broken(path: Path, how: t.Union[str, t.Callable[[Path], None]], *, runs: int = 400) -> MetricsStore:
    """A store holding ``runs`` merged evaluations, then broken as ``how`` says."""
    store = MetricsStore(path, background_merge=False)
    for _ in range(runs):
        run = model_run("a.merged")
        store.append([run], [function_run(run)])
    store.merge()
    (CORRUPTIONS[how] if isinstance(how, str) else how)(path)
    return store


def spool_one(path: Path, model: str = "a.spooled") -> None:
    """What a run does: spool its figures, merge at exit (capture._merge_quietly)."""
    store = MetricsStore(path, background_merge=False)
    run = model_run(model)
    assert store.append([run], [function_run(run)])
    try:
        store.merge(wait=1.0)
    except Exception:  # noqa: BLE001 - as the run does: the figures stay spooled
        pass


@pytest.mark.parametrize("how", ["emptied", "truncated", "garbage"])
def test_a_run_warns_once_on_stderr_naming_the_file_and_what_to_do(
    tmp_path: Path, how: str, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / ".mixmesh" / "metrics.duckdb"
    stored_then_broken(path, how)
    capfd.readouterr()
    spool_one(path)
    spool_one(path)  # a second evaluation of the same run
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if str(path) in line]
    assert len(lines) == 1, err
    assert "mixmesh stats" in lines[0] and "spool" in lines[0], lines[0]
    assert MetricsStore(path).pending() == 2  # nothing lost meanwhile


def moved_aside(path: Path) -> t.List[Path]:
    return [file for file in path.parent.glob(f"{path.name}.corrupt-*") if file.suffix != ".wal"]


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_stats_moves_the_broken_file_aside_and_rebuilds_from_the_spool(tmp_path: Path, how: str) -> None:
    (tmp_path / "config.yaml").write_text("model_defaults:\n  dialect: duckdb\n")  # the commands need a project
    path = tmp_path / DEFAULT_PATH
    stored_then_broken(path, how)
    broken = path.read_bytes()
    spool_one(path)
    spool_one(path)

    result = CliRunner().invoke(main, ["stats", "--json", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    aside = moved_aside(path)
    assert len(aside) == 1 and aside[0].read_bytes() == broken  # kept as it was, for whoever wants it
    told = " ".join(result.stderr.split())
    assert str(aside[0]) in told and "rebuilt" in told and "2 spooled" in told, told
    document = json.loads(result.stdout)
    assert [(m["model"], m["runs"]) for m in document["models"]] == [("a.spooled", 2)]
    # The rebuilt store is a sound one: the next read says nothing more.
    assert MetricsStore(path).pending() == 0 and len(MetricsStore(path).model_runs()) == 2
    again = CliRunner().invoke(main, ["stats", "--json", "--project", str(tmp_path)])
    assert again.exit_code == 0 and again.stderr == ""


def test_report_moves_the_broken_file_aside_and_rebuilds_from_the_spool(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("model_defaults:\n  dialect: duckdb\n")  # the commands need a project
    path = tmp_path / DEFAULT_PATH
    stored_then_broken(path, "garbage")
    spool_one(path, "a.after")
    out = tmp_path / "report.html"

    result = CliRunner().invoke(main, ["report", "--out", str(out), "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    told = " ".join(result.stderr.split())
    assert "moved it to" in told and "1 spooled" in told, told
    assert "a.after" in out.read_text()
    assert len(moved_aside(path)) == 1


def test_a_damaged_block_found_by_stats_is_moved_aside_with_its_wal(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("model_defaults:\n  dialect: duckdb\n")  # the commands need a project
    """The file opens and takes appends (so runs merge into it and cannot tell); reading its
    rows fails. The figures merged into it are then only in the moved file, as stats says."""
    path = tmp_path / DEFAULT_PATH
    stored_then_broken(path, damage_a_block)
    spool_one(path)  # merged into the damaged file, with no complaint

    result = CliRunner().invoke(main, ["stats", "--json", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    told = " ".join(result.stderr.split())
    assert "Corrupt database file" in told and "moved it to" in told and "only in the moved file" in told, told
    (aside,) = moved_aside(path)
    assert not path.with_name(path.name + ".wal").exists()  # the WAL went with it, not into the new file
    assert MetricsStore(path).model_runs().empty


def test_a_broken_warehouse_is_not_moved_and_the_error_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    store = MetricsStore(path, schema="mixmesh_metrics", background_merge=False)
    run = model_run()
    store.append([run], [function_run(run)])
    store.merge()
    CORRUPTIONS["garbage"](path)
    with pytest.raises(MetricsStoreError, match="not a readable DuckDB file.*does not move"):
        store.recover()
    assert path.exists() and list(tmp_path.glob("*.corrupt-*")) == []


@pytest.mark.slow
def test_sqlmesh_runs_on_a_broken_store_warn_once_and_stats_recovers_their_figures(project: Project) -> None:
    project.write("models/copy.py", '''
        from mixmesh import python_model


        @python_model(name="analytics.copy", columns={"i": "BIGINT"})
        def copy(context, **kwargs):
            return context.sql("SELECT range AS i FROM range(10)").to_arrow()
    ''')
    project.cli("plan", "--auto-apply", "--no-prompts")
    store = project.root / DEFAULT_PATH
    assert store.exists()
    CORRUPTIONS["truncated"](store)

    project.write("models/copy.py", (project.root / "models/copy.py").read_text().replace("range(10)", "range(20)"))
    result = project.cli("plan", "--auto-apply", "--no-prompts")
    assert project.query("SELECT count(*) FROM analytics.copy") == [(20,)]  # the run itself goes on
    warned = [line for line in result.stderr.splitlines() if str(store) in line]
    assert len(warned) == 1 and "mixmesh stats" in warned[0], result.stderr

    mixmesh = str(Path(sys.executable).with_name("mixmesh"))
    stats = subprocess.run([mixmesh, "stats", "--json"], cwd=project.root, capture_output=True, text=True)
    assert stats.returncode == 0, stats.stdout + stats.stderr
    told = " ".join(stats.stderr.split())
    assert told.startswith(f"metrics store {store} could not be read") and "1 spooled batch " in told, told
    assert [m["model"] for m in json.loads(stats.stdout)["models"]] == ["analytics.copy"]
