"""Session-wide hooks: the longest test files first (:data:`LONGEST_FIRST`), and the fault
tests' report (`make reliability`, see ``tests/integration/reliability.py``), printed by the
process that reports the run (the xdist controller too: the figures travel as user
properties)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.reliability import COLUMNS, PROPERTY


def _figures(terminalreporter: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for outcome in ("passed", "failed", "xfailed", "xpassed", "error"):
        for test in terminalreporter.stats.get(outcome, []):
            if getattr(test, "when", None) != "call":
                continue
            recorded = [v for k, v in getattr(test, "user_properties", []) if k == PROPERTY]
            if recorded:
                rows.append({"test": test.nodeid, "outcome": outcome, **recorded[-1]})
    return sorted(rows, key=lambda row: str(row["test"]))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    rows = _figures(terminalreporter)
    if not rows:
        return
    out = Path(os.environ.get("STATIONWATCH_TEST_ARTIFACTS") or "test-artifacts")
    out.mkdir(parents=True, exist_ok=True)
    (out / "reliability.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    header = ("test", "outcome", *COLUMNS, "more")
    table = [header]
    for row in rows:
        name = str(row["test"]).rpartition("::")[2]
        more = ", ".join(
            f"{k}={_cell(v)}" for k, v in row.items() if k not in (*header, "test", "outcome")
        )
        table.append((name, row["outcome"], *(_cell(row.get(c)) for c in COLUMNS), more))
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    terminalreporter.section("fault tests: what they measured")
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        terminalreporter.write_line("  ".join([*cells, line[-1]]))
    terminalreporter.write_line(f"(also in {out / 'reliability.json'})")


# The test files that take longest, longest first (seconds of one `make test` on this 2-core
# machine, 2026-12-07: 113, 109, 83, 78, 74, 63, 59, 56, 55). `make test` runs files in three
# processes, each taking the next file in collection order when it is free (pytest-xdist's
# loadfile): started first, these no longer leave one process running a long file alone at the
# end, while the others have nothing left (see .ci/run's test budget).
LONGEST_FIRST = (
    "tests/integration/test_bench_quick.py",
    "tests/integration/test_liveness.py",
    "tests/integration/test_database_outage.py",
    "tests/integration/test_notifier.py",
    "tests/integration/test_security.py",
    "tests/integration/test_registry_lifecycle.py",
    "tests/integration/test_dev.py",
    "tests/integration/test_availability.py",
    "tests/integration/test_fault_notifier_kill.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: place for place, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))


def pytest_report_header(config: pytest.Config) -> str | None:
    scale = os.environ.get("STATIONWATCH_RELIABILITY_SCALE")
    return f"fault tests' full sizes scaled by {scale}" if scale else None
