"""The due index's containers: station ids and their slots in arrays, and heaps in arrays."""

from __future__ import annotations

import heapq
from array import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import slots as slots_module
from streams.slots import EMPTY, ID_WIDTH, StationSlots, heap_pop, heap_push

# ids as the contract spells them, a few long ones (wider than a record) and non-ASCII ones
IDS = st.one_of(
    st.from_regex(r"\A[A-Z]{2}-[0-9]{1,3}\Z"),
    st.text(alphabet="AB-驿\0", min_size=1, max_size=30),
)
OPERATIONS = st.lists(st.tuples(st.sampled_from(["add", "add", "remove"]), IDS), max_size=200)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_slots_answer_as_a_dict_of_ids_would(operations: list[tuple[str, str]]) -> None:
    check_against_a_dict(operations)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_slots_of_colliding_ids_answer_as_a_dict_would(operations: list[tuple[str, str]]) -> None:
    """Every id hashed to one of three places (all but a few in one long run of the table,
    wrapping round its end)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(slots_module, "hash", lambda s: -1 - len(s) % 3, raising=False)
        check_against_a_dict(operations)


def check_against_a_dict(operations: list[tuple[str, str]]) -> None:
    slots = StationSlots()
    model: dict[str, int] = {}
    freed: list[int] = []
    for op, station_id in operations:
        if op == "add" and station_id not in model:
            slot = slots.add(station_id)
            assert slot not in model.values()
            assert slot == (freed.pop() if freed else slots.capacity - 1)  # freed ones first
            model[station_id] = slot
        elif op == "remove":
            assert slots.remove(station_id) == model.get(station_id)
            if station_id in model:
                freed.append(model.pop(station_id))
        assert len(slots) == len(model)
        for known, slot in model.items():
            assert slots.get(known) == slot
            assert slots.station_id(slot) == known
        assert slots.get(station_id) == model.get(station_id)
        assert sorted(p for p in slots._table if p != EMPTY) == sorted(model.values())


def test_many_stations_grow_the_table_and_removals_keep_the_rest_found() -> None:
    slots = StationSlots()
    ids = [f"SY-{n:06d}" for n in range(5000)]
    assert [slots.add(s) for s in ids] == list(range(5000))
    for station_id in ids[::3]:
        slots.remove(station_id)
    for n, station_id in enumerate(ids):
        assert slots.get(station_id) == (None if n % 3 == 0 else n)
    assert len(slots) == 5000 - len(ids[::3])


def test_an_id_longer_than_a_record_widens_every_record() -> None:
    slots = StationSlots()
    short, long = "SY-1", "X" * (ID_WIDTH + 5)
    assert (slots.add(short), slots.add(long)) == (0, 1)
    assert (slots.station_id(0), slots.station_id(1)) == (short, long)
    assert (slots.get(short), slots.get(long)) == (0, 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(-(2**62), 2**62), st.none()), max_size=300))
def test_array_heaps_give_entries_in_the_order_heapq_gives(ops: list[Any]) -> None:
    """An int pushes it, None pops the smallest (when there is one)."""
    heap, model = array("q"), list[int]()
    for op in ops:
        if op is None:
            if model:
                assert heap_pop(heap) == heapq.heappop(model)
        else:
            heap_push(heap, op)
            heapq.heappush(model, op)
        assert len(heap) == len(model)
        assert (heap[0] if heap else None) == (model[0] if model else None)
