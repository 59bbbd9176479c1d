"""Containers of the due index (:mod:`streams.tracker`) that hold no Python object per
station: the stations' ids and their slots (:class:`StationSlots`), and heaps of 64-bit
entries in arrays (:func:`heap_push`, :func:`heap_pop`).

A worker owns up to 150,000 stations. In a dict of id strings to slot numbers and heaps of
int objects, the index took 184 bytes per station (150,000 stations scheduled, then 300,000
reschedulings, by tracemalloc) in small objects (an id string of 64 bytes, a slot int of 32,
the dict's entry, heap entries of 32 and the lists' pointers to them), made while a backlog
was worked off, between that backlog's own short-lived objects: they kept the allocator's
pages partly used after it. Here it takes 67 bytes per station, in arrays.
"""

from __future__ import annotations

from array import array

ID_WIDTH = 17  # bytes: the longest id the contract allows (e.g. ABCD-0123456789AB)
MAX_ID_BYTES = 0xFFFF  # a record's length is kept in 16 bits
EMPTY = -1  # an unused place of the lookup table
MIN_TABLE = 8


class StationSlots:
    """Station ids and their slots (0, 1, 2, …; a slot freed serves the next station).

    The ids are kept in one buffer, a record of ``width`` bytes per slot (UTF-8, with its
    length beside it; an id longer than that widens every record), and found through a lookup
    table of slots (open addressing, linear probing, at most half full), with each slot's
    string hash kept beside its id."""

    def __init__(self) -> None:
        self._width = ID_WIDTH
        self._ids = bytearray()  # slot -> id, ``_width`` bytes
        self._lengths = array("H")  # slot -> length of its id (bytes)
        self._hashes = array("q")  # slot -> hash of its id
        self._table = array("i", [EMPTY]) * MIN_TABLE  # place -> slot (EMPTY: none)
        self._free: list[int] = []  # slots freed, to be taken again

    def __len__(self) -> int:
        """Ids held."""
        return len(self._hashes) - len(self._free)

    @property
    def capacity(self) -> int:
        """Slots in use or free (the next new slot is this one)."""
        return len(self._hashes)

    def get(self, station_id: str) -> int | None:
        """The station's slot, or None."""
        place = self._find(station_id, hash(station_id))
        return None if place is None else self._table[place]

    def add(self, station_id: str) -> int:
        """The slot of a station not held yet (a freed one, else the next)."""
        encoded = station_id.encode("utf-8")
        if len(encoded) > MAX_ID_BYTES:
            raise ValueError(f"a station id of {len(encoded)} bytes: at most {MAX_ID_BYTES}")
        if len(encoded) > self._width:
            self._widen(len(encoded))
        hashed = hash(station_id)
        if self._free:
            slot = self._free.pop()
            self._hashes[slot] = hashed
            self._lengths[slot] = len(encoded)
            start = slot * self._width
            self._ids[start : start + len(encoded)] = encoded
        else:
            slot = len(self._hashes)
            self._hashes.append(hashed)
            self._lengths.append(len(encoded))
            self._ids += encoded.ljust(self._width, b"\0")
        if 2 * len(self) > len(self._table):
            self._rehash(2 * len(self._table))
        else:
            self._insert(slot, hashed)
        return slot

    def remove(self, station_id: str) -> int | None:
        """Free the station's slot and return it (None: not held)."""
        place = self._find(station_id, hash(station_id))
        if place is None:
            return None
        slot = self._table[place]
        self._delete(place)
        self._lengths[slot] = 0
        self._free.append(slot)
        return slot

    def station_id(self, slot: int) -> str:
        """The id held in a slot in use."""
        start = slot * self._width
        return self._ids[start : start + self._lengths[slot]].decode("utf-8")

    def _find(self, station_id: str, hashed: int) -> int | None:
        table, hashes, mask = self._table, self._hashes, len(self._table) - 1
        place = hashed & mask
        while (slot := table[place]) != EMPTY:
            if hashes[slot] == hashed and self.station_id(slot) == station_id:
                return place
            place = (place + 1) & mask
        return None

    def _insert(self, slot: int, hashed: int) -> None:
        table, mask = self._table, len(self._table) - 1
        place = hashed & mask
        while table[place] != EMPTY:
            place = (place + 1) & mask
        table[place] = slot

    def _delete(self, place: int) -> None:
        """Empty a place, moving back the entries after it that would no longer be found
        (backward-shift deletion: no tombstones)."""
        table, hashes, mask = self._table, self._hashes, len(self._table) - 1
        hole, place = place, (place + 1) & mask
        while (slot := table[place]) != EMPTY:
            home = hashes[slot] & mask
            # the entry may fill the hole unless its home lies cyclically in (hole, place]
            if (place - home) & mask >= (place - hole) & mask:
                table[hole] = slot
                hole = place
            place = (place + 1) & mask
        table[hole] = EMPTY

    def _rehash(self, size: int) -> None:
        self._table = array("i", [EMPTY]) * size
        free = set(self._free)
        for slot, hashed in enumerate(self._hashes):
            if slot not in free:
                self._insert(slot, hashed)

    def _widen(self, width: int) -> None:
        """Make every id record ``width`` bytes long."""
        old, self._width = self._width, width
        ids = bytearray()
        for start in range(0, len(self._ids), old):
            ids.extend(self._ids[start : start + old].ljust(width, b"\0"))
        self._ids = ids


def heap_push(heap: array[int], entry: int) -> None:
    """Add an entry to a min-heap kept in an array (as :func:`heapq.heappush` on a list)."""
    heap.append(entry)
    place = len(heap) - 1
    while place:
        parent = (place - 1) >> 1
        above = heap[parent]
        if entry >= above:
            break
        heap[place] = above
        place = parent
    heap[place] = entry


def heap_pop(heap: array[int]) -> int:
    """Take the smallest entry of a non-empty min-heap kept in an array."""
    last = heap.pop()
    if not heap:
        return last
    top, end, place = heap[0], len(heap), 0
    child = 1
    while child < end:
        right = child + 1
        if right < end and heap[right] < heap[child]:
            child = right
        below = heap[child]
        if below >= last:
            break
        heap[place] = below
        place, child = child, 2 * child + 1
    heap[place] = last
    return top
