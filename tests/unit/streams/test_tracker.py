"""What a worker keeps about its partitions: which station is due for a look when, each
partition's backlog clock, and where the default partitioner puts a station's key."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import tracker
from streams.tracker import DueIndex, Watermarks, partition_for

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def scheduled(*entries: tuple[str, int, datetime | None, str]) -> DueIndex:
    index = DueIndex()
    for station_id, partition, due, liveness in entries:
        index.schedule(station_id, partition, due, liveness)
    return index


# -- the due index ----------------------------------------------------------------------------
def test_due_stations_come_out_earliest_first_and_only_once() -> None:
    index = scheduled(
        ("C", 0, T0 + 3 * S, "online"),
        ("A", 0, T0 + 1 * S, "online"),
        ("B", 0, T0 + 2 * S, "stale"),
        ("X", 1, T0, "online"),  # another partition
    )
    assert index.next_due(0) == (T0 + S).timestamp()
    assert index.pop_due(0, T0 + 2 * S, limit=10) == ["A", "B"]  # due at or before
    assert index.pop_due(0, T0 + 2 * S, limit=10) == []
    assert index.next_due(0) == (T0 + 3 * S).timestamp()
    assert index.pop_due(0, T0 + 10 * S, limit=10) == ["C"]
    assert index.next_due(0) is None
    assert index.pop_due(1, T0, limit=10) == ["X"]


@pytest.mark.parametrize(
    ("limit", "batches"),
    [
        pytest.param(1, [["A"], ["B"], ["C"], []], id="one-at-a-time"),
        pytest.param(2, [["A", "B"], ["C"], []], id="two"),
        pytest.param(5, [["A", "B", "C"], []], id="all"),
    ],
)
def test_at_most_limit_stations_per_call(limit: int, batches: list[list[str]]) -> None:
    index = scheduled(
        ("A", 0, T0, "online"), ("B", 0, T0 + S, "online"), ("C", 0, T0 + 2 * S, "online")
    )
    assert [index.pop_due(0, T0 + 5 * S, limit) for _ in batches] == batches


def test_a_station_due_when_the_clock_is_known_is_due_at_any_time() -> None:
    index = scheduled(("A", 0, None, "unknown"))
    assert index.next_due(0) == 0.0
    assert index.pop_due(0, datetime(2000, 1, 1, tzinfo=UTC), limit=10) == ["A"]


@pytest.mark.parametrize(
    ("second", "due_at_first", "due_at_second"),
    [
        pytest.param(T0 + 10 * S, [], ["A"], id="later"),
        pytest.param(T0 - 10 * S, ["A"], [], id="earlier"),
        pytest.param(T0, ["A"], [], id="same-time"),
    ],
)
def test_a_rescheduled_station_is_due_only_at_its_new_time(
    second: datetime, due_at_first: list[str], due_at_second: list[str]
) -> None:
    index = scheduled(("A", 0, T0, "online"), ("A", 0, second, "stale"))
    assert index.next_due(0) == second.timestamp()
    assert index.pop_due(0, min(T0, second), limit=10) == due_at_first
    assert index.pop_due(0, max(T0, second) + S, limit=10) == due_at_second
    assert index.counts() == {"stale": 1}


def test_rescheduled_stations_leave_no_pile_of_old_entries() -> None:
    """A heartbeat every few seconds moves a station's due time each time, against a threshold
    of hours: the heap keeps about its live entries, and every station still comes out once,
    at its newest time."""
    stations = [f"S{i}" for i in range(500)]
    index = DueIndex()
    for beat in range(200):
        for n, station_id in enumerate(stations):
            index.schedule(station_id, 0, T0 + (3600 + beat + n / 1000) * S, "online")
    assert len(index.heaps[0]) <= 2 * len(stations) + 1024
    assert index.pop_due(0, T0 + 3600 * S + 198 * S, limit=10_000) == []
    found = index.pop_due(0, T0 + 4000 * S, limit=10_000)
    assert found == stations  # each once, in the order of its newest time
    assert index.next_due(0) is None


def test_compaction_keeps_the_stations_of_other_partitions_and_moved_ones_out() -> None:
    index = scheduled(("M", 0, T0, "online"), ("Y", 1, T0, "online"))
    index.schedule("M", 1, T0 + S, "online")  # its records now arrive on partition 1
    for beat in range(3000):  # enough to compact partition 0's heap
        index.schedule("Z", 0, T0 + (10 + beat) * S, "online")
    assert index.pop_due(0, T0 + 5000 * S, limit=10) == ["Z"]
    assert index.pop_due(1, T0 + 5000 * S, limit=10) == ["Y", "M"]


def test_rescheduling_to_the_same_time_adds_no_entry() -> None:
    index = scheduled(*(("A", 0, T0, "online") for _ in range(5)))
    assert len(index.heaps[0]) == 1
    assert index.pop_due(0, T0, limit=10) == ["A"]


def test_a_station_moving_partitions_is_due_only_on_its_new_one() -> None:
    index = scheduled(("A", 0, T0, "online"), ("A", 3, T0 + S, "online"))
    assert index.next_due(0) is None
    assert index.pop_due(0, T0 + 10 * S, limit=10) == []
    assert index.pop_due(3, T0 + 10 * S, limit=10) == ["A"]


@pytest.mark.parametrize("due", [None, T0], ids=["when-the-clock-is-known", "same-time"])
def test_a_station_moving_partitions_at_the_same_due_time_is_due_on_its_new_one(
    due: datetime | None,
) -> None:
    index = scheduled(("A", 0, due, "unknown"), ("A", 3, due, "unknown"))
    assert index.pop_due(0, T0 + S, limit=10) == []
    assert index.pop_due(3, T0 + S, limit=10) == ["A"]


def test_a_forgotten_station_is_never_due_and_not_counted() -> None:
    index = scheduled(("A", 0, T0, "online"), ("B", 0, T0 + S, "offline"))
    index.forget("A")
    index.forget("never-seen")
    assert index.next_due(0) == (T0 + S).timestamp()
    assert index.pop_due(0, T0 + 10 * S, limit=10) == ["B"]
    assert index.counts() == {"offline": 1}


def test_a_popped_station_is_still_counted_until_forgotten() -> None:
    index = scheduled(("A", 0, T0, "online"))
    assert index.pop_due(0, T0, limit=10) == ["A"]
    assert index.counts() == {"online": 1}
    index.schedule("A", 0, T0 + S, "stale")  # judged again: due once more
    assert index.pop_due(0, T0 + S, limit=10) == ["A"]


def test_counts_by_liveness() -> None:
    index = scheduled(
        ("A", 0, T0, "online"),
        ("B", 1, T0, "online"),
        ("C", 1, T0, "offline"),
        ("D", 2, None, "not_monitored"),
    )
    assert index.counts() == {"online": 2, "offline": 1, "not_monitored": 1}


def test_rebuild_makes_every_owned_station_due_now_and_keeps_known_liveness() -> None:
    index = scheduled(("A", 0, T0 + timedelta(hours=1), "offline"))
    assert not index.indexed
    assert index.rebuild([("A", 0, None, None), ("B", 1, None, None), ("C", 1, None, None)]) == 3
    assert index.indexed
    far = T0 - timedelta(days=1)
    assert index.pop_due(0, far, limit=10) == ["A"]
    assert sorted(index.pop_due(1, far, limit=10)) == ["B", "C"]
    assert index.counts() == {"offline": 1, "unknown": 2}


def test_rebuild_schedules_stations_at_their_stored_times() -> None:
    index = DueIndex()
    later = (T0 + timedelta(minutes=5)).timestamp()
    assert index.rebuild([("A", 0, later, "online"), ("B", 0, None, "offline")]) == 2
    assert index.pop_due(0, T0, limit=10) == ["B"]
    assert index.next_due(0) == later
    assert index.pop_due(0, T0 + timedelta(minutes=5), limit=10) == ["A"]
    assert index.counts() == {"online": 1, "offline": 1}


def test_reset_forgets_everything() -> None:
    index = scheduled(("A", 0, T0, "online"))
    index.rebuild([("A", 0, None, None)])
    index.reset()
    assert not index.indexed
    assert index.next_due(0) is None
    assert index.pop_due(0, T0 + S, limit=10) == []
    assert index.counts() == {}


def test_a_due_time_between_two_milliseconds_is_due_from_the_later_one() -> None:
    """Due times are kept in whole milliseconds, rounded up: a station is judged at most
    1 ms after it is due, never before."""
    due = T0 + timedelta(microseconds=400)
    index = scheduled(("A", 0, due, "online"))
    assert index.pop_due(0, due, limit=10) == []
    assert index.pop_due(0, T0 + timedelta(microseconds=999), limit=10) == []
    assert index.pop_due(0, T0 + timedelta(milliseconds=1), limit=10) == ["A"]


def test_the_slot_of_a_forgotten_station_serves_the_next_one() -> None:
    index = scheduled(("A", 0, T0, "online"))
    index.forget("A")
    index.schedule("B", 0, T0 + S, "stale")  # in A's slot; A's old entry is not B's
    assert index.pop_due(0, T0, limit=10) == []
    assert index.pop_due(0, T0 + S, limit=10) == ["B"]
    assert (index.partition("A"), index.due("A"), index.partition("B")) == (None, None, 0)
    assert index.counts() == {"stale": 1}


def test_more_stations_than_the_heap_entries_name_widens_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracker, "FIRST_SLOT_BITS", 2)  # 4 slots, then 8, then 16
    index = DueIndex()
    stations = [f"S{i:02d}" for i in range(13)]
    for n, station_id in enumerate(reversed(stations)):
        index.schedule(station_id, n % 2, T0 + (13 - n) * S, "online")
    assert index.pop_due(1, T0 + 3 * S, limit=20) == ["S01"]
    assert index.pop_due(0, T0 + 20 * S, limit=20) == stations[::2]
    assert index.pop_due(1, T0 + 20 * S, limit=20) == stations[3::2]
    assert index.counts() == {"online": 13}


def test_a_rebuild_of_more_stations_than_the_heap_entries_name_widens_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracker, "FIRST_SLOT_BITS", 2)
    index = scheduled(("A", 0, T0 + 30 * S, "offline"))
    stations = [f"S{i:02d}" for i in range(13)]
    owned = [
        (s, n % 2, (T0 + (n + 1) * S).timestamp() + 0.001, "online") for n, s in enumerate(stations)
    ]
    assert index.rebuild([*owned, ("A", 0, None, None)]) == 14
    assert index.pop_due(0, T0, limit=20) == ["A"]
    assert index.pop_due(0, T0 + 20 * S, limit=20) == stations[::2]
    assert index.pop_due(1, T0 + 20 * S, limit=20) == stations[1::2]
    assert index.counts() == {"online": 13, "offline": 1}


def test_stations_due_at_any_time_fit_the_widest_heap_entries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Entries of 23 slot bits (over 4 million stations), due at any time or in 2054."""
    monkeypatch.setattr(tracker, "FIRST_SLOT_BITS", 23)
    index = scheduled(
        ("A", 0, None, "online"), ("B", 0, datetime(2054, 1, 1, tzinfo=UTC), "online")
    )
    index.rebuild([("C", 0, None, None)])
    assert index.next_due(0) == 0.0
    assert index.pop_due(0, T0, limit=10) == ["A", "C"]
    assert index.pop_due(0, datetime(2054, 1, 1, tzinfo=UTC), limit=10) == ["B"]


@pytest.mark.parametrize("one_by_one", [0, 3, 1000])
def test_many_due_at_once_come_out_earliest_first_within_the_limit(
    monkeypatch: pytest.MonkeyPatch, one_by_one: int
) -> None:
    """Past ``POP_ONE_BY_ONE`` entries, the rest are taken off the heap sorted."""
    monkeypatch.setattr(tracker, "POP_ONE_BY_ONE", one_by_one)
    index = DueIndex()
    stations = [f"S{n:03d}" for n in range(300)]
    for n in reversed(range(300)):
        index.schedule(stations[n], 0, T0 + n * S, "online")
        if n % 3 == 0:  # rescheduled: an entry left behind
            index.schedule(stations[n], 0, T0 + (n + 0.5) * S, "online")
    index.schedule("later", 0, T0 + 1000 * S, "online")
    assert index.pop_due(0, T0 + 99.5 * S, limit=40) == stations[:40]
    assert index.pop_due(0, T0 + 99.5 * S, limit=1000) == stations[40:100]
    index.schedule("S000", 0, T0 + 150.2 * S, "stale")  # pushed onto what is left
    assert index.pop_due(0, T0 + 150.5 * S, limit=1000) == [*stations[100:150], "S000", "S150"]
    assert index.next_due(0) == (T0 + 151 * S).timestamp()
    assert index.pop_due(0, T0 + 2000 * S, limit=1000) == [*stations[151:], "later"]


# Operations on a few stations and partitions, due within a few milliseconds of each other:
# (op, station, partition, due in µs after T0 or None for "when the clock is known")
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["schedule", "schedule", "schedule", "forget", "pop", "rebuild"]),
        st.sampled_from("ABCDEFG"),
        st.integers(0, 2),
        st.one_of(
            st.none(), st.integers(-3, 12).map(lambda ms: ms * 1000), st.integers(-3000, 12000)
        ),
        st.sampled_from(["online", "stale", "offline"]),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_the_index_answers_as_a_plain_table_of_due_times_would(operations: list[Any]) -> None:
    """Against a model: station -> (partition, due, liveness), due times rounded up to the
    millisecond, due stations taken earliest first."""
    index = DueIndex()
    model: dict[str, tuple[int, float | None]] = {}  # station -> partition, due (None: taken)
    known: dict[str, str] = {}  # station -> liveness
    for op, station_id, partition, due_us, liveness in operations:
        at = T0 + timedelta(microseconds=due_us) if due_us is not None else None
        # as the index keeps it: the next whole millisecond (0.0: when the clock is known)
        kept = (T0 + timedelta(milliseconds=math.ceil(due_us / 1000))).timestamp() if at else 0.0
        if op == "schedule":
            index.schedule(station_id, partition, at, liveness)
            model[station_id] = (partition, kept)
            known[station_id] = liveness
        elif op == "forget":
            index.forget(station_id)
            model.pop(station_id, None)
            known.pop(station_id, None)
        elif op == "rebuild":
            index.rebuild([(station_id, partition, at.timestamp() if at else None, None)])
            model[station_id] = (partition, kept)
            known.setdefault(station_id, "unknown")
        else:
            until = T0 + timedelta(microseconds=due_us or 0)
            bound = (T0 + timedelta(milliseconds=(due_us or 0) // 1000)).timestamp()
            due = [
                s for s, (p, when) in model.items()
                if p == partition and when is not None and when <= bound
            ]  # fmt: skip
            taken = index.pop_due(partition, until, limit=100)
            assert sorted(taken) == sorted(due)
            times = [model[s][1] or 0.0 for s in taken]
            assert times == sorted(times)
            for s in taken:
                model[s] = (partition, None)
        for p in range(3):
            waiting = [when for q, when in model.values() if q == p and when is not None]
            assert index.next_due(p) == (min(waiting) if waiting else None)
        assert index.counts() == Counter(known.values())
        for s in "ABCDEFG":
            assert index.partition(s) == (model[s][0] if s in model else None)
            assert index.due(s) == (model[s][1] if s in model else None)


# -- watermarks: the newest broker time processed per partition ----------------------------
@pytest.mark.parametrize(
    ("stamps", "expected"),
    [
        pytest.param([], None, id="nothing-yet"),
        pytest.param([100.0], 100.0, id="one"),
        pytest.param([100.0, 250.5, 200.0], 250.5, id="never-back"),
        pytest.param([None, 0.0], None, id="no-timestamp"),
        pytest.param([100.0, None], 100.0, id="no-timestamp-keeps-the-mark"),
    ],
)
def test_a_watermark_only_moves_forward(stamps: list[float | None], expected: float | None) -> None:
    marks = Watermarks()
    for stamp in stamps:
        marks.advance(2, stamp)
    assert marks.get(2) == (datetime.fromtimestamp(expected, UTC) if expected else None)
    assert marks.get(3) is None  # per partition


def test_a_watermark_is_an_aware_utc_time_kept_while_its_partition_is_held() -> None:
    marks = Watermarks()
    marks.advance(0, T0.timestamp())
    marks.advance(1, (T0 + S).timestamp())
    got = marks.get(0)
    assert got == T0
    assert got is not None
    assert got.tzinfo is UTC
    marks.keep({1, 2})
    assert (marks.get(0), marks.get(1), marks.get(2)) == (None, T0 + S, None)
    marks.keep(set())
    assert (marks.get(0), marks.get(1)) == (None, None)


# -- the default partitioner ------------------------------------------------------------------
# Kafka's own murmur2 test vectors (Java's signed results, UtilsTest.testMurmur2), as the
# partition Java's producer picks: (murmur2 & 0x7fffffff) % partitions.
@pytest.mark.parametrize(
    ("key", "java_murmur2"),
    [
        pytest.param("21", -973932308, id="21"),
        pytest.param("foobar", -790332482, id="foobar"),
        pytest.param("a-little-bit-long-string", -985981536, id="long"),
        pytest.param("a-little-bit-longer-string", -1486304829, id="longer"),
        pytest.param("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971, id="longest"),
        pytest.param("abc", 479470107, id="abc"),
    ],
)
@pytest.mark.parametrize("partitions", [1, 3, 8, 12, 1024])
def test_keys_go_where_the_java_client_puts_them(
    key: str, java_murmur2: int, partitions: int
) -> None:
    assert partition_for(key, partitions) == (java_murmur2 & 0x7FFFFFFF) % partitions


@pytest.mark.parametrize(
    ("station_id", "partitions", "partition"),
    [
        pytest.param("SY-0001", 8, 4, id="SY-0001/8"),
        pytest.param("SY-0001", 12, 0, id="SY-0001/12"),
        pytest.param("SY-0002", 3, 2, id="SY-0002/3"),
        pytest.param("SY-0002", 8, 3, id="SY-0002/8"),
        pytest.param("SY-0002", 12, 11, id="SY-0002/12"),
        pytest.param("CY-1", 8, 6, id="CY-1/8"),  # murmur2 above 2**31: the sign bit is dropped
        pytest.param("HD-ABC123", 12, 10, id="HD-ABC123/12"),
        pytest.param("BJ-0000", 8, 1, id="BJ-0000/8"),
        pytest.param("BJ-0000", 1, 0, id="one-partition"),
    ],
)
def test_station_partitions(station_id: str, partitions: int, partition: int) -> None:
    assert partition_for(station_id, partitions) == partition
