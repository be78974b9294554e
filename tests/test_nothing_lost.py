"""Nothing lost: a model killed in the middle of a backfill leaves no partial interval, and
a rerun completes it with no duplicate and no missing row."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.projects import Project

DAYS = 12

SLOW_DAILY = '''
import time
from pathlib import Path

from mixmesh import ModelKind, python_model

PROGRESS = str(Path(__file__).resolve().parent.parent / "progress.log")  # stored as text


@python_model(
    name="analytics.daily",
    kind={"name": ModelKind.INCREMENTAL, "batch_size": 1},
    cron="@daily",
    start="2024-01-01",
    end="2024-01-12",
    grain=["customer_id", "day"],
    columns={"customer_id": "INT", "day": "DATE", "total": "DOUBLE"},
)
def daily(context, **kwargs):
    rows = context.sql(
        "SELECT customer_id, day, SUM(amount) AS total FROM raw.events WHERE day BETWEEN :start AND :end GROUP BY ALL",
        start=context.start_date,
        end=context.end_date,
    ).batches(rows=2)
    for batch in rows:
        time.sleep(0.05)  # slow enough to be killed in the middle of an interval
        yield batch
    with open(PROGRESS, "a") as progress:
        progress.write(f"{context.start_date}\\n")
'''

EVENTS = """
MODEL (name raw.events, kind FULL);
SELECT (i % 5) + 1 AS customer_id, (DATE '2024-01-01' + (i % 12)::INT) AS day, (i % 7)::DOUBLE AS amount
FROM range(600) AS t(i)
"""


def sqlmesh(project: Project, *args: str) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("sqlmesh")), *args]
    return subprocess.Popen(command, cwd=project.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_sigkill_during_a_backfill_then_a_rerun_gives_exactly_the_expected_rows(project: Project) -> None:
    project.write("models/events.sql", EVENTS)
    project.write("models/daily.py", SLOW_DAILY)
    progress = project.root / "progress.log"
    end = f"2024-01-{DAYS:02d}"

    killed = sqlmesh(project, "plan", "--auto-apply", "--no-prompts")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not progress.exists() or len(progress.read_text().split()) < 3):
        assert killed.poll() is None, "the backfill ended before it could be killed"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    done_before_kill = len(progress.read_text().split())
    assert 3 <= done_before_kill < DAYS  # killed in the middle, after some intervals landed

    rerun = subprocess.run(
        [str(Path(sys.executable).with_name("sqlmesh")), "plan", "--auto-apply", "--no-prompts"],
        cwd=project.root, capture_output=True, text=True,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr

    expected = project.query(
        f"SELECT customer_id, day, SUM(amount) FROM raw.events WHERE day <= DATE '{end}' GROUP BY ALL ORDER BY 2, 1"
    )
    got = project.query(f"SELECT customer_id, day, total FROM analytics.daily WHERE day <= DATE '{end}' ORDER BY 2, 1")
    assert got == expected
    assert project.query("SELECT count(*) FROM (SELECT customer_id, day FROM analytics.daily GROUP BY ALL HAVING count(*) > 1)") == [(0,)]
    assert project.query("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'mixmesh_staging'") == [(0,)]
    assert sorted(set(progress.read_text().split())) == [f"2024-01-{d:02d}" for d in range(1, DAYS + 1)]


FAILING_WHILE_FLAGGED = SLOW_DAILY.replace(
    "    for batch in rows:",
    "    if str(context.start_date) == '2024-01-04' and Path(PROGRESS).with_name('outage').exists():\n"
    "        raise ConnectionError('the source is down today')\n"
    "    for batch in rows:",
)


@pytest.mark.slow
def test_a_failed_interval_is_not_marked_done_and_the_rerun_after_the_fix_completes_it(project: Project) -> None:
    project.write("models/events.sql", EVENTS)
    project.write("models/daily.py", FAILING_WHILE_FLAGGED)
    outage = project.root / "outage"
    outage.touch()
    failed = project.cli("plan", "--auto-apply", "--no-prompts", check=False)
    assert failed.returncode != 0 and "the source is down today" in " ".join(failed.stdout.split())
    progress = project.root / "progress.log"
    all_days = [f"2024-01-{d:02d}" for d in range(1, DAYS + 1)]
    assert sorted(progress.read_text().split()) == [day for day in all_days if day != "2024-01-04"]

    outage.unlink()  # the outage is over; the model's code is the same version
    project.cli("plan", "--auto-apply", "--no-prompts")
    days = progress.read_text().split()
    assert days[-1] == "2024-01-04" and sorted(days) == all_days  # only the failed interval ran again
    expected = project.query("SELECT customer_id, day, SUM(amount) FROM raw.events GROUP BY ALL ORDER BY 2, 1")
    assert project.query("SELECT customer_id, day, total FROM analytics.daily ORDER BY 2, 1") == expected
