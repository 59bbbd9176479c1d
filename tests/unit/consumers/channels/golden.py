"""Golden files: the exact text a channel sends for the fixed notice.

A test compares against ``golden/<name>``; with ``STATIONWATCH_UPDATE_GOLDEN=1`` it writes the
file instead (review the diff before committing it)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("STATIONWATCH_UPDATE_GOLDEN") == "1"


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {name}: STATIONWATCH_UPDATE_GOLDEN=1 writes it"
    assert actual == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def check_golden_json(name: str, body: Any) -> None:
    check_golden(name, json.dumps(body, ensure_ascii=False, indent=2) + "\n")
