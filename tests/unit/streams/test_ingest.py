"""One batch of input records through the ingest step: the rows the database gets, the dead
letters, the alerts and what becomes of each station's live state — and that a batch worked
through in parts (as the agent does, yielding between them) ends exactly as the whole."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from schemas.deadletter import RAW_LIMIT
from schemas.topics import HEARTBEAT, OCCUPANCY, REGISTRY, STATUS
from stationwatch.db.sink import (
    HEARTBEAT_COLUMNS,
    OCCUPANCY_COLUMNS,
    STATION_COLUMNS,
    STATUS_COLUMNS,
    Refused,
)
from stationwatch.metrics import WorkerMetrics
from streams.ingest import (
    IngestConfig,
    Misplaced,
    Outcome,
    Overlay,
    Record,
    StateWrite,
    Tick,
    process_records,
    refused_letters,
)
from streams.liveness import Clock, LivenessConfig
from streams.record import holding
from streams.state import StationState
from streams.state_codec import decode_state, stored_schedule
from streams.tracker import partition_for
from tests import factories

PARTITIONS = 8
PREFIX = "t1."
NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai, a Monday
S = timedelta(seconds=1)
MIN = timedelta(minutes=1)
SID = "SY-0001"
HOME = partition_for(SID, PARTITIONS)  # where murmur2 puts SY-0001: 4
AWAY = (HOME + 1) % PARTITIONS
# as streams.app.liveness_config(Settings()) builds it: the defaults
CONFIG = IngestConfig(
    topic_prefix=PREFIX,
    max_bytes=4096,
    max_skew=timedelta(seconds=300),
    liveness=LivenessConfig(),
    partitions=PARTITIONS,
)
CLOCKS: dict[int, Clock | None] = {p: Clock(judge=NOW, wall=NOW) for p in range(PARTITIONS)}
UNKNOWN_CLOCKS: dict[int, Clock | None] = {}
ALWAYS: dict[str, Any] = {"always_open": True, "weekly": {}, "holidays_open": True}


def record(
    topic: str,
    message: dict[str, Any] | None,
    *,
    station_id: str = SID,
    offset: int = 0,
    partition: int | None = None,
) -> Record:
    """A record as its producer would send it: keyed by the station, murmur2-partitioned."""
    return Record(
        topic=topic,
        partition=partition_for(station_id, PARTITIONS) if partition is None else partition,
        offset=offset,
        key=station_id.encode(),
        value=factories.dumps(message) if message is not None else None,
        ref=f"{topic}@{offset}",
    )


def beat(at: datetime, seq: int, *, sid: str = SID, **kw: Any) -> dict[str, Any]:
    return factories.heartbeat(sid, at, seq, **kw)


def count(at: datetime, occupants: int, *, sid: str = SID, **kw: Any) -> dict[str, Any]:
    return factories.occupancy(sid, at, occupants, **kw)


def status(at: datetime, state: str, *, sid: str = SID, **kw: Any) -> dict[str, Any]:
    return factories.status(sid, at, state, **kw)


def profile(updated_at: datetime, *, sid: str = SID, **kw: Any) -> dict[str, Any]:
    kw.setdefault("opening_hours", ALWAYS)
    return factories.profile(sid, updated_at=updated_at.isoformat(), **kw)


def run(
    records: Sequence[Record],
    table: dict[str, Any] | None = None,
    *,
    clocks: dict[int, Clock | None] = CLOCKS,
    config: IngestConfig = CONFIG,
    ticks: Sequence[Tick] = (),
    metrics: WorkerMetrics | None = None,
) -> Outcome:
    return process_records(
        records,
        table if table is not None else {},
        now=NOW,
        clocks=clocks,
        config=config,
        ticks=ticks,
        metrics=metrics,
    )


def state_of(write: StateWrite) -> StationState:
    assert write.value is not None
    return decode_state(write.value)


def stored(sid: str = SID, **fields: Any) -> dict[str, Any]:
    """A station the live table holds: registered, online, heard a minute ago, on the
    partition murmur2 gives it."""
    base = StationState(
        station_id=sid,
        **holding(profile(NOW - timedelta(days=3), sid=sid)),
        profile_updated_at=NOW - timedelta(days=3),
        liveness="online",
        liveness_since=NOW - timedelta(hours=2),
        last_heartbeat_at=NOW - MIN,
        last_seq=100,
        watch_since=NOW - timedelta(days=3),
        scheduled=True,
        scheduled_since=NOW - timedelta(days=3),
        expected_since=NOW - timedelta(days=3),
        updated_at=NOW - MIN,
        partition=partition_for(sid, PARTITIONS),
    )
    return msgspec.structs.replace(base, **fields).to_json()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


# -- one valid record of each input topic -----------------------------------------------------
@pytest.mark.parametrize(
    ("topic", "message", "table", "columns", "row", "folded"),
    [
        pytest.param(
            HEARTBEAT,
            beat(NOW - 10 * S, 7),
            "heartbeats",
            HEARTBEAT_COLUMNS,
            {
                "time": NOW - 10 * S,
                "station_id": SID,
                "seq": 7,
                "received_at": NOW,
                "device_id": f"gw-{SID}",
                "uptime_s": 1007,
                "battery_pct": 90.5,
                "on_mains": True,
                "temperature_c": 21.0,
                "firmware": "1.4.2",
                "interval_s": None,  # the station is not registered (yet)
            },
            {"last_heartbeat_at": NOW - 10 * S, "last_seq": 7, "device_id": f"gw-{SID}"},
            id="heartbeat",
        ),
        pytest.param(
            OCCUPANCY,
            count(NOW - 5 * S, 4, capacity=12, source="manual"),
            "occupancy",
            OCCUPANCY_COLUMNS,
            {
                "time": NOW - 5 * S,
                "station_id": SID,
                "occupants": 4,
                "capacity": 12,
                "source": "manual",
                "received_at": NOW,
            },
            {"occupants": 4, "capacity": 12, "occupancy_at": NOW - 5 * S},
            id="occupancy",
        ),
        pytest.param(
            STATUS,
            status(NOW - MIN, "closed", reason="maintenance", actor="staff"),
            "status_events",
            STATUS_COLUMNS,
            {
                "time": NOW - MIN,
                "station_id": SID,
                "state": "closed",
                "reason": "maintenance",
                "actor": "staff",
                "received_at": NOW,
            },
            {"open_state": "closed", "open_state_since": NOW - MIN, "open_reason": "maintenance"},
            id="status",
        ),
        pytest.param(
            REGISTRY,
            profile(NOW - timedelta(days=1), name="空港驿站", capacity=20),
            "stations",
            STATION_COLUMNS,
            {
                "station_id": SID,
                "name": "空港驿站",
                "street": "空港街道",
                "capacity": 20,
                "heartbeat_interval_s": 30,
                "lifecycle": "active",
                "updated_at": NOW - timedelta(days=1),
            },
            {"lifecycle": "active", "capacity": 20, "heartbeat_interval_s": 30},
            id="registry",
        ),
    ],
)
def test_a_valid_record_gives_its_row_and_folds_into_the_state(
    topic: str,
    message: dict[str, Any],
    table: str,
    columns: tuple[str, ...],
    row: dict[str, Any],
    folded: dict[str, Any],
) -> None:
    source = record(topic, message, offset=41)
    out = run([source])

    rows: list[Any] = (
        list(out.batch.stations.values()) if table == "stations" else getattr(out.batch, table)
    )
    assert len(rows) == 1
    # a station's first registry record also lands in its history, as "added"
    history = 1 if table == "stations" else 0
    assert len(out.batch.station_history) == history

    # a registered station is expected alive from its first sight (always open here)
    seen = [(NOW, SID, True, "first_seen")] if topic == REGISTRY else []
    assert out.batch.expected_changes == seen
    assert len(out.batch) == 1 + history + len(seen)
    got = dict(zip(columns, rows[0], strict=True))
    assert {name: got[name] for name in row} == row
    assert out.batch.origin(rows[0]) is source  # a refused row can be dead-lettered as it
    assert out.dead_letters == []
    assert list(out.state_writes) == [SID]
    write = out.state_writes[SID]
    assert (write.ref, write.partition, write.remove) == (source.ref, HOME, False)
    state = state_of(write)
    assert {name: getattr(state, name) for name in folded} == folded
    assert state.partition == HOME
    assert state.updated_at == NOW
    # a worker taking the partition over schedules it from the stored header alone
    assert write.value is not None
    schedule = stored_schedule(write.value, CONFIG.basis)
    assert schedule is not None
    assert schedule.due == (write.next_due.timestamp() if write.next_due else None)
    assert (schedule.partition, schedule.liveness) == (HOME, state.liveness)


def test_a_registry_record_stored_as_a_row_keeps_the_whole_profile() -> None:
    message = profile(NOW - timedelta(days=1), services=["water", "wifi"])
    out = run([record(REGISTRY, message)])
    row = dict(zip(STATION_COLUMNS, out.batch.stations[SID] or (), strict=True))
    assert json.loads(row["profile"])["services"] == ["water", "wifi"]
    assert row["services"] == ["water", "wifi"]
    assert json.loads(row["opening_hours"]) == ALWAYS


def test_a_heartbeat_row_carries_the_interval_the_station_is_registered_with() -> None:
    out = run(
        [
            record(REGISTRY, profile(NOW - timedelta(days=1), heartbeat_interval_s=60)),
            record(HEARTBEAT, beat(NOW - 10 * S, 1), offset=1),
        ]
    )
    (row,) = out.batch.heartbeats
    assert dict(zip(HEARTBEAT_COLUMNS, row, strict=True))["interval_s"] == 60
    write = out.state_writes[SID]
    assert write.liveness == "online"
    assert out.batch.liveness_changes == [(NOW - 10 * S, SID, "unknown", "online")]


# -- what cannot be used is dead-lettered ----------------------------------------------------
VALID_BEAT = factories.dumps(beat(NOW, 1))


@pytest.mark.parametrize(
    ("topic", "key", "value", "reason", "says"),
    [
        pytest.param(HEARTBEAT, SID.encode(), b"{not json", "json", "Invalid JSON", id="not-json"),
        pytest.param(HEARTBEAT, None, VALID_BEAT, "key", "key: missing", id="no-key"),
        pytest.param(
            OCCUPANCY,
            b"SY-0002",
            factories.dumps(count(NOW, 3)),
            "key",
            "differs from station_id",
            id="key-is-another-station",
        ),
        pytest.param(
            STATUS,
            SID.encode(),
            factories.dumps(status(NOW + timedelta(hours=1), "open")),
            "future",
            "in the future",
            id="from-the-future",
        ),
        pytest.param(
            HEARTBEAT,
            SID.encode(),
            factories.dumps(beat(NOW, -1)),
            "invalid",
            "seq",
            id="invalid-field",
        ),
        pytest.param(HEARTBEAT, SID.encode(), None, "empty", "value: missing", id="null-value"),
        pytest.param(
            REGISTRY, b"not a station", None, "key", "is not a station id", id="bad-tombstone"
        ),
        pytest.param(HEARTBEAT, SID.encode(), b"\xff\xfe{", "json", "JSON", id="not-utf8"),
    ],
)
def test_an_unusable_record_is_dead_lettered_and_changes_nothing(
    topic: str, key: bytes | None, value: bytes | None, reason: str, says: str
) -> None:
    registry = CollectorRegistry()
    source = Record(topic, AWAY, 1234, key, value)
    out = run([source], metrics=WorkerMetrics.create(registry))

    (letter,) = out.dead_letters
    assert (letter.topic, letter.partition, letter.offset) == (PREFIX + topic, AWAY, 1234)
    assert letter.key == (key.decode("utf-8", errors="replace") if key is not None else None)
    assert says in letter.error
    assert letter.raw == (value.decode("utf-8", errors="replace") if value is not None else "")
    assert letter.at == NOW
    assert len(out.batch) == 0
    assert out.state_writes == {}
    assert out.misplaced == []  # not judged: its key is no station
    assert sample(registry, "stationwatch_deadletters_total", topic=topic, reason=reason) == 1
    assert sample(registry, "stationwatch_events_total", topic=topic, outcome="deadletter") == 1


def test_a_dead_letter_keeps_at_most_the_raw_limit_of_a_huge_record() -> None:
    huge = b"x" * (RAW_LIMIT + 10)
    config = replace(CONFIG, max_bytes=RAW_LIMIT * 2)
    (letter,) = run([Record(HEARTBEAT, HOME, 0, SID.encode(), huge)], config=config).dead_letters
    assert len(letter.raw) == RAW_LIMIT


def test_good_records_around_a_bad_one_are_kept() -> None:
    records = [
        record(HEARTBEAT, beat(NOW - 20 * S, 1), offset=0),
        Record(HEARTBEAT, HOME, 1, SID.encode(), b"garbage"),
        record(HEARTBEAT, beat(NOW - 10 * S, 2), offset=2),
    ]
    out = run(records)
    assert [letter.offset for letter in out.dead_letters] == [1]
    assert [row[2] for row in out.batch.heartbeats] == [1, 2]
    assert state_of(out.state_writes[SID]).last_seq == 2
    assert out.state_writes[SID].ref == records[2].ref


# -- tombstones -------------------------------------------------------------------------------
EPISODE = {
    "alert_id": "0d5a3c1e-offline",
    "starts_at": (NOW - 50 * MIN).isoformat(),
    "detected_at": (NOW - 50 * MIN).isoformat(),
    "summary": "gone quiet",
}


def test_a_tombstone_removes_the_station_and_resolves_its_open_episodes() -> None:
    table = {SID: stored(liveness="offline", episodes={"offline": EPISODE})}
    tombstone = record(REGISTRY, None, offset=9)
    out = run([tombstone], table)

    write = out.state_writes[SID]
    assert (write.remove, write.ref, write.partition) == (True, tombstone.ref, HOME)
    assert out.batch.stations == {SID: None}  # the stations row is deleted
    (alert,) = out.alerts
    assert (alert.alert_id, alert.kind, alert.state) == (EPISODE["alert_id"], "offline", "resolved")
    assert alert.ends_at == NOW
    assert out.batch.alerts[alert.alert_id][6] == NOW  # ends_at: the episode is closed in the db
    assert out.dead_letters == []


def test_expected_changes_are_rows_of_the_batch_until_the_station_is_removed() -> None:
    first = run([record(REGISTRY, profile(NOW - MIN))])
    assert first.batch.expected_changes == [(NOW, SID, True, "first_seen")]
    table = {SID: first.state_writes[SID].value}
    assert run([record(REGISTRY, profile(NOW - MIN))], table).batch.expected_changes == []
    gone = run([record(REGISTRY, None, offset=9)], table)
    assert gone.batch.expected_changes == [
        (NOW + timedelta(microseconds=1), SID, False, "registry")
    ]
    # the stations delete, the expected change, and the removal in the history
    assert len(gone.batch) == 3
    assert [row[2] for row in gone.batch.station_history] == ["removed"]


def test_a_tombstone_for_a_station_never_seen_deletes_its_row_only() -> None:
    out = run([record(REGISTRY, None)])
    assert out.batch.stations == {SID: None}
    assert out.state_writes == {}
    assert out.alerts == []


@pytest.mark.parametrize(
    ("order", "exists"),
    [
        pytest.param(("tombstone", "profile"), True, id="registered-again"),
        pytest.param(("profile", "tombstone"), False, id="registered-then-removed"),
    ],
)
def test_the_last_registry_action_in_a_batch_wins(order: tuple[str, str], exists: bool) -> None:
    actions = {
        "tombstone": record(REGISTRY, None),
        "profile": record(REGISTRY, profile(NOW - MIN, name="新驿站")),
    }
    out = run([actions[name] for name in order], {SID: stored()})
    write = out.state_writes[SID]
    if exists:
        assert not write.remove
        state = state_of(write)
        assert state.record is not None
        assert state.record["name"] == "新驿站"
        assert state.last_heartbeat_at is None  # a fresh station: nothing of the removed one
        row = out.batch.stations[SID]
        assert row is not None
        assert row[1] == "新驿站"
    else:
        assert write.remove
        assert out.batch.stations == {SID: None}


# -- newest wins, whatever the order and however often ---------------------------------------
SHUFFLED = [
    record(HEARTBEAT, beat(NOW - 30 * S, 1, battery_pct=50.0), offset=0),
    record(HEARTBEAT, beat(NOW - 10 * S, 3, battery_pct=70.0), offset=1),
    record(HEARTBEAT, beat(NOW - 20 * S, 2, battery_pct=60.0), offset=2),
    record(HEARTBEAT, beat(NOW - 10 * S, 3, battery_pct=70.0), offset=3),  # delivered twice
    record(OCCUPANCY, count(NOW - 2 * MIN, 9), offset=4),
    record(OCCUPANCY, count(NOW - 1 * MIN, 5), offset=5),
    record(STATUS, status(NOW - 3 * MIN, "open"), offset=6),
    record(STATUS, status(NOW - 4 * MIN, "closed"), offset=7),
    record(STATUS, status(NOW - 3 * MIN, "open"), offset=8),
    record(REGISTRY, profile(NOW - timedelta(days=2), name="旧名"), offset=9),
    record(REGISTRY, profile(NOW - timedelta(days=1), name="新名"), offset=10),
]


@settings(max_examples=40, deadline=None)
@given(st.permutations(SHUFFLED))
def test_the_newest_message_wins_in_any_order_and_duplicates_change_nothing(
    records: list[Record],
) -> None:
    out = run(records)
    state = state_of(out.state_writes[SID])
    assert (state.last_heartbeat_at, state.last_seq, state.battery_pct) == (NOW - 10 * S, 3, 70.0)
    assert (state.occupants, state.occupancy_at) == (5, NOW - MIN)
    assert (state.open_state, state.open_state_since) == ("open", NOW - 3 * MIN)
    assert state.record is not None
    assert state.record["name"] == "新名"
    row = out.batch.stations[SID]
    assert row is not None
    assert row[1] == "新名"  # the newest registry record is the one written
    # every message is written; the duplicate is one row by the table's key
    assert len(out.batch.heartbeats) == 4
    assert len({(row[1], row[0]) for row in out.batch.heartbeats}) == 3
    assert len(out.batch.occupancy) == 2
    assert len({(row[1], row[0], row[2]) for row in out.batch.status_events}) == 2


# -- a batch in parts ends as the whole batch -------------------------------------------------
STATIONS = ("SY-0001", "SY-0002", "CY-1")


def pool() -> list[Record]:
    """Records of three stations: every kind of input, at several times, and garbage."""
    found: list[Record] = []
    for sid in STATIONS:
        made: list[tuple[str, dict[str, Any] | None]] = [
            *((HEARTBEAT, beat(NOW - n * 20 * S, 10 - n, sid=sid)) for n in range(3)),
            *((OCCUPANCY, count(NOW - n * MIN, 3 + n, sid=sid)) for n in range(2)),
            (STATUS, status(NOW - MIN, "open", sid=sid)),
            (STATUS, status(NOW - 2 * MIN, "closed", sid=sid)),
            *((REGISTRY, profile(NOW - n * MIN, sid=sid, name=f"站{n}")) for n in range(2)),
            (REGISTRY, None),
        ]
        found.extend(record(t, m, station_id=sid, offset=len(found)) for t, m in made)
        found.append(Record(OCCUPANCY, partition_for(sid, PARTITIONS), -1, sid.encode(), b"{"))
    return found


POOL = pool()
# SY-0001 stored with an open episode (a tombstone resolves it); SY-0002 stored before the
# partition was kept; CY-1 unknown
TABLE = {
    "SY-0001": stored(liveness="offline", episodes={"offline": EPISODE}),
    "SY-0002": StationState("SY-0002", occupants=2, occupancy_at=NOW - 5 * MIN).to_json(),
}


class PartitionedTable:
    """The live table as the agent reads it (station id → stored state, read one at a time
    by the partition its record arrived on, or many at once), counting its reads."""

    def __init__(self, states: dict[str, Any]) -> None:
        self.states = states
        self.alone: list[tuple[str, int]] = []  # stations read one at a time, by partition
        self.many: list[tuple[str, int]] = []  # stations read with others

    def get(self, station_id: str) -> Any:
        return self.states.get(station_id)

    def stored(self, station_id: str, partition: int) -> Any:
        self.alone.append((station_id, partition))
        return self.states.get(station_id)

    def stored_many(self, wanted: dict[str, int]) -> dict[str, Any]:
        self.many.extend(wanted.items())
        return {station_id: self.states.get(station_id) for station_id in wanted}


def in_parts(
    records: list[Record],
    table: dict[str, Any],
    size: int | Sequence[int],
    clocks: dict[int, Clock | None],
) -> Outcome:
    """As the agent does: parts of ``size`` records (or of each of the sizes given, in turn),
    each reading the states the earlier ones left (an Overlay; the part's stations read ahead
    at once), merged into one outcome."""
    outcome = Outcome()
    source = PartitionedTable(table)
    overlay = Overlay(source)
    sizes = [size for _ in range(0, len(records), size)] if isinstance(size, int) else size
    start = 0
    for length in sizes:
        part, start = records[start : start + length], start + length
        overlay.read_ahead(part)
        outcome.merge(process_records(part, overlay, now=NOW, clocks=clocks, config=CONFIG))
        overlay.absorb(outcome)
    assert not source.alone  # every station the fold read was read ahead
    return outcome


def effect(out: Outcome, table: dict[str, Any]) -> dict[str, Any]:
    """Everything of an outcome the worker acts on."""
    after = dict(table)
    for sid, write in out.state_writes.items():
        if write.remove:
            after.pop(sid, None)
        elif write.value is not None:
            after[sid] = write.value
    batch = out.batch
    appended = ("heartbeats", "occupancy", "status_events", "liveness_changes", "expected_changes")
    return {
        **{name: getattr(batch, name) for name in appended},
        "origins": [batch.origin(row) for name in appended for row in getattr(batch, name)],
        "stations": batch.stations,
        "alert rows": batch.alerts,
        "alerts": out.alerts,
        "dead letters": out.dead_letters,
        "misplaced": out.misplaced,
        "event times": out.event_times,
        "table": after,
        "schedule": {
            sid: (w.partition, w.next_due, w.liveness)
            for sid, w in out.state_writes.items()
            if not w.remove
        },
    }


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(POOL), max_size=40), st.integers(1, 40))
def test_a_batch_folded_in_parts_ends_as_the_whole_batch(records: list[Record], size: int) -> None:
    """Folding (no clock known yet: nothing is judged) commutes with splitting the batch."""
    whole = run(records, TABLE, clocks=UNKNOWN_CLOCKS)
    parts = in_parts(records, TABLE, size, UNKNOWN_CLOCKS)
    assert effect(parts, TABLE) == effect(whole, TABLE)
    assert listed(whole) <= listed(parts)


def listed(out: Outcome) -> set[str]:
    """The stations whose station_current row the batch has written whole (their record
    changed). Folded in parts, a batch names at least those of the whole batch: a station
    removed and registered again within it is new to the later part, so written whole,
    where the whole batch sees a record like the one it held."""
    return {sid for sid, write in out.state_writes.items() if write.listed}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([r for r in POOL if r.topic != REGISTRY]), max_size=30),
    st.integers(1, 30),
)
def test_registered_stations_judged_in_parts_end_as_the_whole_batch(
    records: list[Record], size: int
) -> None:
    """Judged as each part is folded, stations already registered and online end as when the
    whole batch is judged at once (same clock): same states, rows and alerts."""
    table = {sid: stored(sid) for sid in STATIONS}
    whole = run(records, table)
    parts = in_parts(records, table, size, CLOCKS)
    assert effect(parts, table) == effect(whole, table)
    assert listed(whole) <= listed(parts)


def test_a_later_part_reads_the_states_earlier_parts_left() -> None:
    table: dict[str, Any] = {"SY-0001": stored(), "SY-0002": stored("SY-0002")}
    overlay = Overlay(table)
    first = Outcome()
    first.merge(
        run(
            [
                record(OCCUPANCY, count(NOW - 30 * S, 7)),
                record(REGISTRY, None, station_id="SY-0002"),
                record(HEARTBEAT, beat(NOW - 2 * MIN, 1), offset=1),  # older: no change
            ],
            table,
        )
    )
    overlay.absorb(first)
    assert decode_state(overlay.get("SY-0001")).occupants == 7
    assert overlay.get("SY-0002") is None  # removed by the earlier part
    assert overlay.get("CY-1") is None
    table["CY-1"] = stored("CY-1")
    assert overlay.get("CY-1") == table["CY-1"]  # untouched: the table's own

    second = process_records(
        [record(OCCUPANCY, count(NOW, 8), offset=2)],
        overlay,
        now=NOW,
        clocks=CLOCKS,
        config=CONFIG,
    )
    first.merge(second)
    assert state_of(first.state_writes[SID]).occupants == 8
    assert first.state_writes["SY-0002"].remove


def test_a_part_reads_ahead_only_the_stations_earlier_parts_did_not_change() -> None:
    table = PartitionedTable({"SY-0001": stored(), "SY-0002": stored("SY-0002")})
    overlay = Overlay(table)
    first = [
        record(OCCUPANCY, count(NOW - 30 * S, 7)),  # SY-0001 changed
        record(
            HEARTBEAT, beat(NOW - 2 * MIN, 1, sid="SY-0002"), station_id="SY-0002"
        ),  # changed too
    ]
    overlay.read_ahead(first)
    overlay.absorb(process_records(first, overlay, now=NOW, clocks=CLOCKS, config=CONFIG))
    second = [
        record(OCCUPANCY, count(NOW, 8), offset=1),
        record(HEARTBEAT, beat(NOW, 2, sid="SY-0002"), station_id="SY-0002"),
        record(HEARTBEAT, beat(NOW, 1, sid="CY-1"), station_id="CY-1"),
        Record(HEARTBEAT, 0, 9, b"\xff", b"{}"),  # not a station id: a dead letter
    ]
    overlay.read_ahead(second, [Tick(2, ["SY-0001", "SY-0003"])])
    assert overlay.pending["SY-0001"].value is not None
    partition = {sid: partition_for(sid, PARTITIONS) for sid in ("SY-0001", "SY-0002", "CY-1")}
    assert table.many == [
        ("SY-0001", partition["SY-0001"]),
        ("SY-0002", partition["SY-0002"]),
        ("SY-0003", 2),  # due on the partition ticked
        ("CY-1", partition["CY-1"]),
    ]
    out = process_records(second, overlay, now=NOW, clocks=CLOCKS, config=CONFIG)
    assert state_of(out.state_writes[SID]).occupants == 8  # the first part's state, folded on
    assert len(out.dead_letters) == 1
    assert not table.alone


def test_a_station_read_ahead_by_a_refused_record_s_partition_is_read_again_by_its_own() -> None:
    table = PartitionedTable({SID: stored()})
    overlay = Overlay(table)
    own = partition_for(SID, PARTITIONS)
    other = (own + 1) % PARTITIONS
    part = [
        Record(OCCUPANCY, other, 0, SID.encode(), b"{not json"),  # refused
        record(OCCUPANCY, count(NOW, 7), offset=1),
    ]
    overlay.read_ahead(part)
    out = process_records(part, overlay, now=NOW, clocks=CLOCKS, config=CONFIG)
    assert table.many == [(SID, other)]
    assert table.alone == [(SID, own)]  # the accepted record's partition asks first
    assert state_of(out.state_writes[SID]).occupants == 7
    assert len(out.dead_letters) == 1


def test_a_part_that_leaves_a_station_unchanged_keeps_the_earlier_parts_state() -> None:
    table = {SID: stored()}
    parts = in_parts(
        [
            record(OCCUPANCY, count(NOW, 7), offset=0),
            record(OCCUPANCY, count(NOW - MIN, 1), offset=1),  # older: no change
        ],
        table,
        1,
        CLOCKS,
    )
    write = parts.state_writes[SID]
    assert write.ref == f"{OCCUPANCY}@1"  # the changelog entry goes with the newest record
    assert state_of(write).occupants == 7


# head counts of one station (capacity 10): over it from the second, back within at the fourth
CROWDING = [(NOW - 60 * S, 4), (NOW - 55 * S, 12), (NOW - 50 * S, 12), (NOW - 45 * S, 3)]
CROWDING.append((NOW - 40 * S, 4))


@pytest.mark.parametrize(
    "cuts",
    [
        pytest.param((1, 1, 1, 1, 1), id="one-at-a-time"),
        pytest.param((2, 3), id="readings-after-the-one-within-capacity"),
        pytest.param((1, 1, 1, 2), id="the-one-within-and-the-next"),
        pytest.param((3, 2), id="two-over-then-two-within"),
        pytest.param((1, 2, 2), id="over-twice-in-one-part"),
    ],
)
def test_an_episode_is_dated_by_its_readings_however_the_batch_is_cut(
    cuts: tuple[int, ...],
) -> None:
    """Where a batch's parts end (a restart, a replay, a backlog cut them anew) decides how
    many readings a part folds before the station is judged: the over-capacity episode still
    starts at the first reading over capacity and ends at the first back within it, with the
    same id, as when every reading is judged on its own."""
    records = [
        record(OCCUPANCY, count(at, occupants, capacity=10), offset=n)
        for n, (at, occupants) in enumerate(CROWDING)
    ]
    out = in_parts(records, {SID: stored()}, cuts, CLOCKS)
    episode = [(a.state, a.starts_at, a.ends_at) for a in out.alerts if a.kind == "over_capacity"]
    assert episode == [
        ("firing", NOW - 55 * S, None),
        ("resolved", NOW - 55 * S, NOW - 45 * S),
    ]
    assert len({a.alert_id for a in out.alerts}) == 1
    (row,) = out.batch.alerts.values()
    assert (row[5], row[6]) == (NOW - 55 * S, NOW - 45 * S)  # the alerts table: starts, ends


# open/closed reports of one station open all day: closed twice, then open twice
REPORTS = [(NOW - 40 * MIN, "closed"), (NOW - 35 * MIN, "closed"), (NOW - 20 * MIN, "open")]
REPORTS.append((NOW - 15 * MIN, "open"))


@pytest.mark.parametrize(
    "cuts",
    [
        pytest.param((1, 1, 1, 1), id="one-at-a-time"),
        pytest.param((2, 2), id="each-state-reported-twice-in-a-part"),
        pytest.param((1, 3), id="the-second-closed-and-both-open"),
    ],
)
def test_a_closed_during_hours_episode_is_dated_by_its_reports_however_the_batch_is_cut(
    cuts: tuple[int, ...],
) -> None:
    """A report repeating a station's state does not move when it came to it: the episode
    starts at the first report of closed and ends at the first of open, with the same id,
    however many reports a part folds before the station is judged. (A part that folds the
    whole episode judges the station open only: the state keeps the newest report.)"""
    records = [record(STATUS, status(at, state), offset=n) for n, (at, state) in enumerate(REPORTS)]
    out = in_parts(records, {SID: stored()}, cuts, CLOCKS)
    closed = [
        (a.state, a.starts_at, a.ends_at) for a in out.alerts if a.kind == "closed_during_hours"
    ]
    assert closed == [
        ("firing", NOW - 40 * MIN, None),
        ("resolved", NOW - 40 * MIN, NOW - 20 * MIN),
    ]
    assert len({a.alert_id for a in out.alerts}) == 1


# -- rows the database refuses become dead letters of their records --------------------------
def test_a_refused_row_is_dead_lettered_as_the_record_it_came_from() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    beat_record = record(HEARTBEAT, beat(NOW - 10 * S, 5), offset=77)
    registry_record = record(
        REGISTRY, profile(NOW - MIN, sid="SY-0002"), station_id="SY-0002", offset=78
    )
    out = run([beat_record, registry_record], {SID: stored(), "SY-0002": stored("SY-0002")})
    heartbeat_row = out.batch.heartbeats[0]
    station_row = out.batch.stations["SY-0002"]
    refused = [
        Refused("heartbeats", heartbeat_row, 'CharacterNotInRepertoireError: invalid byte "0x00"'),
        Refused("stations", station_row, "CheckViolationError: lat out of range"),
        Refused("alerts", ("a-1", "SY-0001:stale"), "CheckViolationError: bad alert"),
        Refused("liveness_changes", (NOW, SID, "online", "stale"), "NotNullViolationError"),
    ]

    letters = refused_letters(out.batch, refused, config=CONFIG, now=NOW, metrics=metrics)

    assert [(x.topic, x.partition, x.offset, x.key) for x in letters] == [
        (PREFIX + HEARTBEAT, HOME, 77, SID),
        (PREFIX + REGISTRY, partition_for("SY-0002", PARTITIONS), 78, "SY-0002"),
    ]
    assert letters[0].error == (
        'database refused the heartbeats row: CharacterNotInRepertoireError: invalid byte "0x00"'
    )
    assert letters[0].raw == (beat_record.value or b"").decode()
    assert "CheckViolationError" in letters[1].error
    for table_name in ("heartbeats", "stations", "alerts", "liveness_changes"):
        assert sample(registry, "stationwatch_rows_refused_total", table=table_name) == 1
    assert sample(registry, "stationwatch_deadletters_total", topic=HEARTBEAT, reason="database")
    assert sample(registry, "stationwatch_deadletters_total", topic=REGISTRY, reason="database")


def test_a_row_equal_to_a_refused_one_but_from_another_record_is_not_blamed() -> None:
    first = record(HEARTBEAT, beat(NOW - 10 * S, 5), offset=1)
    again = record(HEARTBEAT, beat(NOW - 10 * S, 5), offset=2)  # the same message, redelivered
    out = run([first, again])
    one, two = out.batch.heartbeats
    assert one == two
    letters = refused_letters(
        out.batch,
        [Refused("heartbeats", two, "CharacterNotInRepertoireError")],
        config=CONFIG,
        now=NOW,
    )
    assert [letter.offset for letter in letters] == [2]


# -- partitions: a station is owned where its records arrive ----------------------------------
@pytest.mark.parametrize(
    ("stored_partition", "arrives_on", "partitions", "expected"),
    [
        pytest.param(None, HOME, PARTITIONS, [], id="new-where-murmur2-puts-it"),
        pytest.param(
            None,
            AWAY,
            PARTITIONS,
            [Misplaced(SID, HEARTBEAT, AWAY, HOME, moved=False)],
            id="new-elsewhere",
        ),
        pytest.param(None, AWAY, 0, [], id="new-elsewhere-unchecked"),
        pytest.param(AWAY, AWAY, PARTITIONS, [], id="known-where-it-always-arrived"),
        pytest.param(
            HOME,
            AWAY,
            PARTITIONS,
            [Misplaced(SID, HEARTBEAT, AWAY, HOME, moved=True)],
            id="known-moved",
        ),
        pytest.param(
            AWAY,
            HOME,
            PARTITIONS,
            [Misplaced(SID, HEARTBEAT, HOME, AWAY, moved=True)],
            id="known-moved-back-to-murmur2",
        ),
    ],
)
def test_a_station_arriving_where_it_was_not_expected_is_reported(
    stored_partition: int | None,
    arrives_on: int,
    partitions: int,
    expected: list[Misplaced],
) -> None:
    table = {} if stored_partition is None else {SID: stored(partition=stored_partition)}
    records = [
        record(HEARTBEAT, beat(NOW - 10 * S, n), offset=n, partition=arrives_on) for n in range(3)
    ]
    out = run(records, table, config=replace(CONFIG, partitions=partitions))
    assert out.misplaced == expected  # once per station and batch
    write = out.state_writes[SID]
    assert write.partition == arrives_on
    assert state_of(write).partition == arrives_on


def test_a_station_stored_before_partitions_were_kept_is_checked_against_murmur2() -> None:
    old = stored()
    old["partition"] = None
    out = run([record(HEARTBEAT, beat(NOW, 1), partition=AWAY)], {SID: old})
    assert out.misplaced == [Misplaced(SID, HEARTBEAT, AWAY, HOME, moved=False)]
    assert state_of(out.state_writes[SID]).partition == AWAY


# -- judging ----------------------------------------------------------------------------------
def test_a_due_station_is_judged_by_its_partitions_clock() -> None:
    table = {SID: stored(last_heartbeat_at=NOW - 20 * MIN)}  # 40 intervals of silence
    out = run([], table, ticks=[Tick(HOME, [SID, "GONE-1"], ref="tick")])
    write = out.state_writes[SID]
    assert (write.ref, write.liveness) == ("tick", "offline")
    assert list(out.state_writes) == [SID]  # a station gone from the table is skipped
    assert [(a.kind, a.state) for a in out.alerts] == [("offline", "firing")]
    assert out.batch.liveness_changes == [(NOW - 20 * MIN + 300 * S, SID, "online", "offline")]
    assert list(out.batch.alerts) == [out.alerts[0].alert_id]
    assert write.next_due is not None
    assert write.next_due > NOW


def test_a_station_whose_partition_clock_is_unknown_is_folded_but_not_judged() -> None:
    table = {SID: stored(last_heartbeat_at=NOW - 20 * MIN)}
    out = run([record(OCCUPANCY, count(NOW, 3))], table, clocks=UNKNOWN_CLOCKS)
    write = out.state_writes[SID]
    assert write.next_due is None  # due as soon as the clock is known
    assert write.liveness == "online"  # as stored: not judged yet
    assert state_of(write).occupants == 3
    assert out.alerts == []
    assert out.batch.liveness_changes == []


def test_every_telemetry_input_gives_its_event_time_for_the_processing_delay() -> None:
    """Heartbeats, counts and status events carry the time they happened; dead letters and
    registry records do not count (master data is no event of the station's)."""
    out = run(
        [
            record(REGISTRY, profile(NOW - timedelta(days=1)), offset=0),
            record(HEARTBEAT, beat(NOW - 10 * S, 7), offset=1),
            record(OCCUPANCY, count(NOW - 20 * S, 3), offset=2),
            record(STATUS, status(NOW - 30 * S, "open"), offset=3),
            record(HEARTBEAT, {"station_id": SID}, offset=4),  # no sent_at: dead-lettered
        ]
    )
    assert out.event_times == [
        (HEARTBEAT, NOW - 10 * S),
        (OCCUPANCY, NOW - 20 * S),
        (STATUS, NOW - 30 * S),
    ]
    assert len(out.dead_letters) == 1


# -- station_history ----------------------------------------------------------------------
def history_rows(out: Outcome) -> list[tuple[str, datetime, str, str | None]]:
    return [(r[0], r[1], r[2], r[3]) for r in out.batch.station_history]


def test_every_registry_change_the_worker_applies_is_a_history_row() -> None:
    first = profile(NOW - 3 * MIN)
    closed = profile(
        NOW - 2 * MIN,
        lifecycle="temporarily_closed",
        closed_until=(NOW + MIN).isoformat(),
        closure_reason="供暖检修",
        changed_by="王芳",
        changed_via="stations close",
    )
    bookkeeping_only = {**closed, "updated_at": (NOW - MIN).isoformat(), "changed_by": "x"}
    records = [
        record(REGISTRY, first, offset=1),
        record(REGISTRY, closed, offset=2),
        record(REGISTRY, closed, offset=3),  # delivered twice
        record(REGISTRY, bookkeeping_only, offset=4),
        record(REGISTRY, None, offset=5),  # removed
    ]
    out = run(records)
    assert history_rows(out) == [
        (SID, NOW - 3 * MIN, "added", None),
        (SID, NOW - 2 * MIN, "lifecycle", "王芳"),
        (SID, NOW, "removed", None),
    ]
    closure = out.batch.station_history[1]
    assert closure[4] == "stations close"
    assert json.loads(closure[5]) == {
        "closed_until": None,
        "closure_reason": None,
        "lifecycle": "active",
    }
    assert json.loads(closure[6])["closure_reason"] == "供暖检修"
    assert out.batch.origin(closure) is records[1]  # a refused row is dead-lettered as it


def test_an_older_record_arriving_late_writes_no_history() -> None:
    newer = run([record(REGISTRY, profile(NOW - MIN, capacity=20))])
    table = {SID: newer.state_writes[SID].value}
    late = run([record(REGISTRY, profile(NOW - 2 * MIN, capacity=5))], table)
    assert late.batch.station_history == []
    redelivered = run([record(REGISTRY, profile(NOW - MIN, capacity=20))], table)
    assert redelivered.batch.station_history == []


def test_a_record_changed_early_in_a_batch_is_written_whole_after_later_parts() -> None:
    """A rename in one part and a heartbeat (or a judgement) in a later one: the batch's
    write still says the record changed, so station_current's registry columns follow."""
    table = {SID: stored()}
    renamed = record(REGISTRY, profile(NOW, name="新名字"), offset=1)
    later = record(HEARTBEAT, beat(NOW, 99), offset=2)
    for clocks in (CLOCKS, UNKNOWN_CLOCKS):
        parts = in_parts([renamed, later], table, 1, clocks)
        assert parts.state_writes[SID].listed
        assert not in_parts([later], table, 1, clocks).state_writes[SID].listed
