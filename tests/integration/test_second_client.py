"""A second, independent client: one fleet produced through kafka-python, uncompressed and with
every codec a producer in the field may use, lands exactly as the same fleet produced through
aiokafka — the same rows in PostgreSQL, the same live state over the API, no dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from kafka import KafkaProducer
from psycopg.rows import dict_row

from stationwatch.broker import EmbeddedBroker, bootstrap_servers
from tests.factories import dumps, heartbeat, occupancy, profile, run_began, status
from tests.integration.harness import Producer, WorkerProcess, running_worker, wait_for

pytestmark = pytest.mark.integration

Record = tuple[str, bytes, bytes | None]  # contract topic, key, value (None: a tombstone)
Snapshot = dict[str, Any]
Send = Callable[[list[Record]], Awaitable[None]]

SLOTS = ("A", "B", "C", "D")
REGISTERED = ("A", "B", "C")  # D is registered, then removed by a tombstone
TABLES = ("stations", "heartbeats", "occupancy", "status_events")
# Set by the worker from its own clock when the message is processed, so they differ per run.
VOLATILE_COLUMNS = frozenset({"received_at", "ingested_at"})
VOLATILE_FIELDS = frozenset({"liveness_since", "updated_at", "scheduled_open"})
CODECS = (None, "gzip", "snappy", "lz4", "zstd")


def station_ids(token: str) -> dict[str, str]:
    return {slot: f"SC-{token.upper()}{slot}" for slot in SLOTS}


def registry_records(ids: Mapping[str, str]) -> list[Record]:
    """The master data of the fleet: four kinds of station, one of them then removed."""
    a, b, c, d = (ids[slot] for slot in SLOTS)
    profiles = [
        profile(a, name="第二客户端驿站 A", heartbeat_interval_s=300),
        profile(
            b,
            name="空港祥云工会驿站（第二客户端）",
            category="smart_24h",
            host="business_circle",
            services=["water", "hot_meal", "charging", "rest", "wifi", "reading", "medicine"],
            capacity=12,
            opening_hours={
                "always_open": False,
                "weekly": {day: [["08:00", "20:00"]] for day in ("mon", "tue", "wed", "thu")},
                "holidays_open": False,
            },
            heartbeat_interval_s=None,
            contact_phone=None,
        ),
        profile(
            c,
            name="货车司机之家 C",
            category="truck_driver",
            lifecycle="temporarily_closed",
            capacity=None,
            heartbeat_interval_s=600,
        ),
        profile(d, name="商圈驿站 D", category="business_circle_24h", host="market"),
    ]
    records: list[Record] = [
        ("station.registry", p["station_id"].encode(), dumps(p)) for p in profiles
    ]
    records.append(("station.registry", d.encode(), None))
    return records


def telemetry_records(ids: Mapping[str, str], now: datetime) -> list[Record]:
    """Heartbeats, occupancy and status events, full and minimal, one repeated and one late."""
    a, b, c, d = (ids[slot] for slot in SLOTS)
    beats = [
        heartbeat(a, now - timedelta(seconds=120 - 10 * i), i, battery_pct=90.5 - i / 4)
        for i in range(12)
    ]
    beats[5] |= {"note": "unknown fields are ignored", "on_mains": False}
    beats += [
        {"station_id": b, "sent_at": (now - timedelta(seconds=40 - i)).isoformat()}
        for i in range(4)
    ]
    beats += [heartbeat(c, now - timedelta(seconds=60 - 7 * i), 100 + i) for i in range(6)]
    beats += [heartbeat(d, now - timedelta(seconds=30 - i), i, firmware="2.0.0") for i in range(3)]
    beats.append(beats[0])  # delivered again
    counts = [occupancy(a, now - timedelta(seconds=100 - 15 * i), i) for i in range(6)]
    counts += [
        {"station_id": b, "observed_at": (now - timedelta(minutes=3)).isoformat(), "occupants": 4},
        occupancy(b, now - timedelta(minutes=2), 7, capacity=None, source="manual"),
        occupancy(d, now - timedelta(seconds=5), 2, capacity=4),
    ]
    events = [
        status(a, now - timedelta(minutes=30), "open"),
        status(a, now - timedelta(minutes=20), "closed", reason="maintenance", actor="staff"),
        status(a, now - timedelta(minutes=10), "open", reason="manual", actor="supervisor"),
        status(b, now - timedelta(minutes=8), "closed", reason="weather", actor="supervisor"),
        status(c, now - timedelta(minutes=9), "closed", reason="emergency", actor="staff"),
    ]
    late = status(c, now - timedelta(hours=1), "open")  # older than what came before it
    messages = [("station.heartbeat", beat) for beat in beats]
    messages += [("station.occupancy", count) for count in counts]
    messages += [("station.status", event) for event in [*events, late]]
    return [(topic, m["station_id"].encode(), dumps(m)) for topic, m in messages]


def expected_rows(telemetry: list[Record]) -> dict[str, int]:
    """Rows the fleet writes: one per distinct message (the repeated heartbeat writes none)."""
    counts = {table: 0 for table in TABLES}
    counts["stations"] = len(REGISTERED)
    tables = {
        "station.heartbeat": "heartbeats",
        "station.occupancy": "occupancy",
        "station.status": "status_events",
    }
    for topic, _key, _value in dict.fromkeys(telemetry):
        counts[tables[topic]] += 1
    return counts


def _with_slots(value: Any, slots: Mapping[str, str]) -> Any:
    """``value`` with every station id, also inside a text (a device id), replaced by its slot."""
    if isinstance(value, str):
        for sid, slot in slots.items():
            value = value.replace(sid, slot)
        return value
    if isinstance(value, dict):
        return {k: _with_slots(v, slots) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_slots(v, slots) for v in value]
    return value


def table_rows(database_url: str, ids: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Every row the fleet wrote, volatile columns dropped, station ids as slots, in order."""
    slots = {sid: slot for slot, sid in ids.items()}
    rows: dict[str, list[dict[str, Any]]] = {}
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        for table in TABLES:
            found = conn.execute(
                f"SELECT * FROM stationwatch.{table} WHERE station_id = ANY(%s)",  # noqa: S608
                (list(ids.values()),),
            ).fetchall()
            normalised = [
                _with_slots({k: v for k, v in row.items() if k not in VOLATILE_COLUMNS}, slots)
                for row in found
            ]
            rows[table] = sorted(
                normalised, key=lambda row: (row["station_id"], repr(sorted(row.items())))
            )
    return rows


async def live_states(worker: WorkerProcess, ids: Mapping[str, str]) -> dict[str, Any]:
    """Each station's live state over the API (``None`` for 404), volatile fields dropped."""
    assert worker.process is not None
    if worker.process.poll() is not None:
        raise AssertionError(
            f"worker exited with {worker.process.returncode}:\n{worker.log()[-4000:]}"
        )
    slots = {sid: slot for slot, sid in ids.items()}
    states: dict[str, Any] = {}
    for slot, sid in ids.items():
        response = await worker.get(f"/stations/{sid}")
        assert response.status_code in (200, 404), response.text
        body = response.json() if response.status_code == 200 else None
        states[slot] = body and _with_slots(
            {k: v for k, v in body.items() if k not in VOLATILE_FIELDS}, slots
        )
    return states


async def snapshot(
    worker: WorkerProcess, database_url: str, ids: Mapping[str, str]
) -> Snapshot | None:
    """The fleet's rows and live states; ``None`` while the API does not answer."""
    rows = await asyncio.to_thread(table_rows, database_url, ids)
    try:
        live = await live_states(worker, ids)
    except httpx.TransportError:
        return None  # a crashing worker closes its port first: the next look shows its log
    return {**rows, "live": live}


def newest(telemetry: list[Record], ids: Mapping[str, str]) -> dict[str, dict[str, datetime]]:
    """By slot, the time of each kind the live state must show once all has landed: the
    newest message's, and for open/closed reports when the newest state began."""
    slots = {sid: slot for slot, sid in ids.items()}
    fields = {
        "station.heartbeat": ("sent_at", "last_heartbeat_at"),
        "station.occupancy": ("observed_at", "occupancy_at"),
        "station.status": ("at", "open_state_since"),
    }
    times: dict[str, dict[str, datetime]] = {slot: {} for slot in SLOTS}
    reports: dict[str, list[tuple[datetime, str]]] = {slot: [] for slot in SLOTS}
    for topic, key, value in telemetry:
        assert value is not None
        message_field, state_field = fields[topic]
        message = json.loads(value)
        moment = datetime.fromisoformat(message[message_field])
        known = times[slots[key.decode()]]
        known[state_field] = max(moment, known.get(state_field, moment))
        if topic == "station.status":
            reports[slots[key.decode()]].append((moment, message["state"]))
    for slot, made in reports.items():
        if made:
            times[slot]["open_state_since"] = run_began(made)[1]
    return times


def complete(
    found: Snapshot, expected: Mapping[str, int], times: Mapping[str, Mapping[str, datetime]]
) -> bool:
    """Every row written and the live state shows the newest message of each kind."""
    if any(len(found[table]) != n for table, n in expected.items()):
        return False
    for slot, fields in times.items():
        state = found["live"][slot]
        if state is None or (state["heartbeat_interval_s"] and state["liveness"] == "unknown"):
            return False  # not judged yet
        if any(
            state[name] is None or datetime.fromisoformat(state[name]) != moment
            for name, moment in fields.items()
        ):
            return False
    return True


async def land(
    send: Send,
    worker: WorkerProcess,
    database_url: str,
    ids: Mapping[str, str],
    now: datetime,
) -> Snapshot:
    """Send the fleet (registry first, so every heartbeat row sees its station's profile) and
    wait until all of it has landed."""
    registry = registry_records(ids)
    accepted = {"topic": "station.registry", "outcome": "accepted"}
    before = await worker.metric("stationwatch_events_total", **accepted)
    await send(registry)

    async def registered() -> bool:
        # D's tombstone too (no row shows it): what follows must find D removed
        taken = await worker.metric("stationwatch_events_total", **accepted) - before
        found = await snapshot(worker, database_url, ids)
        return (
            taken >= len(registry)
            and found is not None
            and {row["station_id"] for row in found["stations"]} == set(REGISTERED)
            and all(found["live"][slot] is not None for slot in REGISTERED)
        )

    await wait_for(registered, timeout_s=30, what="the registry records to land")
    telemetry = telemetry_records(ids, now)
    await send(telemetry)
    expected = expected_rows(telemetry)
    times = newest(telemetry, ids)

    async def landed() -> Snapshot | None:
        found = await snapshot(worker, database_url, ids)
        return found if found is not None and complete(found, expected, times) else None

    found: Snapshot = await wait_for(landed, timeout_s=30, what="the fleet to land")
    return found


@pytest.fixture(scope="module")
async def worker(
    broker: EmbeddedBroker, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkerProcess]:
    """One worker for every client and codec; each sends the fleet under its own station ids."""
    tmp = tmp_path_factory.mktemp("second-client")
    async with running_worker(broker.url, database_url, tmp) as process:
        yield process


@pytest.fixture(scope="module")
def now() -> datetime:
    """The fleet's clock: every variant sends the very same times."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
async def reference(worker: WorkerProcess, database_url: str, now: datetime) -> Snapshot:
    """What lands when the fleet goes through aiokafka, the client the project itself uses."""
    ids = station_ids(uuid.uuid4().hex[:6])
    prefix = worker.env["STATIONWATCH_TOPIC_PREFIX"]
    async with Producer(worker.env["STATIONWATCH_KAFKA"], prefix) as producer:

        async def send(records: list[Record]) -> None:
            for topic, key, value in records:
                await producer.send(topic, key, value)
            await producer.flush()

        found = await land(send, worker, database_url, ids, now)
    return found


def produce_with_kafka_python(
    kafka_url: str, prefix: str, records: list[Record], codec: str | None
) -> dict[str, float]:
    """Send ``records`` through kafka-python, batched (several records per request), and return
    the producer's own measure of the batches it sent."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers(kafka_url).split(","),
        acks="all",
        compression_type=codec,
        linger_ms=50,
    )
    try:
        futures = [
            producer.send(prefix + topic, key=key, value=value) for topic, key, value in records
        ]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)
        measured: dict[str, float] = producer.metrics()["producer-metrics"]
        return measured
    finally:
        producer.close(timeout=10)


async def test_through_aiokafka_the_fleet_lands_as_sent(
    worker: WorkerProcess, reference: Snapshot
) -> None:
    """The reference itself holds what the contract says the fleet writes."""
    beats = {row["seq"]: row for row in reference["heartbeats"] if row["station_id"] == "A"}
    assert sorted(beats) == list(range(12))
    assert beats[5]["on_mains"] is False
    assert beats[11]["battery_pct"] == 87.75
    assert beats[11]["interval_s"] == 300  # its station's profile was known when it came
    assert [row["station_id"] for row in reference["stations"]] == list(REGISTERED)
    live = reference["live"]
    assert live["A"]["liveness"] == "online"
    assert live["B"]["liveness"] == "not_monitored"
    assert live["B"]["capacity"] == 12  # the count said none: the registry's
    assert live["C"]["open_state"] == "closed"  # the late "open" is older
    assert live["D"]["lifecycle"] == "unknown"  # removed from the registry, still reporting
    assert await worker.metric("stationwatch_events_total", outcome="deadletter") == 0


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec or "uncompressed")
async def test_the_fleet_through_kafka_python_lands_exactly_as_through_aiokafka(
    worker: WorkerProcess, database_url: str, reference: Snapshot, now: datetime, codec: str | None
) -> None:
    ids = station_ids(uuid.uuid4().hex[:6])
    measured: list[dict[str, float]] = []

    async def send(records: list[Record]) -> None:
        measured.append(
            await asyncio.to_thread(
                produce_with_kafka_python,
                worker.env["STATIONWATCH_KAFKA"],
                worker.env["STATIONWATCH_TOPIC_PREFIX"],
                records,
                codec,
            )
        )

    found = await land(send, worker, database_url, ids, now)

    assert found == reference
    assert await worker.metric("stationwatch_events_total", outcome="deadletter") == 0
    telemetry = measured[-1]
    assert telemetry["records-per-request-avg"] > 1  # batches, not one record per request
    if codec is None:
        assert telemetry["compression-rate-avg"] == 1
    else:
        assert telemetry["compression-rate-avg"] < 1  # the batches really went compressed
