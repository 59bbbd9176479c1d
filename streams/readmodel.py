"""The API server's read model of the stations its worker owns: entries for filtering and a
KD-tree over their locations for "nearest" queries.

Entries are updated as the worker's feed arrives; the tree is rebuilt in the background (in a
thread, from a snapshot of the entries) when locations changed — registry updates are rare,
heartbeats never move a station — and the few stations placed since the snapshot are checked
one by one, so a query never waits for a rebuild.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from streams.query import (
    Entry,
    chord_for,
    entry_from_json,
    entry_from_state,
    haversine_m,
    unit_vector,
)
from streams.state_codec import state_json

# (tree, station ids, (lat, lon) of each): tree point i is station ids[i] at coordinates[i]
Built = tuple[Any, list[str], list[tuple[float, float]]]


def build_tree(entries: list[Entry]) -> Built:
    """A KD-tree over the located entries' points on the unit sphere (pure: may run in a thread
    of its own; scipy builds the tree without holding the interpreter lock)."""
    ids: list[str] = []
    coords: list[tuple[float, float]] = []
    for entry in entries:
        if entry.lat is not None and entry.lon is not None:
            ids.append(entry.station_id)
            coords.append((entry.lat, entry.lon))
    if not coords:
        return (None, ids, coords)
    radians = np.radians(np.array(coords, dtype=float))
    lat, lon = radians[:, 0], radians[:, 1]
    points = np.column_stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)))
    return (cKDTree(points), ids, coords)


@dataclass
class LiveIndex:
    entries: dict[str, Entry] = field(default_factory=dict)
    ready: bool = False  # built for the current assignment
    # replaced as one when a build lands (builds run in a thread; queries on the event loop)
    _built: Built = (None, [], [])
    _pending: set[str] = field(default_factory=set)  # placed or moved since the last snapshot
    _building: set[str] = field(default_factory=set)  # pending when the build's snapshot was taken
    _generation: int = 0  # counts resets: a build of an older generation is thrown away

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self.entries.values()))

    def put(self, station_id: str, partition: int, state: dict[str, Any]) -> None:
        self._place(entry_from_state(station_id, partition, state))

    def put_stored(self, station_id: str, partition: int, stored: bytes) -> None:
        """A state as the live table stores it (compressed: :mod:`streams.state_codec`), kept
        so: a sixth of its JSON's size; decoded again only for a station that is returned."""
        self._place(entry_from_json(station_id, partition, state_json(stored), stored))

    def _place(self, entry: Entry) -> None:
        station_id = entry.station_id
        old = self.entries.get(station_id)
        self.entries[station_id] = entry
        if entry.lat is not None and (old is None or (old.lat, old.lon) != (entry.lat, entry.lon)):
            self._pending.add(station_id)

    def remove(self, station_id: str) -> None:
        self.entries.pop(station_id, None)
        self._pending.discard(station_id)

    def reset(self) -> None:
        self.entries.clear()
        self._pending.clear()
        self._building.clear()
        self._built = (None, [], [])
        self._generation += 1
        self.ready = False

    @property
    def needs_rebuild(self) -> bool:
        return bool(self._pending)

    def snapshot(self) -> tuple[int, list[Entry]]:
        """Start a build: the entries as they are now. Until :meth:`install`, the stations
        pending so far are still checked one by one."""
        self._building |= self._pending
        self._pending = set()
        return self._generation, list(self.entries.values())

    def install(self, generation: int, built: Built) -> None:
        if generation != self._generation:
            return  # reset meanwhile: built from stations no longer held
        self._built = built
        self._building = set()

    def rebuild_tree(self) -> None:
        generation, entries = self.snapshot()
        self.install(generation, build_tree(entries))

    def nearest(
        self,
        lat: float,
        lon: float,
        radius_m: float,
        accept: Callable[[Entry], bool],
        limit: int,
    ) -> list[tuple[Entry, float]]:
        """Accepted stations within ``radius_m`` of (lat, lon), nearest first, at most
        ``limit``, each with its great-circle distance in metres."""
        found: dict[str, tuple[Entry, float]] = {}

        def consider(station_id: str, at: tuple[float, float]) -> None:
            entry = self.entries.get(station_id)
            if entry is None or (entry.lat, entry.lon) != at or station_id in found:
                return  # gone, or moved (then it is pending and considered there)
            distance = haversine_m(lat, lon, at[0], at[1])
            if distance <= radius_m and accept(entry):
                found[station_id] = (entry, distance)

        for station_id in list(self._pending | self._building):
            entry = self.entries.get(station_id)
            if entry is not None and entry.lat is not None and entry.lon is not None:
                consider(station_id, (entry.lat, entry.lon))
        tree, tree_ids, tree_coords = self._built
        if tree is not None:
            point = unit_vector(lat, lon)
            bound = _widened(chord_for(radius_m))
            total = len(tree_ids)
            k = min(total, max(16, limit * 4))
            examined: set[int] = set()
            while True:
                distances, indexes = tree.query(point, k=k, distance_upper_bound=bound)
                distances, indexes = np.atleast_1d(distances), np.atleast_1d(indexes)
                within = indexes < total
                for index in indexes[within].tolist():
                    if index not in examined:  # ties may come back in another order
                        examined.add(index)
                        consider(tree_ids[index], tree_coords[index])
                if int(within.sum()) < k or k >= total:
                    break  # every tree point within the radius has been examined
                # The unexamined points are at least distances[-1] away. Stop only when `limit`
                # found stations (pending ones included) are strictly nearer than that: a
                # pending or equally distant tree station must not stand in for a nearer one.
                if len(found) >= limit:
                    nth = sorted(distance for _, distance in found.values())[limit - 1]
                    if _widened(chord_for(nth)) < distances[-1]:
                        break
                k = min(total, k * 4)
        ranked = sorted(found.values(), key=lambda pair: (pair[1], pair[0].station_id))
        return ranked[:limit]


def _widened(chord: float) -> float:
    """A chord a little longer, to cover rounding in the tree's Euclidean distances (absolute
    error ~1e-16 on the unit sphere, large relative to a chord of a few metres)."""
    return chord * (1 + 1e-9) + 1e-12
