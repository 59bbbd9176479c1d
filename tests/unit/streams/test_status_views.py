"""What a worker says about itself — health, lag, who owns which partition — the clock it judges
stations by, and the public shape of a station's live state. The worker's Faust app is replaced
by small fakes of the consumer, router and table it reads."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from schemas.topics import HEARTBEAT, OCCUPANCY, REGISTRY, STATUS
from stationwatch.db.sink import CURRENT_COLUMNS, LIVE_COLUMNS, TimescaleSink
from stationwatch.metrics import WorkerMetrics
from stationwatch.settings import Settings
from streams.holidays import holiday_health
from streams.ingest import IngestConfig
from streams.record import holding
from streams.runtime import END_MAX_AGE_S, Runtime, liveness_config, ticks_topic_name
from streams.state import StationState
from streams.status import health_report, routes
from streams.views import current_row, live_row, live_state, stored_view
from tests import factories

PREFIX = "t9."
SETTINGS = Settings(topic_prefix=PREFIX, health_max_lag=100)


def tp(topic: str, partition: int) -> Any:
    return TP(PREFIX + topic, partition)


@dataclass
class FakeConsumer:
    """The consumer's view of its partitions: each assigned one's high watermark (None: nothing
    fetched yet) and the position it has fetched up to (None: unknown)."""

    highwaters: dict[Any, int | None] = field(default_factory=dict)
    fetched: dict[Any, int | None] = field(default_factory=dict)

    def assignment(self) -> set[Any]:
        return set(self.highwaters)

    def highwater(self, partition: Any) -> int | None:
        return self.highwaters[partition]

    async def position(self, partition: Any) -> int | None:
        return self.fetched.get(partition)


@dataclass
class FakeRouter:
    table: str
    metadata: dict[Any, dict[str, set[int]]]

    def table_metadata(self, name: str) -> dict[Any, dict[str, set[int]]]:
        return self.metadata if name == self.table else {}


@dataclass
class FakeChangelog:
    name: str

    def get_topic_name(self) -> str:
        return self.name


@dataclass
class FakeTable:
    name: str = "station_state"
    changelog_topic: FakeChangelog = field(
        default_factory=lambda: FakeChangelog("stationwatch-station_state-changelog")
    )


@dataclass
class FakeApp:
    consumer: FakeConsumer
    rebalancing: bool = False
    router: FakeRouter | None = None


def make_runtime(
    consumer: FakeConsumer | None = None,
    *,
    settings: Settings = SETTINGS,
    positions: dict[Any, int] | None = None,
    rebalancing: bool = False,
    router: FakeRouter | None = None,
) -> Runtime:
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    metrics.db_available.set(1)  # as create_app starts
    config = IngestConfig(
        topic_prefix=settings.topic_prefix,
        max_bytes=settings.max_message_bytes,
        max_skew=timedelta(seconds=settings.max_clock_skew_s),
        liveness=liveness_config(settings),
        partitions=settings.partitions,
    )
    # only what health, routes and the clock read of a faust.App
    app: Any = FakeApp(consumer or FakeConsumer(), rebalancing, router)
    runtime = Runtime(
        settings,
        app,
        FakeTable(),
        TimescaleSink(settings.dsn),  # never connects: nothing is written here
        metrics,
        registry,
        config,
    )
    runtime.positions = dict(positions or {})
    return runtime


# -- health ------------------------------------------------------------------------------------
class UnavailableSink(TimescaleSink):
    """A sink whose last write failed (health reads the sink's own state)."""

    @property
    def available(self) -> bool:
        return False


HB0, HB1, OCC0, REG3 = tp(HEARTBEAT, 0), tp(HEARTBEAT, 1), tp(OCCUPANCY, 0), tp(REGISTRY, 3)
TICKS0 = TP(ticks_topic_name(SETTINGS), 0)
CHANGELOG0 = TP("stationwatch-station_state-changelog", 0)


@pytest.mark.parametrize(
    ("consumer", "positions", "rebalancing", "db_ok", "problems", "lag_by_topic"),
    [
        pytest.param(
            FakeConsumer({HB0: 50, OCC0: 10, REG3: 0}, {OCC0: 10}),
            {HB0: 50},
            False,
            True,
            [],
            {HEARTBEAT: 0, OCCUPANCY: 0, REGISTRY: 0},
            id="caught-up",
        ),
        pytest.param(
            # processed 400 of 500 (fetched all), 250 of 300, nothing known of occupancy's 20
            FakeConsumer({HB0: 500, HB1: 300, OCC0: 20}, {HB0: 500, HB1: 250}),
            {HB0: 400},
            False,
            True,
            ["behind by 170 messages"],
            {HEARTBEAT: 150, OCCUPANCY: 20},
            id="behind",
        ),
        pytest.param(
            FakeConsumer({HB0: 100}),
            {HB0: 0},
            False,
            True,
            [],
            {HEARTBEAT: 100},
            id="behind-by-the-most-allowed",
        ),
        pytest.param(
            FakeConsumer({HB0: None, tp(STATUS, 2): 7}, {tp(STATUS, 2): 9}),
            {},
            False,
            True,
            [],
            {HEARTBEAT: 0, STATUS: 0},
            id="nothing-fetched-yet-or-ahead",
        ),
        pytest.param(
            # the worker's own tick and changelog partitions are not input
            FakeConsumer({HB0: 5, TICKS0: 10_000, CHANGELOG0: 10_000}),
            {HB0: 5},
            False,
            True,
            [],
            {HEARTBEAT: 0},
            id="only-input-topics",
        ),
        pytest.param(
            FakeConsumer(),
            {},
            True,
            True,
            ["rebalancing partitions"],
            {},
            id="rebalancing",
        ),
        pytest.param(
            FakeConsumer(),
            {},
            False,
            True,
            ["no partitions assigned yet"],
            {},
            id="no-partitions",
        ),
        pytest.param(
            FakeConsumer({HB0: 5}),
            {HB0: 5},
            False,
            False,
            ["database unavailable, writes are being retried"],
            {HEARTBEAT: 0},
            id="database-retrying",
        ),
        pytest.param(
            FakeConsumer({HB0: 5000}),
            {HB0: 0},
            True,
            False,
            [
                "rebalancing partitions",
                "behind by 5000 messages",
                "database unavailable, writes are being retried",
            ],
            {HEARTBEAT: 5000},
            id="everything-wrong",
        ),
    ],
)
async def test_health_report(
    consumer: FakeConsumer,
    positions: dict[Any, int],
    rebalancing: bool,
    db_ok: bool,
    problems: list[str],
    lag_by_topic: dict[str, int],
) -> None:
    runtime = make_runtime(consumer, positions=positions, rebalancing=rebalancing)
    if not db_ok:
        runtime.sink = UnavailableSink(SETTINGS.dsn)

    healthy, body = await health_report(runtime)

    assert healthy == (not problems)
    assert body == {
        "status": "ok" if not problems else "unavailable",
        "problems": problems,
        "partitions": len([t for t in consumer.highwaters if t not in (TICKS0, CHANGELOG0)]),
        "lag": sum(lag_by_topic.values()),
        "lag_by_topic": lag_by_topic,
        "database": "ok" if db_ok else "retrying",
        **holiday_health(SETTINGS),  # tests/unit/streams/test_holidays.py covers it
    }
    for topic, lag in lag_by_topic.items():
        gauge = runtime.registry.get_sample_value(
            "stationwatch_consumer_lag_messages", {"topic": topic}
        )
        assert gauge == lag


@pytest.mark.parametrize(
    ("consumer", "positions", "ends", "problems", "lag_by_topic"),
    [
        pytest.param(
            # the consumer stopped fetching at 500: by its highwater it is caught up, the
            # broker holds 2,500
            FakeConsumer({HB0: 500}, {HB0: 500}),
            {HB0: 500},
            {HB0: 2500},
            ["behind by 2000 messages"],
            {HEARTBEAT: 2000},
            id="a-consumer-that-stopped-fetching",
        ),
        pytest.param(
            # nothing fetched of heartbeat 1 and registry 3 since the assignment (fetch
            # position 0): the broker holds 160 and 30
            FakeConsumer({HB0: 500, HB1: None, REG3: None}, {HB1: 0, REG3: 0}),
            {HB0: 460},
            {HB1: 160, REG3: 30},
            ["behind by 230 messages"],
            {HEARTBEAT: 200, REGISTRY: 30},
            id="nothing-fetched-yet",
        ),
        pytest.param(
            # asked before the last fetch: the fetch's highwater is the newer end
            FakeConsumer({HB0: 500}, {HB0: 500}),
            {HB0: 450},
            {HB0: 480},
            [],
            {HEARTBEAT: 50},
            id="an-older-answer",
        ),
    ],
)
async def test_health_counts_the_lag_to_the_brokers_end_offsets(
    consumer: FakeConsumer,
    positions: dict[Any, int],
    ends: dict[Any, int],
    problems: list[str],
    lag_by_topic: dict[str, int],
) -> None:
    runtime = make_runtime(consumer, positions=positions)
    asked = datetime.now(UTC)
    runtime.end_offsets.update((t, (asked, end)) for t, end in ends.items())

    healthy, body = await health_report(runtime)

    assert (healthy, body["problems"], body["lag_by_topic"]) == (
        not problems,
        problems,
        lag_by_topic,
    )
    for topic, lag in lag_by_topic.items():
        gauge = runtime.registry.get_sample_value(
            "stationwatch_consumer_lag_messages", {"topic": topic}
        )
        assert gauge == lag


async def test_a_healthy_report_is_json() -> None:
    _, body = await health_report(make_runtime(FakeConsumer({HB0: 1}), positions={HB0: 1}))
    assert json.loads(json.dumps(body)) == body


def test_routes_name_each_workers_partitions_of_the_live_table() -> None:
    changelog = FakeTable().changelog_topic.get_topic_name()
    router = FakeRouter(
        "station_state",
        {
            "http://w1:6066": {changelog: {3, 1, 0}, "other-table-changelog": {7}},
            "http://w2:6066": {changelog: {2}},
            "http://w3:6066": {"other-table-changelog": {4}},  # a standby, or another table
        },
    )
    assert routes(make_runtime(router=router)) == {
        "http://w1:6066": [0, 1, 3],
        "http://w2:6066": [2],
        "http://w3:6066": [],
    }


# -- the backlog clock -------------------------------------------------------------------------
HB2 = tp(HEARTBEAT, 2)
MARK = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # the newest heartbeat processed on partition 2
FUTURE = object()  # a watermark ahead of the wall clock


ASKED_AGO = 0.5  # seconds since the broker was asked for the end offset


@pytest.mark.parametrize(
    ("highwaters", "fetched", "processed", "caught_up_lag", "end", "mark", "expect"),
    [
        pytest.param({}, {}, None, 0, 100, MARK, None, id="not-assigned"),
        pytest.param(
            {tp(OCCUPANCY, 2): 9}, {}, None, 0, 100, MARK, None, id="only-occupancy-assigned"
        ),
        pytest.param({HB2: None}, {HB2: 0}, 0, 0, 100, MARK, None, id="nothing-fetched-yet"),
        pytest.param({HB2: 100}, {}, None, 0, 100, MARK, None, id="position-unknown"),
        pytest.param({HB2: 100}, {}, 100, 0, 100, None, "asked", id="caught-up"),
        pytest.param({HB2: 100}, {HB2: 100}, None, 0, 100, None, "asked", id="caught-up-fetched"),
        pytest.param({HB2: 105}, {}, 100, 5, 105, None, "asked", id="within-the-allowed-lag"),
        pytest.param({HB2: 106}, {}, 100, 5, 106, MARK, "mark", id="behind"),
        pytest.param({HB2: 106}, {}, 100, 5, 106, None, None, id="behind-nothing-processed-yet"),
        pytest.param({HB2: 100}, {HB2: 100}, 50, 0, 100, MARK, "mark", id="processed-not-fetched"),
        pytest.param({HB2: 106}, {}, 100, 0, 106, FUTURE, "wall", id="broker-time-ahead-of-wall"),
        # the fetch highwater is stale: the broker has more than this worker has fetched
        pytest.param({HB2: 100}, {}, 100, 0, 180, MARK, "mark", id="stale-fetch-highwater"),
        # caught up by the fetch, but the broker was not asked (recently): not sure yet
        pytest.param({HB2: 100}, {}, 100, 0, None, MARK, "mark", id="end-not-asked"),
        pytest.param({HB2: 100}, {}, 100, 0, "old", MARK, "mark", id="end-asked-too-long-ago"),
    ],
)
async def test_the_clock_is_when_everything_was_seen_when_caught_up_and_the_stream_when_behind(
    highwaters: dict[Any, int | None],
    fetched: dict[Any, int | None],
    processed: int | None,
    caught_up_lag: int,
    end: int | str | None,
    mark: object,
    expect: str | None,
) -> None:
    settings = SETTINGS.model_copy(update={"caught_up_lag": caught_up_lag})
    runtime = make_runtime(
        FakeConsumer(highwaters, fetched),
        settings=settings,
        positions={HB2: processed} if processed is not None else {},
    )
    before = datetime.now(UTC)
    asked = before - timedelta(seconds=ASKED_AGO)
    if isinstance(end, int):
        runtime.end_offsets[HB2] = (asked, end)
    elif end == "old":
        runtime.end_offsets[HB2] = (before - timedelta(seconds=END_MAX_AGE_S + 1), 100)
    if isinstance(mark, datetime):
        runtime.watermarks.advance(2, mark.timestamp())
    elif mark is FUTURE:
        runtime.watermarks.advance(2, (before + timedelta(hours=1)).timestamp())
    runtime.watermarks.advance(1, before.timestamp())  # another partition's progress: no matter

    clock = await runtime.clock(2)
    after = datetime.now(UTC)

    if expect is None:
        assert clock is None
        return
    assert clock is not None
    assert before <= clock.wall <= after
    expected = {"mark": MARK, "asked": asked, "wall": clock.wall}[expect]
    assert clock.judge == expected


# -- the public live state --------------------------------------------------------------------
CONTRACT_FIELDS = {
    "station_id",
    "name",
    "category",
    "street",
    "location",
    "services",
    "lifecycle",
    "liveness",
    "liveness_since",
    "last_heartbeat_at",
    "open_state",
    "open_state_since",
    "scheduled_open",
    "occupants",
    "capacity",
    "occupancy_at",
}
SH = ZoneInfo("Asia/Shanghai")
MONDAY_10H = datetime(2026, 11, 30, 10, 0, tzinfo=SH)
MONDAY_22H = datetime(2026, 11, 30, 22, 0, tzinfo=SH)
OFFICE = {"always_open": False, "weekly": {"mon": [["08:00", "20:00"]]}, "holidays_open": False}


def registered(**overrides: Any) -> StationState:
    return StationState(
        station_id="SY-0001",
        **holding(factories.profile("SY-0001", opening_hours=OFFICE, **overrides)),
        profile_updated_at=MONDAY_10H - timedelta(days=1),
        liveness="online",
        liveness_since=MONDAY_10H - timedelta(hours=1),
        last_heartbeat_at=MONDAY_10H - timedelta(seconds=20),
        last_seq=41,
        open_state="open",
        open_state_since=MONDAY_10H - timedelta(hours=2),
        occupants=3,
        reported_capacity=12,
        occupancy_at=MONDAY_10H - timedelta(minutes=1),
        updated_at=MONDAY_10H,
    )


def test_a_registered_station_shows_every_contract_field() -> None:
    view = live_state(registered(), SH, MONDAY_10H)
    assert set(view) >= CONTRACT_FIELDS
    assert {name: view[name] for name in CONTRACT_FIELDS} == {
        "station_id": "SY-0001",
        "name": "测试工会驿站 SY-0001",
        "category": "standard",
        "street": "空港街道",
        "location": {"lat": 40.08, "lon": 116.58},
        "services": ["water", "charging", "rest"],
        "lifecycle": "active",
        "liveness": "online",
        "liveness_since": "2026-11-30T09:00:00+08:00",
        "last_heartbeat_at": "2026-11-30T09:59:40+08:00",
        "open_state": "open",
        "open_state_since": "2026-11-30T08:00:00+08:00",
        "scheduled_open": True,
        "occupants": 3,
        "capacity": 12,  # as the occupancy count reported it
        "occupancy_at": "2026-11-30T09:59:00+08:00",
    }
    assert json.loads(json.dumps(view, ensure_ascii=False)) == view


def test_a_station_missing_from_the_registry_still_has_every_field() -> None:
    view = live_state(StationState("SY-0009"), SH, MONDAY_10H)
    assert set(view) >= CONTRACT_FIELDS
    assert {name: view[name] for name in CONTRACT_FIELDS} == {
        "station_id": "SY-0009",
        "name": None,
        "category": None,
        "street": None,
        "location": None,
        "services": [],
        "lifecycle": "unknown",
        "liveness": "unknown",
        "liveness_since": None,
        "last_heartbeat_at": None,
        "open_state": "unknown",
        "open_state_since": None,
        "scheduled_open": None,
        "occupants": None,
        "capacity": None,
        "occupancy_at": None,
    }


@pytest.mark.parametrize(
    ("state", "zone", "now", "scheduled_open", "capacity"),
    [
        pytest.param(registered(), SH, MONDAY_10H, True, 12, id="in-hours"),
        pytest.param(registered(), SH, MONDAY_22H, False, 12, id="after-hours"),
        pytest.param(registered(), ZoneInfo("UTC"), MONDAY_10H, False, 12, id="hours-are-local"),
        pytest.param(
            StationState("SY-0001", **holding(factories.profile("SY-0001", capacity=8))),
            SH,
            MONDAY_22H,
            True,  # the factory's profile is always open
            8,
            id="capacity-from-the-registry",
        ),
    ],
)
def test_schedule_and_capacity_in_the_view(
    state: StationState, zone: ZoneInfo, now: datetime, scheduled_open: bool, capacity: int
) -> None:
    view = live_state(state, zone, now)
    assert (view["scheduled_open"], view["capacity"]) == (scheduled_open, capacity)


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(registered(), id="registered"),
        pytest.param(StationState("SY-0009"), id="unregistered"),
    ],
)
def test_the_stored_state_shows_as_the_live_one(state: StationState) -> None:
    stored = json.loads(json.dumps(state.to_json()))  # as the changelog carries it
    assert stored_view(stored, SH, MONDAY_10H) == live_state(state, SH, MONDAY_10H)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def station_current_row(
    view: dict[str, Any], now: datetime, fresh_until: datetime | None = None
) -> tuple[Any, ...]:
    """A ``station_current`` row made from a station's public live state: what the worker
    wrote before it built rows from the state itself (streams.views.current_row)."""
    location = view.get("location") or {}
    return (
        view["station_id"],
        view.get("name"),
        view.get("category"),
        view.get("street"),
        view.get("district"),
        location.get("lat"),
        location.get("lon"),
        list(view.get("services") or []),
        view["lifecycle"],
        view["liveness"],
        _time(view.get("liveness_since")),
        _time(view.get("last_heartbeat_at")),
        view["open_state"],
        _time(view.get("open_state_since")),
        view.get("scheduled_open"),
        view.get("occupants"),
        view.get("capacity"),
        _time(view.get("occupancy_at")),
        now,
        fresh_until,
    )


@pytest.mark.parametrize(
    ("state", "now", "fresh"),
    [
        pytest.param(registered(), MONDAY_10H, MONDAY_10H + timedelta(minutes=2), id="in-hours"),
        pytest.param(registered(), MONDAY_22H, None, id="after-hours"),
        pytest.param(StationState("SY-0009"), MONDAY_10H, None, id="unregistered"),
        pytest.param(
            msgspec.structs.replace(registered(), profile=None, occupants=None, occupancy_at=None),
            MONDAY_10H,
            None,
            id="profile-gone",
        ),
    ],
)
def test_the_station_current_row_is_the_one_of_the_live_state(
    state: StationState, now: datetime, fresh: datetime | None
) -> None:
    row = current_row(state, SH, now, fresh)
    assert row == station_current_row(live_state(state, SH, now), now, fresh)
    # a heartbeat's row: the same values, of the live columns only
    live = dict(zip(CURRENT_COLUMNS, row, strict=True))
    assert live_row(state, SH, now, fresh) == tuple(live[c] for c in LIVE_COLUMNS)
    assert set(CURRENT_COLUMNS) - set(LIVE_COLUMNS) == {
        "name", "category", "street", "district", "lat", "lon", "services"
    }  # fmt: skip


async def test_the_offset_reader_is_started_once_for_callers_asking_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two timers (heartbeat ends, other ends) and a rebalance ask for it together at first."""
    started: list[object] = []

    async def start(settings: Settings) -> object:
        await asyncio.sleep(0.01)  # a connection takes a while
        started.append(object())
        return started[-1]

    monkeypatch.setattr("streams.runtime.start_offset_reader", start)
    runtime = make_runtime()

    readers = await asyncio.gather(*(runtime.end_offset_reader() for _ in range(3)))

    assert len(started) == 1
    assert readers == [started[0]] * 3
    assert await runtime.end_offset_reader() is started[0]
