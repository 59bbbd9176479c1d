"""The simulator against the real (embedded) broker: what it sends is what the contract says."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
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

MODELS: dict[str, type[Heartbeat | Occupancy | StatusEvent | StationProfile]] = {
    topics.HEARTBEAT: Heartbeat,
    topics.OCCUPANCY: Occupancy,
    topics.STATUS: StatusEvent,
    topics.REGISTRY: StationProfile,
}


def input_reader(settings: Settings) -> AIOKafkaConsumer:
    """A consumer of every input topic from its start, outside any group."""
    return AIOKafkaConsumer(
        *(settings.topic(t) for t in topics.INPUT_TOPICS),
        bootstrap_servers=bootstrap_servers(settings.kafka),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )


async def _read_all(settings: Settings, expected: int, deadline_s: float = 30.0) -> list[object]:
    consumer = input_reader(settings)
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


# -- `stationwatch simulate` as a user runs it, with faults on -----------------------------------
START = "2026-11-25T19:55:00+08:00"  # a Wednesday evening: stations close at 20:00 and after
FAULTS = [
    "--outage-rate", "0",  # no other silences than the ones under test
    "--duplicate-rate", "0.03",
    "--reorder-rate", "0.03",
    "--malformed-rate", "0.02",
    "--power-cut-rate", "2",
    "--clock-skew-rate", "1",
    "--late-close-rate", "0.6",
]  # fmt: skip
HEARTBEAT_S = 30


def _simulate(broker: EmbeddedBroker, prefix: str) -> None:
    """20 simulated minutes in 10 real seconds, from a fixed start, with a fixed seed."""
    env = {
        **os.environ,
        "STATIONWATCH_KAFKA": broker.url,
        "STATIONWATCH_TOPIC_PREFIX": prefix,
        "STATIONWATCH_PARTITIONS": "2",
        "STATIONWATCH_LOG_LEVEL": "WARNING",
    }
    args = ["--stations", "80", "--seed", "7", "--start", START, "--speed", "120"]
    done = subprocess.run(
        [sys.executable, "-m", "stationwatch.cli", "simulate", *args, "--duration", "10", *FAULTS],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not done.stderr.strip(), done.stderr  # a start in the past: nothing to warn about


async def _read_until_quiet(settings: Settings, quiet_s: float = 3.0) -> list[ConsumerRecord]:
    """Every record of the input topics, in partition order: read until nothing more comes."""
    consumer = input_reader(settings)
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + 60
    last_new = time.monotonic()
    try:
        while time.monotonic() - last_new < quiet_s and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(batch)
                last_new = time.monotonic()
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))


def _heartbeats(records: list[ConsumerRecord], settings: Settings) -> list[Heartbeat]:
    beats = []
    for record in records:
        if record.topic != settings.topic(topics.HEARTBEAT):
            continue
        try:
            beats.append(Heartbeat.model_validate_json(record.value))
        except ValidationError:
            continue
    return beats


async def test_simulate_puts_every_fault_on_the_wire_and_a_seed_repeats_it(
    broker: EmbeddedBroker, unique: str
) -> None:
    settings = Settings(kafka=broker.url, topic_prefix=f"t{unique}a.", partitions=2)
    await asyncio.to_thread(_simulate, broker, settings.topic_prefix)
    records = await _read_until_quiet(settings)
    start = datetime.fromisoformat(START)
    end = start + timedelta(minutes=20)

    profiles = {}
    invalid = 0
    for record in records:
        topic = record.topic.removeprefix(settings.topic_prefix)
        try:
            message = MODELS[topic].model_validate_json(record.value)
        except ValidationError:
            invalid += 1
            continue
        if isinstance(message, StationProfile):
            profiles[message.station_id] = message
    assert len(profiles) == 80
    assert invalid >= 5  # malformed messages, as the worker must dead-letter them

    # duplicates: the very same record twice
    seen = Counter((r.topic, r.key, r.value) for r in records)
    assert sum(n - 1 for n in seen.values()) >= 10

    # an out-of-order pair: a device's later heartbeat before its earlier one on the partition
    beats = _heartbeats(records, settings)
    seqs: dict[str, list[int]] = defaultdict(list)
    for beat in beats:
        seqs[beat.station_id].append(beat.seq or 0)
    assert any(b < a for values in seqs.values() for a, b in itertools.pairwise(values))

    # skewed clocks: consecutive heartbeats of a device sent_at 600 s off their 30 s apart
    sent: dict[str, dict[int, datetime]] = defaultdict(dict)
    for beat in beats:
        sent[beat.station_id][beat.seq or 0] = beat.sent_at
    skewed = set()
    for station_id, by_seq in sent.items():
        times = [by_seq[s] for s in sorted(by_seq)]
        for a, b in itertools.pairwise(times):
            if abs(abs((b - a).total_seconds() - HEARTBEAT_S) - 600) < 2:
                skewed.add(station_id)
    assert skewed

    # a street without power: its devices silent together while the rest beat on
    def largest_gap(station_id: str) -> tuple[datetime, datetime]:
        times = [start, *sorted(sent[station_id].values()), end]
        return max(itertools.pairwise(times), key=lambda gap: gap[1] - gap[0])

    devices = [
        p
        for p in profiles.values()
        if p.heartbeat_interval_s and p.lifecycle == "active" and p.station_id not in skewed
    ]
    streets: dict[str, list[str]] = defaultdict(list)
    for profile in devices:
        streets[profile.street].append(profile.station_id)
    silent_together = []
    for street, ids in streets.items():
        if len(ids) < 2:
            continue
        gaps = [largest_gap(station_id) for station_id in ids]
        begins, ends = max(g[0] for g in gaps), min(g[1] for g in gaps)
        if (ends - begins).total_seconds() < 5 * HEARTBEAT_S:
            continue
        others = [p.station_id for p in devices if p.street != street]
        beating = [sid for sid in others if any(begins < t < ends for t in sent[sid].values())]
        if len(beating) > 0.7 * len(others):
            silent_together.append(street)
    assert silent_together

    # staff closing late: closed, by staff, on schedule, minutes after the closing time
    late = []
    for record in records:
        if record.topic != settings.topic(topics.STATUS):
            continue
        try:
            event = StatusEvent.model_validate_json(record.value)
        except ValidationError:
            continue
        if event.state == "closed" and event.reason == "schedule" and event.actor == "staff":
            hours = profiles[event.station_id].opening_hours.weekly["wed"]
            closing = datetime.fromisoformat(f"2026-11-25T{hours[-1][1]}:00+08:00")
            if (event.at - closing).total_seconds() >= 300:
                late.append(event.station_id)
    assert late

    # the same seed, start and duration: the same records, partition by partition
    again = Settings(kafka=broker.url, topic_prefix=f"t{unique}b.", partitions=2)
    await asyncio.to_thread(_simulate, broker, again.topic_prefix)
    repeated = await _read_until_quiet(again)

    def wire(got: list[ConsumerRecord], prefix: str) -> list[tuple[str, int, bytes, bytes]]:
        return [(r.topic.removeprefix(prefix), r.partition, r.key, r.value) for r in got]

    assert wire(repeated, again.topic_prefix) == wire(records, settings.topic_prefix)
