"""What a worker keeps in memory about the partitions it owns, to judge liveness on time:
which station is due for a look when (a heap per partition), each station's liveness (for the
gauges), and how far each partition's heartbeat stream has progressed (the backlog clock).

Rebuilt from the table after every rebalance; nothing here needs to survive a restart.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka.partitioner import murmur2

from streams.slots import StationSlots, heap_pop, heap_push


def partition_for(station_id: str, partitions: int) -> int:
    """The partition the default Kafka partitioner (murmur2, as in the Java client and
    aiokafka) gives a station's key. Only a first guess: a station is owned by the partition
    its records arrive on, whatever their producer's partitioner."""
    hashed: int = murmur2(station_id.encode("utf-8"))
    return (hashed & 0x7FFFFFFF) % partitions


COMPACT_SLACK = 2  # a heap is rebuilt once it holds this many times its live entries (+ 1,024)
# Due times are kept as whole milliseconds since 2020 (a due time is rounded up: a station is
# judged at most 1 ms after it, never before), so that a heap entry, its due time and its
# station's slot in one int, fits an array's 64-bit entry (until 2054, at up to 2**23 slots)
EPOCH_MS = 1_577_836_800_000
NOT_DUE = (1 << 63) - 1  # a slot's due time while its station is not scheduled
ANY_TIME = 0  # the due time of a station to judge as soon as its partition's clock is known
FIRST_SLOT_BITS = 20  # heap entries name up to 2**20 slots, then twice as many, …
FREE = 255  # a free slot's liveness code
# entries taken off a heap one at a time (each a few µs in Python) before the rest of those
# due is taken off it sorted
POP_ONE_BY_ONE = 256


def due_key(at: float) -> int:
    """An epoch time (seconds) as a due time of the index: milliseconds since ``EPOCH_MS``,
    rounded up; ``ANY_TIME`` for any time before (a station due at any time)."""
    return max(ANY_TIME, math.ceil(at * 1000) - EPOCH_MS)


def _seconds(key: int) -> float:
    """A due time of the index as an epoch time (seconds; 0.0: at any time)."""
    return 0.0 if key == ANY_TIME else (key + EPOCH_MS) / 1000


class DueIndex:
    """Per partition, the stations to evaluate and when (lazy-deletion heaps: a station
    rescheduled leaves its old entry behind, dropped when it comes to the top or when the
    heap is compacted; a heartbeat every few seconds against a threshold of hours would
    otherwise pile up an entry per heartbeat), and each station's partition and liveness.

    Without a Python object per station, for a worker owning 150,000 of them: a station has
    a slot (:class:`streams.slots.StationSlots`), and its due time, partition and liveness are
    entries of arrays at that slot; a heap is an array of ints (due time, then slot:
    ``key << bits | slot``)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every station (before indexing anew)."""
        self.heaps: dict[int, array[int]] = {}
        self.indexed = False
        self._slots = StationSlots()
        self._due = array("q")  # slot -> due key (NOT_DUE: not scheduled)
        self._partition = array("i")  # slot -> partition (-1: a free slot)
        self._liveness = bytearray()  # slot -> liveness code (FREE: a free slot)
        self._codes: dict[str, int] = {}  # liveness -> code
        self._names: list[str] = []  # code -> liveness
        self._bits = FIRST_SLOT_BITS
        # live entries per heap as of its last compaction (its size after)
        self._live: dict[int, int] = {}

    def schedule(
        self, station_id: str, partition: int, due: datetime | None, liveness: str
    ) -> None:
        """``due=None``: as soon as the partition's clock is known."""
        key = due_key(due.timestamp() if due is not None else 0.0)  # 0.0: due at any time
        slot = self._slot(station_id)
        moved = self._partition[slot] != partition
        self._partition[slot] = partition
        self._liveness[slot] = self._code(liveness)
        if self._due[slot] == key and not moved:
            return
        self._due[slot] = key
        heap = self.heaps.get(partition)
        if heap is None:
            heap = self.heaps[partition] = array("q")
        heap_push(heap, key << self._bits | slot)
        if len(heap) > COMPACT_SLACK * self._live.get(partition, 0) + 1024:
            self.compact(partition)

    def _slot(self, station_id: str) -> int:
        """The station's slot, taken if it has none."""
        slot = self._slots.get(station_id)
        if slot is not None:
            return slot
        slot = self._slots.add(station_id)
        if slot == len(self._due):
            if slot >> self._bits:
                self._widen()
            self._due.append(NOT_DUE)
            self._partition.append(-1)
            self._liveness.append(FREE)
        return slot

    def _widen(self) -> None:
        """Make room for twice as many slots in the heap entries (built again)."""
        self._bits += 1
        for partition in self.heaps:
            self.heaps[partition] = array("q")
        for slot, key in enumerate(self._due):
            if key != NOT_DUE:
                heap = self.heaps.setdefault(self._partition[slot], array("q"))
                heap.append(key << self._bits | slot)
        for partition in self.heaps:
            self.compact(partition)

    def _code(self, liveness: str) -> int:
        code = self._codes.get(liveness)
        if code is None:
            if len(self._names) == FREE:
                raise ValueError(f"{liveness!r}: more kinds of liveness than the index codes")
            code = self._codes[liveness] = len(self._names)
            self._names.append(liveness)
        return code

    def compact(self, partition: int) -> None:
        """Keep only the live entries of the partition's heap (its stations' current due
        times), sorted (a sorted array is a heap); the live count is taken again, so
        stations that left are not counted. Also after rebuilds with ``compact=False``."""
        heap = array("q", sorted(filter(self._live_on(partition), self.heaps.get(partition, ()))))
        self.heaps[partition] = heap
        self._live[partition] = len(heap)

    def _live_on(self, partition: int) -> Callable[[int], bool]:
        """Whether an entry is its station's current due time on ``partition`` (not one left
        behind by a rescheduling or a move)."""
        bits, mask = self._bits, (1 << self._bits) - 1
        due, partition_of = self._due, self._partition

        def live(entry: int) -> bool:
            slot = entry & mask
            return due[slot] == entry >> bits and partition_of[slot] == partition

        return live

    def forget(self, station_id: str) -> None:
        slot = self._slots.remove(station_id)
        if slot is None:
            return
        self._due[slot] = NOT_DUE
        self._partition[slot] = -1
        self._liveness[slot] = FREE

    def partition(self, station_id: str) -> int | None:
        """The partition the station is indexed on (None: not indexed here)."""
        slot = self._slots.get(station_id)
        return None if slot is None else self._partition[slot]

    def due(self, station_id: str) -> float | None:
        """When the station is due (epoch seconds, rounded up to the millisecond; None: not
        scheduled, or taken as due)."""
        slot = self._slots.get(station_id)
        if slot is None or self._due[slot] == NOT_DUE:
            return None
        return _seconds(self._due[slot])

    def next_due(self, partition: int) -> float | None:
        heap = self.heaps.get(partition)
        if not heap:
            return None
        live = self._live_on(partition)
        while heap:
            if live(heap[0]):
                return _seconds(heap[0] >> self._bits)
            heap_pop(heap)
        return None

    def pop_due(self, partition: int, until: datetime, limit: int) -> list[str]:
        """Stations on ``partition`` due at or before ``until`` (at most ``limit``), their
        due times rounded up to the millisecond (:func:`due_key`), earliest first."""
        heap = self.heaps.get(partition)
        if not heap:
            return []
        bound = max(ANY_TIME, math.floor(until.timestamp() * 1000) - EPOCH_MS)
        found: list[str] = []
        take = self._taker(partition, found)
        popped = 0
        while heap and len(found) < limit:
            if heap[0] >> self._bits > bound:
                break
            if popped == POP_ONE_BY_ONE:  # many due (a takeover, a restart): sorted at once
                self._pop_sorted(partition, bound, limit, take, found)
                break
            take(heap_pop(heap))
            popped += 1
        return found

    def _pop_sorted(
        self, partition: int, bound: int, limit: int, take: Callable[[int], None], found: list[str]
    ) -> None:
        """:meth:`pop_due`'s rest, from the heap sorted (in C; a sorted array is a heap): the
        entries due are its head, and what is left of it stays a heap."""
        heap = array("q", sorted(self.heaps[partition]))
        end = bisect.bisect_right(heap, bound << self._bits | (1 << self._bits) - 1)
        taken = 0
        while taken < end and len(found) < limit:
            take(heap[taken])
            taken += 1
        self.heaps[partition] = heap[taken:]

    def _taker(self, partition: int, found: list[str]) -> Callable[[int], None]:
        """What :meth:`pop_due` does with an entry taken off the partition's heap: a live one
        (:meth:`_live_on`) is no longer scheduled, and its station goes to ``found``."""
        live, mask, due = self._live_on(partition), (1 << self._bits) - 1, self._due
        station_id = self._slots.station_id

        def take(entry: int) -> None:
            if live(entry):
                slot = entry & mask
                due[slot] = NOT_DUE
                found.append(station_id(slot))

        return take

    def rebuild(
        self, owned: Iterable[tuple[str, int, float | None, str | None]], *, compact: bool = True
    ) -> int:
        """Schedule every owned station: ``(station id, partition, due, liveness)``, due in
        epoch seconds as stored with its state, or None for a look right away; liveness as
        stored, or None to keep what is known (else "unknown"). In bulk: each partition's
        heap is built once (a push per station took most of a restart's indexing).

        ``compact=False`` (a partition scheduled a part at a time): the entries are only
        added, the heap left unordered until :meth:`compact` (sorted, superseded entries
        dropped). Meanwhile :meth:`pop_due` takes an entry only when the heap's first is due:
        a station may be judged later than due until then, never earlier."""
        count = 0
        added: dict[int, list[tuple[int, int]]] = {}
        due_at, partition_of, liveness_of = self._due, self._partition, self._liveness
        unknown = self._code("unknown")
        for station_id, partition, due, liveness in owned:
            slot = self._slot(station_id)
            if liveness:
                liveness_of[slot] = self._code(liveness)
            elif liveness_of[slot] == FREE:
                liveness_of[slot] = unknown
            key = due_key(due or 0.0)
            partition_of[slot] = partition
            due_at[slot] = key
            entries = added.get(partition)
            if entries is None:
                entries = added[partition] = []
            entries.append((key, slot))
            count += 1
        bits = self._bits  # as widened while slots were taken
        for partition, entries in added.items():
            heap = self.heaps.setdefault(partition, array("q"))
            heap.extend(key << bits | slot for key, slot in entries)
            if compact:
                self.compact(partition)  # sorted, without entries the rebuild superseded
        self.indexed = True
        return count

    def counts(self) -> Counter[str]:
        found = Counter({name: self._liveness.count(code) for code, name in enumerate(self._names)})
        return +found  # without the zero counts


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
