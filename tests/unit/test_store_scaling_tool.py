"""tools/store_scaling.py: the live table's store alone at two fleet sizes (tiny ones here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "store_scaling.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_each_size_is_measured_in_a_process_of_its_own() -> None:
    done = run("--stations", "300", "120", "--states", "500", "--cache-mib", "4")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["stations"] for line in lines] == [300, 120]
    for line in lines:
        assert line["states"] == 500
        assert line["cache_mib"] == 4
        assert line["cpu_us_per_state"] > 0
        assert line["calling_thread_us_per_state"] > 0
        assert line["table_readers_bytes"] >= 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--one", "0"], "must be positive"),
        (["--stations", "10", "-5"], "must be positive"),
        (["--cache-mib", "0"], "must be positive"),
        (["--states", "24"], "--states must be at least 25"),
        (["--callgrind"], "give it with --one"),
    ],
)
def test_bad_arguments_are_refused(args: list[str], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr
