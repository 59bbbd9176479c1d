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


# In a process of its own: a block of 1 MiB freed (glibc then takes blocks of that size from
# the heap), then 40 more, each followed by a small one that stays when they are freed.
LARGE_BLOCKS_FREED = """
import sys
from stationwatch.heap import map_large_blocks
def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
mapped = map_large_blocks() if sys.argv[1] == "mapped" else False
first = bytearray(2**20)
del first
blocks, kept = [], []
for _ in range(40):
    blocks.append(bytearray(2**20))
    kept.append(bytes(600))
before = rss_mib()
del blocks
print(mapped, before - rss_mib())
"""


@pytest.mark.skipif(heap._mallopt() is None, reason="glibc's mallopt only")
@pytest.mark.parametrize(("how", "returned"), [("mapped", True), ("default", False)])
def test_large_blocks_go_back_to_the_system_when_freed(how: str, returned: bool) -> None:
    answer = subprocess.run(
        [sys.executable, "-c", LARGE_BLOCKS_FREED, how], capture_output=True, text=True, check=True
    )
    mapped, mib = answer.stdout.split()
    assert mapped == str(returned)
    assert (float(mib) > 30) is returned  # the default: held by the heap until a trim


def test_without_malloc_trim_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    monkeypatch.setattr(heap, "_mallopt", lambda: None)
    assert heap.release_free_memory() is False
    assert heap.map_large_blocks() is False
    asyncio.run(asyncio.wait_for(heap.keep_released(0.01), 1))  # returns at once


def test_under_jemalloc_glibcs_trimming_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "jemalloc_loaded", lambda: True)
    heap._malloc_trim.cache_clear()
    heap._mallopt.cache_clear()
    try:
        assert heap.release_free_memory() is False
        assert heap.map_large_blocks() is False
    finally:
        heap._malloc_trim.cache_clear()
        heap._mallopt.cache_clear()
