"""Did any ratio of the benchmark report get much worse than in the last committed report?

Compares ``benchmarks/results/report.json`` (written by ``benchmarks/report.py``) with the
one committed at HEAD (``git show HEAD:benchmarks/results/report.json``), or with the file
given as ``--against``. A ratio is flagged when it got worse by more than 30% of its earlier
value, in its own direction: a ratio where higher is better (a speedup) is flagged below
0.7x its earlier value, one where lower is better (peak RSS, monitoring overhead) above
1.3x. Ratios not measured on either side are shown, never flagged.

It prints a table and exits 0 even when something is flagged: the machines are shared and
noisy, so this is a prompt to look, not a test. ``--strict`` exits 1 when anything is
flagged.

Run from the repository root::

    .venv/bin/python benchmarks/compare.py
    .venv/bin/python benchmarks/compare.py --against old_report.json --strict
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "benchmarks" / "results" / "report.json"
COMMITTED = "HEAD:benchmarks/results/report.json"
TOLERANCE = 0.30

Row = t.Mapping[str, t.Any]


def committed_report() -> t.Optional[t.Dict[str, t.Any]]:
    """The report at HEAD, or None when there is none (no git, or never committed)."""
    try:
        shown = subprocess.run(["git", "show", COMMITTED], cwd=ROOT, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return json.loads(shown.stdout) if shown.returncode == 0 else None


def worse_by(before: float, now: float, better: str) -> float:
    """How much worse ``now`` is than ``before``, as a fraction of ``before`` (negative:
    better)."""
    change = (now - before) / before
    return -change if better == "higher" else change


def compare_row(key: str, before: t.Optional[Row], now: t.Optional[Row]) -> t.Dict[str, t.Any]:
    name = (now or before or {}).get("name", key)
    was = before.get("value") if before else None
    is_ = now.get("value") if now else None
    if was is None or is_ is None:
        missing = "" if was is None and is_ is None else " before" if was is None else " now"
        return {"key": key, "name": name, "before": was, "now": is_, "worse_by": None, "flagged": False,
                "note": f"not measured{missing}"}
    better = (now or before)["better"]  # type: ignore[index]
    worse = worse_by(was, is_, better)
    flagged = worse > TOLERANCE
    return {"key": key, "name": name, "before": was, "now": is_, "worse_by": worse, "flagged": flagged,
            "note": f"WORSE by {worse:.0%} ({better} is better)" if flagged else ""}


def compare(before: t.Mapping[str, t.Any], now: t.Mapping[str, t.Any]) -> t.List[t.Dict[str, t.Any]]:
    earlier = {found["key"]: found for found in before.get("ratios", [])}
    current = {found["key"]: found for found in now.get("ratios", [])}
    keys = list(current) + [key for key in earlier if key not in current]
    return [compare_row(key, earlier.get(key), current.get(key)) for key in keys]


def show(value: t.Optional[float]) -> str:
    return "not measured" if value is None else f"{value:.3f}x"


def table(rows: t.Sequence[Row]) -> str:
    lines = ["| ratio | before | now | change | |", "|---|---|---|---|---|"]
    for found in rows:
        change = "" if found["worse_by"] is None else f"{found['now'] / found['before'] - 1:+.0%}"
        lines.append(f"| {found['name']} | {show(found['before'])} | {show(found['now'])} | {change} | {found['note']} |")
    return "\n".join(lines)


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--current", type=Path, default=REPORT, help="the new report (default benchmarks/results/report.json)")
    parser.add_argument("--against", type=Path, help="the earlier report (default: the one committed at HEAD)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a ratio is flagged")
    return parser.parse_args(argv)


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not args.current.is_file():
        print(f"{args.current} not found: run benchmarks/report.py first")
        return 1 if args.strict else 0
    now = json.loads(args.current.read_text())
    before = json.loads(args.against.read_text()) if args.against else committed_report()
    if before is None:
        print(f"nothing to compare with: {COMMITTED} not found (commit a report, or pass --against)")
        return 0
    rows = compare(before, now)
    print(table(rows))
    flagged = [found["name"] for found in rows if found["flagged"]]
    print(f"\n{len(flagged)} ratio(s) worse by more than {TOLERANCE:.0%}" + (f": {', '.join(flagged)}" if flagged else ""))
    return 1 if flagged and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
