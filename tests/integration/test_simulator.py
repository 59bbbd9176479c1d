"""The simulator against the real (embedded) broker: what it sends is what the contract says."""

from __future__ import annotations

import time
from collections import Counter

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from schemas import Heartbeat, Occupancy, StationProfile, StatusEvent, topics
from stationwatch.broker import EmbeddedBroker, bootstrap_servers
from stationwatch.settings import Settings
from stationwatch.simulator import Fleet, run_simulator
from tests.unit.test_simulator import (
    DEMO,
    DEMO_HEARTBEAT_S,
    INGEST,
    SEC,
    WEDNESDAY,
    episode_lengths,
    replay,
)

pytestmark = pytest.mark.integration

MODELS = {
    topics.HEARTBEAT: Heartbeat,
    topics.OCCUPANCY: Occupancy,
    topics.STATUS: StatusEvent,
    topics.REGISTRY: StationProfile,
}


async def _read_all(settings: Settings, expected: int, deadline_s: float = 30.0) -> list[object]:
    consumer = AIOKafkaConsumer(
        *(settings.topic(t) for t in topics.INPUT_TOPICS),
        bootstrap_servers=bootstrap_servers(settings.kafka),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[object] = []
    deadline = time.monotonic() + deadline_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_simulator_sends_valid_keyed_messages(broker: EmbeddedBroker, unique: str) -> None:
    settings = Settings(kafka=broker.url, topic_prefix=f"t{unique}.", partitions=2)
    sent: list[int] = []

    await run_simulator(
        settings, stations=40, duration=6, seed=7, heartbeat_interval_s=1, on_sent=sent.append
    )

    total = sum(sent)
    assert total > 40 + 150  # the registry, then about one heartbeat a second per device
    records = await _read_all(settings, total)
    assert len(records) == total
    by_topic: Counter[str] = Counter()
    invalid = sensors = 0
    for record in records:
        topic = record.topic.removeprefix(settings.topic_prefix)  # type: ignore[attr-defined]
        key: bytes = record.key  # type: ignore[attr-defined]
        try:
            message = MODELS[topic].model_validate_json(record.value)  # type: ignore[attr-defined]
        except ValidationError:
            invalid += 1  # the simulator's deliberate malformed messages
            continue
        assert key.decode() == message.station_id or key == b"SY-XXXX"
        by_topic[topic] += 1
        if isinstance(message, StationProfile) and message.lifecycle == "active":
            sensors += message.heartbeat_interval_s is not None
    assert by_topic[topics.REGISTRY] == 40
    assert by_topic[topics.HEARTBEAT] > 100
    # every sensor counts within the first interval, then on change and every minute
    assert by_topic[topics.OCCUPANCY] >= sensors > 20
    assert by_topic[topics.STATUS] >= 39  # every station states whether it is open
    assert invalid <= max(3, total // 100)


async def test_heartbeat_seq_counts_up_per_device(broker: EmbeddedBroker, unique: str) -> None:
    settings = Settings(kafka=broker.url, topic_prefix=f"t{unique}.", partitions=1)
    sent: list[int] = []
    await run_simulator(
        settings, stations=5, duration=4, seed=3, heartbeat_interval_s=1, on_sent=sent.append
    )
    records = await _read_all(settings, sum(sent))
    seqs: dict[str, list[int]] = {}
    for record in records:
        if record.topic != settings.topic(topics.HEARTBEAT):  # type: ignore[attr-defined]
            continue
        try:
            body = orjson.loads(record.value)  # type: ignore[attr-defined]
        except orjson.JSONDecodeError:
            continue
        if isinstance(body.get("seq"), int) and body["seq"] > 0:
            seqs.setdefault(body["device_id"], []).append(body["seq"])
    assert seqs
    for values in seqs.values():
        assert values == sorted(values)
        assert len(set(values)) == len(values)


def test_a_ten_minute_demo_has_no_episode_shorter_than_its_pending_time() -> None:
    """The whole default demo fleet (`stationwatch dev`: 300 stations, 5 s heartbeats) for ten
    simulated minutes of a weekday lunch, judged by the worker's own ingest step and the default
    pending and keep-firing times — no broker: see `tests.unit.test_simulator.replay`."""
    start = WEDNESDAY.replace(hour=12)
    fleet = Fleet(DEMO, 300, seed=1, interval=DEMO_HEARTBEAT_S, start=0.0, now=start)
    alerts = replay(fleet, start, 600)
    lengths = episode_lengths(alerts, start + 600 * SEC)
    for kind, length in lengths:
        assert length >= INGEST.liveness.pending_for(kind), (kind, length)
    fired = Counter(kind for kind, _ in lengths)
    assert fired.keys() <= {"stale", "offline"}  # the others wait 10 and 15 minutes
    assert sum(fired.values()) <= 10  # a few devices going quiet, not a flood
