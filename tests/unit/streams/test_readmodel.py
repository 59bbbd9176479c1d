"""The read model's ``nearest``: always the brute-force answer, whatever moved since the last
KD-tree build.

Stations lie in a ~50 km box around Shunyi (40.1, 116.6). The property test builds the tree,
then moves, removes, adds and relocates-to-the-same-place stations (pending since the build),
and checks ``nearest`` against a linear scan: haversine ≤ radius, accepted, sorted by
(distance, station id), first ``limit`` — the same ids in the same order with the same distances.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.query import Entry, haversine_m
from streams.readmodel import LiveIndex, build_tree
from streams.record import holding
from streams.state import StationState
from streams.state_codec import decode_state, encode_state
from tests import factories

LAT0, LON0 = 40.1, 116.6
LAT_SPAN, LON_SPAN = 0.225, 0.295  # ± half of ~50 km in each direction


def sid(n: int) -> str:
    return f"SY-{n:04d}"


@functools.lru_cache(maxsize=4096)  # shared, never mutated: keeps the property test fast
def state(station_id: str, lat: float | None, lon: float | None) -> dict[str, Any]:
    location = None if lat is None else {"lat": lat, "lon": lon}
    profile = factories.profile(station_id, location=location)
    return StationState(station_id=station_id, **holding(profile), liveness="online").to_json()


def accept_all(_: Entry) -> bool:
    return True


def every(modulus: int, remainder: int = 0) -> Callable[[Entry], bool]:
    """Accept stations whose number is ``remainder`` modulo ``modulus``."""

    def accept(entry: Entry) -> bool:
        return int(entry.station_id[-4:]) % modulus == remainder

    return accept


def brute_force(
    index: LiveIndex,
    lat: float,
    lon: float,
    radius_m: float,
    accept: Callable[[Entry], bool],
    limit: int,
) -> list[tuple[str, float]]:
    found = []
    for entry in index.entries.values():
        if entry.lat is None or entry.lon is None:
            continue
        distance = haversine_m(lat, lon, entry.lat, entry.lon)
        if distance <= radius_m and accept(entry):
            found.append((entry.station_id, distance))
    return sorted(found, key=lambda pair: (pair[1], pair[0]))[:limit]


def answer(
    index: LiveIndex,
    lat: float,
    lon: float,
    radius_m: float,
    accept: Callable[[Entry], bool] = accept_all,
    limit: int = 100,
) -> list[tuple[str, float]]:
    return [(e.station_id, d) for e, d in index.nearest(lat, lon, radius_m, accept, limit)]


# -- the property ---------------------------------------------------------------------------
#
# Hypothesis draws the shape of a case (how many stations, how clustered, how many changes of
# each kind, the query); a seeded RNG fills in the places. Drawing 100 coordinates one by one
# made each example ~10x slower and the interesting shapes (a tree deeper than one k-batch,
# many stations on one spot) rare.

# Spots shared by several stations (ties, broken by id); the query sometimes stands on one.
SPOTS = [(40.1, 116.6), (40.0801, 116.5842), (40.1, 116.6001)]


@dataclass(frozen=True)
class Shape:
    seed: int
    built: int  # stations in the tree
    on_spots: float  # the share of stations placed on a spot
    moved: int  # after the build: moved, possibly to a spot or to no location at all
    removed: int
    touched: int  # re-put at the same place (a heartbeat never moves a station)
    added: int  # pending
    query_on_spot: bool
    radius_m: float
    radius_on_station: bool  # radius exactly the distance to some station
    limit: int
    accept: str


ACCEPT: dict[str, Callable[[Entry], bool]] = {
    "all": accept_all,
    "even": every(2, 0),
    "odd": every(2, 1),
    "rare": every(10),  # the tree's nearest are mostly rejected
    "none": lambda _: False,
}

shapes = st.builds(
    Shape,
    seed=st.integers(0, 2**32 - 1),
    built=st.integers(0, 120),
    on_spots=st.sampled_from([0.0, 0.3, 0.9]),
    moved=st.integers(0, 40),
    removed=st.integers(0, 20),
    touched=st.integers(0, 10),
    added=st.integers(0, 20),
    query_on_spot=st.booleans(),
    radius_m=st.one_of(
        st.floats(1.0, 50_000.0, allow_nan=False), st.sampled_from([0.001, 3000.0, 50_000.0])
    ),
    radius_on_station=st.booleans(),
    limit=st.integers(1, 40),
    accept=st.sampled_from(list(ACCEPT)),
)


def place(rng: random.Random, on_spots: float) -> tuple[float, float]:
    if rng.random() < on_spots:
        return rng.choice(SPOTS)
    return (rng.uniform(-1, 1) * LAT_SPAN + LAT0, rng.uniform(-1, 1) * LON_SPAN + LON0)


@settings(max_examples=150, deadline=None)
@given(shapes)
def test_nearest_equals_brute_force(shape: Shape) -> None:
    rng = random.Random(shape.seed)
    numbers = rng.sample(range(2000), shape.built + shape.added)  # ids unrelated to order
    built, added = numbers[: shape.built], numbers[shape.built :]
    index = LiveIndex()
    for n in built:
        index.put(sid(n), 0, state(sid(n), *place(rng, shape.on_spots)))
    index.rebuild_tree()
    for n in rng.choices(built, k=shape.moved) if built else ():
        lat, lon = place(rng, shape.on_spots) if rng.random() < 0.9 else (None, None)
        index.put(sid(n), 0, state(sid(n), lat, lon))
    for n in added:
        index.put(sid(n), 0, state(sid(n), *place(rng, shape.on_spots)))
    for n in rng.choices(built, k=shape.touched) if built else ():
        entry = index.entries[sid(n)]
        index.put(sid(n), 0, state(sid(n), entry.lat, entry.lon))
    for n in rng.choices(numbers, k=shape.removed) if numbers else ():
        index.remove(sid(n))

    lat, lon = rng.choice(SPOTS) if shape.query_on_spot else place(rng, 0.0)
    radius = shape.radius_m
    located = [e for e in index.entries.values() if e.lat is not None and e.lon is not None]
    if shape.radius_on_station and located:
        on = rng.choice(located)
        assert on.lat is not None
        assert on.lon is not None
        radius = min(50_000.0, max(0.001, haversine_m(lat, lon, on.lat, on.lon)))
    accept, limit = ACCEPT[shape.accept], shape.limit

    expected = brute_force(index, lat, lon, radius, accept, limit)
    assert answer(index, lat, lon, radius, accept, limit) == expected

    index.rebuild_tree()
    assert not index.needs_rebuild
    assert answer(index, lat, lon, radius, accept, limit) == expected


# -- the cases one by one ---------------------------------------------------------------------


def test_empty_index_answers_nothing_before_and_after_a_build() -> None:
    index = LiveIndex()
    assert answer(index, LAT0, LON0, 50_000.0) == []
    index.rebuild_tree()
    assert answer(index, LAT0, LON0, 50_000.0) == []


def test_limit_larger_than_matches_returns_all_matches_nearest_first() -> None:
    index = LiveIndex()
    for n, dlat in enumerate([0.003, 0.001, 0.002]):
        index.put(sid(n), 0, state(sid(n), LAT0 + dlat, LON0))
    index.rebuild_tree()
    assert [s for s, _ in answer(index, LAT0, LON0, 1000.0, limit=100)] == [
        "SY-0001",
        "SY-0002",
        "SY-0000",
    ]


def test_stations_at_the_same_place_are_ordered_by_id() -> None:
    index = LiveIndex()
    for n in (7, 3, 5):
        index.put(sid(n), 0, state(sid(n), LAT0, LON0))
    index.rebuild_tree()
    assert answer(index, LAT0, LON0, 10.0) == [("SY-0003", 0.0), ("SY-0005", 0.0), ("SY-0007", 0.0)]


def test_station_moved_after_the_build_is_found_at_its_new_place_only() -> None:
    index = LiveIndex()
    index.put(sid(1), 0, state(sid(1), LAT0, LON0))
    index.rebuild_tree()
    index.put(sid(1), 0, state(sid(1), LAT0 + 0.1, LON0))  # ~11 km north
    assert index.needs_rebuild
    assert answer(index, LAT0, LON0, 1000.0) == []
    [(found, distance)] = answer(index, LAT0 + 0.1, LON0, 1000.0)
    assert (found, distance) == ("SY-0001", 0.0)


def test_station_that_lost_its_location_is_not_found() -> None:
    index = LiveIndex()
    index.put(sid(1), 0, state(sid(1), LAT0, LON0))
    index.rebuild_tree()
    index.put(sid(1), 0, state(sid(1), None, None))
    assert answer(index, LAT0, LON0, 1000.0) == []
    index.rebuild_tree()
    assert answer(index, LAT0, LON0, 1000.0) == []


@pytest.mark.parametrize("rebuilt", [False, True], ids=["pending", "rebuilt"])
def test_removed_station_is_never_returned(rebuilt: bool) -> None:
    index = LiveIndex()
    index.put(sid(1), 0, state(sid(1), LAT0, LON0))
    index.put(sid(2), 0, state(sid(2), LAT0, LON0 + 0.001))
    index.rebuild_tree()
    index.put(sid(3), 0, state(sid(3), LAT0, LON0))  # pending
    index.remove(sid(1))
    index.remove(sid(3))
    if rebuilt:
        index.rebuild_tree()
    assert [s for s, _ in answer(index, LAT0, LON0, 1000.0)] == ["SY-0002"]


def test_a_far_pending_station_does_not_hide_a_nearer_one_deep_in_the_tree() -> None:
    """Regression: the tree search stopped as soon as ``limit`` stations were found, counting a
    pending one 2 km away, before reaching the accepted tree station 1.5 km away behind 20
    rejected nearer ones."""
    index = LiveIndex()
    for n in range(20):  # odd ids, rejected, all within 1 km
        index.put(sid(2 * n + 1), 0, state(sid(2 * n + 1), LAT0 + 0.0004 * n, LON0))
    index.put(sid(100), 0, state(sid(100), LAT0 + 0.0135, LON0))  # ~1.5 km
    index.rebuild_tree()
    index.put(sid(200), 0, state(sid(200), LAT0 + 0.018, LON0))  # ~2 km, pending
    assert [s for s, _ in answer(index, LAT0, LON0, 3000.0, every(2, 0), 1)] == ["SY-0100"]


def test_rebuild_clears_pending_and_keeps_answers() -> None:
    index = LiveIndex()
    for n in range(30):
        index.put(sid(n), 0, state(sid(n), LAT0 + 0.001 * n, LON0 - 0.001 * n))
    index.rebuild_tree()
    for n in range(30, 40):
        index.put(sid(n), 0, state(sid(n), LAT0 - 0.001 * n, LON0))
    assert index.needs_rebuild
    before = answer(index, LAT0, LON0, 5000.0, every(2, 1), 7)
    index.rebuild_tree()
    assert not index.needs_rebuild
    assert answer(index, LAT0, LON0, 5000.0, every(2, 1), 7) == before
    assert len(before) == 7


def test_same_location_put_is_not_pending() -> None:
    index = LiveIndex()
    index.put(sid(1), 0, state(sid(1), LAT0, LON0))
    index.rebuild_tree()
    index.put(sid(1), 0, state(sid(1), LAT0, LON0))
    assert not index.needs_rebuild
    assert [s for s, _ in answer(index, LAT0, LON0, 1.0)] == ["SY-0001"]


def test_stations_placed_while_a_tree_is_built_are_found_before_and_after_it_lands() -> None:
    """The API server builds the tree in a thread from a snapshot; puts go on meanwhile."""
    index = LiveIndex()
    index.put(sid(1), 0, state(sid(1), LAT0, LON0))
    index.rebuild_tree()
    index.put(sid(2), 0, state(sid(2), LAT0 + 0.001, LON0))  # pending when the build starts
    generation, entries = index.snapshot()
    index.put(sid(3), 0, state(sid(3), LAT0 + 0.002, LON0))  # placed during the build
    index.put(sid(1), 0, state(sid(1), LAT0 + 0.1, LON0))  # moved ~11 km during the build
    during = [s for s, _ in answer(index, LAT0, LON0, 1000.0)]
    assert during == ["SY-0002", "SY-0003"]
    index.install(generation, build_tree(entries))
    assert [s for s, _ in answer(index, LAT0, LON0, 1000.0)] == during
    assert index.needs_rebuild  # SY-0003 and the moved SY-0001 are not in the new tree
    index.rebuild_tree()
    assert not index.needs_rebuild
    assert [s for s, _ in answer(index, LAT0, LON0, 1000.0)] == during
    assert [s for s, _ in answer(index, LAT0 + 0.1, LON0, 10.0)] == ["SY-0001"]


def test_a_tree_built_before_a_reset_is_thrown_away() -> None:
    index = LiveIndex()
    index.put(sid(1), 0, state(sid(1), LAT0, LON0))
    generation, entries = index.snapshot()
    index.reset()  # the partitions were reassigned while the tree was built
    index.put(sid(2), 0, state(sid(2), LAT0, LON0 + 0.001))
    index.install(generation, build_tree(entries))
    tree, ids, _ = index._built
    assert tree is None
    assert ids == []
    assert [s for s, _ in answer(index, LAT0, LON0, 1000.0)] == ["SY-0002"]


def test_a_state_put_as_stored_stays_compressed_and_reads_back_whole() -> None:
    """The API server keeps each state as the live table stores it (compressed, a sixth of its
    JSON), and decodes it again only for a station it returns."""
    whole = StationState(
        station_id=sid(1),
        **holding(factories.profile(sid(1))),
        liveness="online",
        occupants=3,
    )
    stored = encode_state(whole)
    index = LiveIndex()
    index.put_stored(sid(1), 2, stored)
    index.put(
        sid(2),
        2,
        StationState(station_id=sid(2), **holding(factories.profile(sid(2)))).to_json(),
    )
    entry = index.entries[sid(1)]
    assert entry.raw is stored
    assert len(stored) * 3 < len(orjson.dumps(whole.to_json()))
    assert decode_state(entry.state) == whole
    assert (entry.liveness, entry.occupants, entry.partition) == ("online", 3, 2)
    assert index.entries[sid(2)].state["station_id"] == sid(2)  # JSON as put, read as such
