"""What a worker keeps in memory about the partitions it owns, to judge liveness on time:
which station is due for a look when (a heap per partition), each station's liveness (for the
gauges), and how far each partition's heartbeat stream has progressed (the backlog clock).

Rebuilt from the table after every rebalance; nothing here needs to survive a restart.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka.partitioner import murmur2


def partition_for(station_id: str, partitions: int) -> int:
    """The partition the default Kafka partitioner (murmur2, as in the Java client and
    aiokafka) gives a station's key. Only a first guess: a station is owned by the partition
    its records arrive on, whatever their producer's partitioner."""
    hashed: int = murmur2(station_id.encode("utf-8"))
    return (hashed & 0x7FFFFFFF) % partitions


COMPACT_SLACK = 2  # a heap is rebuilt once it holds this many times its live entries (+ 1,024)


@dataclass
class DueIndex:
    """Per partition, the stations to evaluate and when (lazy-deletion heaps: a station
    rescheduled leaves its old entry behind, dropped when it comes to the top or when the
    heap is compacted; a heartbeat every few seconds against a threshold of hours would
    otherwise pile up an entry per heartbeat)."""

    heaps: dict[int, list[tuple[float, str]]] = field(default_factory=dict)
    due_at: dict[str, float] = field(default_factory=dict)
    partition_of: dict[str, int] = field(default_factory=dict)
    liveness: dict[str, str] = field(default_factory=dict)
    indexed: bool = False
    # live entries per heap as of its last compaction (its size after)
    _live: dict[int, int] = field(default_factory=dict, repr=False)

    def schedule(
        self, station_id: str, partition: int, due: datetime | None, liveness: str
    ) -> None:
        """``due=None``: as soon as the partition's clock is known."""
        self._schedule_at(
            station_id, partition, due.timestamp() if due is not None else 0.0, liveness
        )

    def _schedule_at(self, station_id: str, partition: int, at: float, liveness: str) -> None:
        moved = self.partition_of.get(station_id) != partition
        self.partition_of[station_id] = partition
        self.liveness[station_id] = liveness
        if self.due_at.get(station_id) == at and not moved:
            return
        self.due_at[station_id] = at
        heap = self.heaps.setdefault(partition, [])
        heapq.heappush(heap, (at, station_id))
        if len(heap) > COMPACT_SLACK * self._live.get(partition, 0) + 1024:
            self._compact(partition)

    def _compact(self, partition: int) -> None:
        """Keep only the live entries of the partition's heap (its stations' current due
        times); the live count is taken again, so stations that left are not counted."""
        heap = [
            entry for entry in self.heaps.get(partition, []) if self._live_entry(entry, partition)
        ]
        heapq.heapify(heap)
        self.heaps[partition] = heap
        self._live[partition] = len(heap)

    def _live_entry(self, entry: tuple[float, str], partition: int) -> bool:
        """The entry is its station's current due time on ``partition`` (not one left behind
        by a rescheduling or a move)."""
        at, station_id = entry
        return self.due_at.get(station_id) == at and self.partition_of.get(station_id) == partition

    def forget(self, station_id: str) -> None:
        self.due_at.pop(station_id, None)
        self.partition_of.pop(station_id, None)
        self.liveness.pop(station_id, None)

    def next_due(self, partition: int) -> float | None:
        heap = self.heaps.get(partition)
        while heap:
            if self._live_entry(heap[0], partition):
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def pop_due(self, partition: int, until: datetime, limit: int) -> list[str]:
        """Stations on ``partition`` due at or before ``until`` (at most ``limit``)."""
        heap = self.heaps.get(partition)
        bound = until.timestamp()
        found: list[str] = []
        while heap and len(found) < limit:
            at, station_id = heap[0]
            if at > bound:
                break
            heapq.heappop(heap)
            if self._live_entry((at, station_id), partition):
                del self.due_at[station_id]
                found.append(station_id)
        return found

    def reset(self) -> None:
        self.heaps.clear()
        self._live.clear()
        self.due_at.clear()
        self.partition_of.clear()
        self.liveness.clear()
        self.indexed = False

    def rebuild(self, owned: Iterable[tuple[str, int, float | None, str | None]]) -> int:
        """Schedule every owned station: ``(station id, partition, due, liveness)``, due in
        epoch seconds as stored with its state, or None for a look right away; liveness as
        stored, or None to keep what is known (else "unknown"). In bulk: each partition's
        heap is built once (a push per station took most of a restart's indexing)."""
        count = 0
        added: dict[int, list[tuple[float, str]]] = {}
        due_at, partition_of, liveness_of = self.due_at, self.partition_of, self.liveness
        for station_id, partition, due, liveness in owned:
            at = due or 0.0
            liveness_of[station_id] = liveness or liveness_of.get(station_id, "unknown")
            partition_of[station_id] = partition
            due_at[station_id] = at
            entries = added.get(partition)
            if entries is None:
                entries = added[partition] = []
            entries.append((at, station_id))
            count += 1
        for partition, entries in added.items():
            self.heaps.setdefault(partition, []).extend(entries)
            self._compact(partition)  # heapified, without entries the rebuild superseded
        self.indexed = True
        return count

    def counts(self) -> Counter[str]:
        return Counter(self.liveness.values())


@dataclass
class Watermarks:
    """The newest broker timestamp processed per heartbeat partition."""

    marks: dict[int, float] = field(default_factory=dict)

    def advance(self, partition: int, timestamp_s: float | None) -> None:
        if timestamp_s and timestamp_s > self.marks.get(partition, 0.0):
            self.marks[partition] = timestamp_s

    def get(self, partition: int) -> datetime | None:
        mark = self.marks.get(partition)
        return datetime.fromtimestamp(mark, UTC) if mark else None

    def keep(self, partitions: set[int]) -> None:
        """Forget the partitions not in ``partitions`` (no longer held)."""
        self.marks = {p: mark for p, mark in self.marks.items() if p in partitions}
