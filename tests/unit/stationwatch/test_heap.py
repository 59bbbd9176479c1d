"""stationwatch.heap: free heap memory goes back to the operating system."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from stationwatch import heap

# In a process of its own: 60 MiB in objects the allocator takes from the heap (not from
# Python's small-object arenas), all freed but one allocated after them, which keeps the
# heap from shrinking by itself.
FREED_BUT_HELD = """
import sys
from stationwatch.heap import release_free_memory
def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
blocks = [bytes(600) for _ in range(100_000)]
pin = bytes(600)
del blocks
before = rss_mib()
released = release_free_memory()
print(released, before - rss_mib())
"""


@pytest.mark.skipif(heap._malloc_trim() is None, reason="glibc's malloc_trim only")
def test_freed_memory_goes_back_to_the_system() -> None:
    answer = subprocess.run(
        [sys.executable, "-c", FREED_BUT_HELD], capture_output=True, text=True, check=True
    )
    released, mib = answer.stdout.split()
    assert released == "True"
    assert float(mib) > 30


def test_without_malloc_trim_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    assert heap.release_free_memory() is False
    asyncio.run(asyncio.wait_for(heap.keep_released(0.01), 1))  # returns at once
