"""Session-wide hooks: the fault tests' report (`make reliability`, see
``tests/integration/reliability.py``), printed by the process that reports the run (the xdist
controller too: the figures travel as user properties)."""

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


def pytest_report_header(config: pytest.Config) -> str | None:
    scale = os.environ.get("STATIONWATCH_RELIABILITY_SCALE")
    return f"fault tests' full sizes scaled by {scale}" if scale else None
