"""Write docs/reliability.md from the results of a real run of the fault scenarios.

Usage: ``python scripts/faults_table.py RESULTS_DIR OUTPUT.md`` (``make reliability`` runs
the table with ``RESPALDO_FAULTS_RESULTS=RESULTS_DIR`` and then this). Each scenario of
tests/faults wrote ``RESULTS_DIR/<name>.json``: its operation, fault, what respaldo is
expected to do, whether it passed and what was observed. Nothing here is written by hand:
a scenario that did not run is not in the table.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

INTRO = """\
# Reliability: the fault table

`make test-faults` runs a table of fault scenarios (tests/faults/scenarios.py) against a
real PostgreSQL cluster, real repositories (a directory, a tmpfs, S3 behind a
fault-injecting proxy) and the real CLI; `make test` runs them too. Each scenario plays one
fault on a fresh installation, then the operator's next run, and then one shared checker
(tests/faults/checks.py) asserts:

- (a) no completed backup lost: every backup completed before the fault is still in the
  repository and `verify --all` passes (restore scenarios also compare a real restore with
  the source database, table by table);
- (b) nothing left behind: no `respaldo_staging_*` database, nothing in respaldo's temporary
  directory (password files, spools), no `.tmp-*` object in a local repository, no
  half-written restore target;
- (c) no catalog record left `in_progress` or `pending`;
- (d) the catalog agrees with the repositories: completed records = manifests of the
  primary, completed copies = manifests of the second repository, and a catalog rebuilt from
  the repository lists the same backups;
- (e) every command that failed printed one `respaldo: error:` line and a `respaldo: hint:`
  line and no traceback; every failed record carries a one-line reason.

How faults strike, without sleeps: kill -9 and freezes come from an audit hook in the child
process (tests/faults/child.py) at the Nth `open` / `os.rename` / `os.remove` /
`subprocess.Popen` matching a pattern (a pack being written, a manifest, pg_restore
starting); storage faults from rules of the proxy (tests/servers/faultproxy.py: 500/503
answers, connection resets, stalls); PostgreSQL restarts (`pg_ctl restart -m fast`) strike
a child frozen mid-dump, or a pg_restore observed in `pg_stat_activity` waiting on a lock
the test holds; the full disk is a tmpfs of 6 MB; corruption flips one byte of an object.

This file is generated from a real run by `make reliability` (scripts/faults_table.py);
do not edit the table by hand.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _pythons(rows: list[dict[str, Any]]) -> str:
    """The Python(s) the scenarios ran on: a result is only as good as the platform."""
    return " and ".join(sorted({str(row.get("python") or "(not recorded)") for row in rows}))


def _seconds(rows: list[dict[str, Any]]) -> float:
    return sum(float(row.get("seconds") or 0) for row in rows)


def render(rows: list[dict[str, Any]], when: str) -> str:
    passed = sum(1 for row in rows if row["result"] == "pass")
    lines = [
        INTRO,
        f"## Results of the run of {when}",
        "",
        f"{passed} of {len(rows)} scenarios passed, run with Python {_pythons(rows)}; "
        f"{_seconds(rows):.1f} s of scenario time in all (2 workers in parallel).",
        "",
        "| scenario | operation | fault | what respaldo does (expected) | observed | result |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            f"`{row['name']}`",
            row["operation"],
            row["fault"],
            row["expected"],
            row["observed"],
            row["result"],
        ]
        lines.append("| " + " | ".join(_cell(str(c)) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write("usage: faults_table.py RESULTS_DIR OUTPUT.md\n")
        return 2
    results, output = Path(argv[1]), Path(argv[2])
    rows = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    if not rows:
        sys.stderr.write(f"no results in {results}: run the scenarios first\n")
        return 1
    rows.sort(key=lambda row: int(row.get("index", 0)))
    latest = max(str(row["at"]) for row in rows)
    when = datetime.fromisoformat(latest).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    output.write_text(render(rows, when))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
